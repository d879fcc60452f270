"""`swictationd` end to end: real recordings, the real tiny.en model, the real entrypoint."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.wer import error_rate, words
from swictation.adapters.audio_file import FileAudioSource
from swictation.adapters.memory import ScriptedProbe
from swictation.application.config import resolve_settings
from swictation.ports import AudioSource
from tests.e2e.conftest import BIN, GiB, run_command, write_csv

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"
DICTATION = Path(__file__).parents[2] / "examples" / "audio" / "dictation.wav"


def word_error_rate(reference: str, hypothesis: str) -> float:
    return error_rate(words(reference), words(hypothesis))


def daemon(*args: str, env: dict | None = None, timeout: float = 300):
    merged = {**os.environ, **(env or {})}
    return run_command("swictationd", *args, env=merged, timeout=timeout)


@pytest.fixture
def spool(tmp_path):
    return str(tmp_path / "spool")


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("voice-us.wav", "The weather today is cold and windy with some rain."),
        ("voice-gb.wav", "Please send the report to the team before lunch."),
        ("voice-female.wav", "Remember to buy milk, bread and coffee on the way home."),
        ("stereo-48k.wav", "Good morning. Please open a new document."),
        ("voice-us.flac", "The weather today is cold and windy with some rain."),
    ],
)
def test_voices_and_formats_are_transcribed_word_by_word(
    name, said, tmp_path, spool, serve_in_process, caplog
):
    """In-process (the program's own `serve`, the models loaded once for the session): each
    file read, resampled and transcribed as swictationd does."""
    caplog.set_level(logging.INFO, logger="swictation")
    settings = resolve_settings(
        {"daemon": {"probe": "none", "spool_dir": spool}},
        None,
        {"XDG_CONFIG_HOME": str(tmp_path)},
        audio_file=str(AUDIO / name),
    )
    code, lines = serve_in_process(settings)
    assert code == 0
    assert word_error_rate(said, " ".join(lines)) <= 0.2, lines
    assert "final report" in caplog.text


def test_a_pause_separates_two_utterances_one_line_each(spool):
    result = daemon(
        "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none", "--spool-dir", spool
    )
    assert result.code == 0, result.err
    assert result.out.endswith("\n")  # stdout carries the text alone, one line each
    assert "final report" in result.err
    lines = result.out.splitlines()
    assert len(lines) == 2
    assert word_error_rate("Open the window.", lines[0]) <= 0.2
    assert word_error_rate("Close the door behind you.", lines[1]) <= 0.2


def emergency_trace(tmp_path: Path) -> Path:
    # An 8 GiB card: others jump to 97 % from 1.5 s to 9 s into the run. The window is wide
    # so that a guard slowed by a busy machine still sees it for many polls.
    return write_csv(
        tmp_path / "pressure.csv",
        lambda t: 7900.0 if 1.5 <= t < 9 else 2900.0,
        8 * GiB,
        60,
        0.1,
    )


def test_emergency_mid_recording_loses_no_words(tmp_path, spool, serve_in_process):
    """In-process, keyed on the audio: the card fills as the first sentence begins, and the
    recording goes on only once the guard has offloaded the STT (on a rehearsed GPU); after
    the last sentence the card empties, and the run ends only once the model is back. The
    models' sizes are given, not measured in this reused process."""
    import threading

    import numpy as np
    import soundfile

    from swictation.adapters.memory import InMemoryModelHost, ResidentModelsProbe
    from swictation.adapters.simulated import SimulatedGpuHost
    from swictation.domain.model import ModelState, Placement

    voice, rate = soundfile.read(AUDIO / "pair.wav", dtype="float32")  # voiced 0.30 - 5.34 s
    recording = tmp_path / "pair-then-quiet.wav"
    soundfile.write(recording, np.concatenate([voice, np.zeros(3 * rate, np.float32)]), rate)
    events = tmp_path / "events.jsonl"
    settings = resolve_settings(
        {
            "daemon": {
                "probe": "trace",  # a rehearsed GPU: placement simulated, inference on the CPU
                "trace": str(emergency_trace(tmp_path)),
                "spool_dir": spool,
                "events": str(events),
            },
            "thresholds": {"dwell_s": 1.0},
            "guard": {"min_offload_mib": 16},
        },
        None,
        {"XDG_CONFIG_HOME": str(tmp_path)},
        audio_file=str(recording),
    )
    full = threading.Event()

    def rehearsed_gpu(container):
        host = SimulatedGpuHost(container.announced(), container.clock(), container.tuning())
        sizes = [ModelState("vad", 2.0, Placement.GPU), ModelState("stt", 75.0, Placement.GPU)]
        host.simulated = InMemoryModelHost(container.clock(), sizes, container.tuning())
        return host

    def stt_on_gpu(container) -> bool:
        placement = {m.name: m.placement for m in container.host().models()}
        return placement["stt"] is Placement.GPU

    def card(container):
        # Others use 7,900 MiB of 8 GiB while `full` is set (EMERGENCY), 2,900 otherwise.
        others = ScriptedProbe(
            lambda t: 7900.0 if full.is_set() else 2900.0, 8 * GiB, container.clock()
        )
        return ResidentModelsProbe(others, container.host().simulated)

    def source(container):
        def fill() -> None:
            full.set()
            wait_for(lambda: not stt_on_gpu(container), 120)

        def empty() -> None:
            full.clear()
            wait_for(lambda: stt_on_gpu(container), 120)

        paced = CueAt(FileAudioSource(str(recording)), 0.3, fill)
        return CueAt(paced, 5.34 + 1.5, empty)  # after the last sentence has closed

    code, lines = serve_in_process(settings, host=rehearsed_gpu, probe=card, source=source)
    assert code == 0
    assert len(lines) == 2
    assert word_error_rate("Open the window. Close the door behind you.", " ".join(lines)) <= 0.2
    log = [json.loads(line) for line in events.read_text().splitlines()]
    levels = [e["level"] for e in log if e["type"] == "level"]
    assert "EMERGENCY" in levels
    assert levels[-1] == "NORMAL"
    actions = [(e["action"], e.get("model")) for e in log if e["type"] == "action"]
    assert actions.index(("offload", "stt")) < actions.index(("restore", "stt"))
    utterances = [e for e in log if e["type"] == "utterance"]
    assert len(utterances) == 2
    assert any(e["type"] == "sample" for e in log)
    # The flight recorder replays.
    replayed = run_command("swictation", "replay", str(events), "--json")
    assert replayed.code == 0, replayed.err
    assert replayed.json()["models"]["stt"] > 16


def test_an_oom_storm_ends_in_cpu_fallback_with_every_utterance_transcribed(
    tmp_path, spool, swictationd
):
    calm = write_csv(tmp_path / "calm.csv", lambda t: 2900.0, 8 * GiB, 60, 0.5)
    events = tmp_path / "events.jsonl"
    result = swictationd(
        "--audio-file",
        str(DICTATION),
        "--probe",
        "trace",
        "--trace",
        str(calm),
        "--inject-fault",
        "stt:oom:6",
        "--events",
        str(events),
        "--spool-dir",
        spool,
    )
    assert result.code == 0, result.err
    log = [json.loads(line) for line in events.read_text().splitlines()]
    verdicts = [e["verdict"] for e in log if e["type"] == "error"]
    assert verdicts == ["retry", "retry", "fallback"]
    fallbacks = [e["model"] for e in log if e.get("action") == "fallback_to_cpu"]
    assert fallbacks == ["stt"]
    assert len([e for e in log if e["type"] == "utterance"]) == 5
    assert len(result.out.splitlines()) == 5
    said = (
        "Good morning. Please open a new document. The meeting with the design team "
        "starts at ten o'clock. Remember to send the report to Maria before lunch. The "
        "weather today is cold and windy with some rain. Thank you. That is all for now."
    )
    assert word_error_rate(said, result.out) <= 0.2
    assert "CPU fallback" in result.err
    assert not list(Path(spool).glob("*.wav"))


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "swictationd"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


class CueAt(AudioSource):
    """The recording, with `cue()` run when the stream reaches `at_s` of audio: the test's
    moment is a point in the recording, not a guess of the wall clock."""

    def __init__(self, inner: AudioSource, at_s: float, cue) -> None:
        self._inner = inner
        self._at_s = at_s
        self._cue = cue

    def blocks(self):
        cued = False
        for block in self._inner.blocks():
            if not cued and block.t >= self._at_s:
                cued = True
                self._cue()
            yield block

    def close(self) -> None:
        self._inner.close()


def _file_settings(tmp_path, spool, **sections):
    return resolve_settings(
        {"daemon": {"probe": "none", "spool_dir": spool}, **sections},
        None,
        {"XDG_CONFIG_HOME": str(tmp_path)},
        audio_file=str(DICTATION),
    )


def test_sigterm_mid_utterance_finishes_or_spools_it(tmp_path, spool, serve_in_process):
    """SIGTERM (a real signal to this process, through the daemon's own handler) 6 s into
    the recording, inside the second sentence (about 4.4 s to 7.5 s). The recording goes on
    only once the handler has run (it runs on the main thread, whenever that thread next
    gets to run): the stop lands at 6 s of audio however busy the machine."""

    def terminate(container):
        def cue() -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            assert container.stop().wait(60), "the SIGTERM handler never ran"

        return CueAt(FileAudioSource(str(DICTATION)), 6.0, cue)

    code, lines = serve_in_process(_file_settings(tmp_path, spool), source=terminate)
    assert code == 0
    spooled = list(Path(spool).glob("*.wav"))
    assert lines[0]  # the first sentence, whole
    # The sentence being spoken was either transcribed (in part, up to the stop) or spooled.
    assert len(lines) == 2 or (len(lines) == 1 and len(spooled) == 1), (lines, spooled)
    if len(lines) == 2:
        # What was said of the second sentence before the stop, cut where it was cut.
        spoken = set(words("The meeting with the design team starts at ten o'clock."))
        assert spoken & set(words(lines[1])), lines[1]


def test_spooled_audio_is_transcribed_first_at_the_next_start(tmp_path, spool, serve_in_process):
    Path(spool).mkdir(parents=True)
    shutil.copy(AUDIO / "voice-gb.wav", Path(spool) / "20261127-101010-1-0001.wav")
    settings = resolve_settings(
        {"daemon": {"probe": "none", "spool_dir": spool}},
        None,
        {"XDG_CONFIG_HOME": str(tmp_path)},
        audio_file=str(AUDIO / "pair.wav"),
    )
    code, lines = serve_in_process(settings)
    assert code == 0
    assert len(lines) == 3
    assert word_error_rate("Please send the report to the team before lunch.", lines[0]) <= 0.2
    assert list(Path(spool).iterdir()) == []


def test_memory_shutdown_exits_3(tmp_path, spool):
    """The real program on a trace of a full card, with guard.on_shutdown = "exit" (the
    original behaviour): SHUTDOWN, said so, exit status 3."""
    full = write_csv(tmp_path / "full.csv", lambda t: 8150.0, 8 * GiB, 60, 0.5)
    config = tmp_path / "c.toml"
    config.write_text('[guard]\nshutdown_grace_s = 1.0\non_shutdown = "exit"\n')
    result = daemon(
        "--audio-file",
        str(DICTATION),
        "--realtime",
        "--probe",
        "trace",
        "--trace",
        str(full),
        "--config",
        str(config),
        "--spool-dir",
        spool,
        timeout=120,
    )
    assert result.code == 3, result.err
    assert "memory SHUTDOWN" in result.err
    assert "exiting with status 3" in result.err


def test_memory_shutdown_spools_open_speech_and_exits_3(tmp_path, spool, serve_in_process, caplog):
    """The card fills 2 s into the recording, in the middle of the first sentence; the
    recording goes on only once the guard has stopped the daemon, so the speech captured
    before the stop is transcribed or spooled (never dropped), whatever the machine's load."""
    import threading

    caplog.set_level(logging.INFO, logger="swictation")
    full = threading.Event()
    settings = _file_settings(
        tmp_path, spool, guard={"shutdown_grace_s": 1.0, "on_shutdown": "exit"}
    )

    def card(container):
        clock = container.clock()
        return ScriptedProbe(lambda t: 8150.0 if full.is_set() else 1000.0, 8192.0, clock)

    def fill_then_wait(container):
        def cue():
            full.set()
            assert container.stop().wait(60), "the guard never stopped the daemon"

        return CueAt(FileAudioSource(str(DICTATION)), 2.0, cue)

    code, lines = serve_in_process(settings, probe=card, source=fill_then_wait)
    assert code == 3
    # The sentence cut at the stop was transcribed or spooled, never dropped (nor both).
    assert len(lines) + len(list(Path(spool).glob("*.wav"))) == 1
    assert "memory SHUTDOWN" in caplog.text
    assert "exiting with status 3" in caplog.text


def control(socket_path: str, *args: str, **kw):
    return run_command("swictation", *args, "--socket", socket_path, **kw)


def long_silence(tmp_path, seconds: float = 900.0) -> str:
    """A recording that outlasts any test (FLAC keeps it small): the daemon runs until the
    test says quit, however slowly the machine runs the commands in between."""
    import numpy as np
    import soundfile

    path = tmp_path / "silence.flac"
    soundfile.write(path, np.zeros(int(seconds * 16000), np.int16), 16000)
    return str(path)


def test_the_control_socket_against_a_running_daemon(tmp_path, spool):
    sock = str(tmp_path / "ctl" / "swictation.sock")
    process = start(
        "--audio-file",
        long_silence(tmp_path),
        "--realtime",
        "--probe",
        "none",
        "--socket",
        sock,
        "--spool-dir",
        spool,
    )
    try:
        wait_for(lambda: os.path.exists(sock))
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        status = control(sock, "status")
        assert status.code == 0, status.err
        assert "listening:  yes" in status.out
        assert "model:      stt on cpu" in status.out
        as_json = json.loads(control(sock, "status", "--json").out)
        assert as_json["ok"] and as_json["listening"] and "level" in as_json
        assert control(sock, "toggle").out.strip() == "not listening"
        assert json.loads(control(sock, "status", "--json").out)["listening"] is False
        assert control(sock, "toggle").out.strip() == "listening"
        assert control(sock, "stop").out.strip() == "not listening"
        import socket as sockets

        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as raw:
            raw.connect(sock)
            raw.sendall(b"{oops\n")
            reply = json.loads(raw.recv(4096))
        assert reply["ok"] is False and "malformed" in reply["error"]
        if os.getuid() == 0:
            # Another user (nobody) cannot even reach the socket: mode 0600, parent 0700.
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    os.setuid(65534)
                    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as other:
                        other.connect(sock)
                except PermissionError:
                    code = 13
                finally:
                    os._exit(code)
            _, status = os.waitpid(child, 0)
            assert os.waitstatus_to_exitcode(status) == 13
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as raw:
            raw.connect(sock)
            raw.sendall(b'{"cmd": "quit"}\n')
            assert json.loads(raw.recv(4096)) == {"ok": True, "quitting": True}
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == 0
    assert not os.path.exists(sock)
    gone = control(sock, "status")
    assert gone.code == 1
    assert "no daemon is running" in gone.out


def test_the_nemo_path_with_a_tiny_model(tmp_path, spool, serve_in_process):
    """In-process, so NeMo is imported once for the whole session: the daemon's container
    loads a real .nemo archive and transcribes on the CPU."""
    import torch
    from nemo.collections.asr.models import EncDecCTCModel

    from tests.integration.conftest import tiny_nemo_config

    torch.manual_seed(0)
    path = tmp_path / "tiny.nemo"
    EncDecCTCModel(cfg=tiny_nemo_config()).save_to(str(path))
    events = tmp_path / "events.jsonl"
    settings = resolve_settings(
        {
            "daemon": {"probe": "none", "spool_dir": spool, "events": str(events)},
            "stt": {"engine": "nemo", "model": str(path)},
        },
        None,
        {"XDG_CONFIG_HOME": str(tmp_path)},
        audio_file=str(AUDIO / "pair.wav"),
    )
    code, lines = serve_in_process(settings, shared_models=False)
    assert code == 0
    log = [json.loads(line) for line in events.read_text().splitlines()]
    utterances = [e for e in log if e["type"] == "utterance"]
    assert len(utterances) == 2
    assert all(u["device"] == "cpu" for u in utterances)
    # Random weights (seeded): what it says is noise, but it says something, and the lines
    # typed are the words the utterances counted, in the model's own alphabet.
    assert lines
    assert sum(u["words"] for u in utterances) == len(" ".join(lines).split())
    assert set("".join(lines)) <= set(" abcdefghijklmnopqrstuvwxyz'")


def test_output_to_a_file(tmp_path, spool, swictationd):
    target = tmp_path / "notes.txt"
    result = swictationd(
        "--audio-file",
        str(AUDIO / "pair.wav"),
        "--probe",
        "none",
        "--output",
        "file",
        "--output-file",
        str(target),
        "--spool-dir",
        spool,
    )
    assert result.code == 0, result.err
    assert result.out == ""
    assert len(target.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--audio-file", "/nonexistent.wav"], 2, "no such audio file"),
        (["--probe", "trace"], 2, "--probe trace needs --trace FILE"),
        (["--inject-fault", "stt:fire:3"], 2, "expected MODEL:oom|cuda:COUNT"),
        (["--realtime"], 2, "--realtime needs --audio-file"),
        (["--output", "file", "--audio-file", str(AUDIO / "pair.wav")], 2, "--output-file"),
        (
            [
                "--probe",
                "trace",
                "--trace",
                "/nonexistent.csv",
                "--audio-file",
                str(AUDIO / "pair.wav"),
            ],
            2,
            "no such file",
        ),
        (
            ["--stt-model", "/nonexistent-model", "--audio-file", str(AUDIO / "pair.wav")],
            1,
            "not a CTranslate2 Whisper model directory",
        ),
        (
            [
                "--stt",
                "nemo",
                "--stt-model",
                "/nonexistent.nemo",
                "--audio-file",
                str(AUDIO / "pair.wav"),
            ],
            1,
            "no such .nemo file",
        ),
    ],
)
def test_bad_input_is_one_line(args, code, message, spool):
    result = daemon(*args, "--spool-dir", spool)
    assert result.code == code, result.err
    errors = [line for line in result.err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.err
    assert message in errors[0]
    assert "Traceback" not in result.err


def test_a_bad_config_file_is_one_line(tmp_path, spool):
    config = tmp_path / "c.toml"
    config.write_text("[vad]\nmin_silence = 2\n")
    result = daemon("--config", str(config), "--spool-dir", spool)
    assert result.code == 2
    assert result.err.strip() == (
        f"swictationd: error: {config}: unknown key vad.min_silence (did you mean 'min_silence_s'?)"
    )


def test_without_a_microphone_it_says_so(spool):
    result = daemon("--probe", "none", "--spool-dir", spool, "--socket", f"{spool}.sock")
    if result.code == 0:
        pytest.skip("this machine has a microphone")
    assert result.code == 1
    assert "microphone" in result.err.splitlines()[-1] or "PortAudio" in result.err


def test_tells_systemd_it_is_ready_and_stopping(tmp_path, spool, swictationd):
    import socket as sockets

    address = str(tmp_path / "notify.sock")
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(0.1)
        result = swictationd(
            "--audio-file",
            str(AUDIO / "voice-us.wav"),
            "--probe",
            "none",
            "--spool-dir",
            spool,
            env={"NOTIFY_SOCKET": address},
        )
        assert result.code == 0, result.err
        messages = []
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except TimeoutError:
                break
    assert "READY=1" in messages
    assert messages.index("READY=1") < messages.index("STOPPING=1")


def test_short_pauses_and_clicks_never_type_a_word_twice(tmp_path, spool, swictationd):
    """Issue 14: sentences 0.8 s apart (the end-of-utterance pause exactly) with one-block
    clicks in the pauses; the spans never overlap, so no word reaches the recognizer twice."""
    import numpy as np
    import soundfile

    rate = 16000
    said = [
        ("voice-us.wav", "The weather today is cold and windy with some rain."),
        ("voice-gb.wav", "Please send the report to the team before lunch."),
        ("voice-female.wav", "Remember to buy milk, bread and coffee on the way home."),
    ]
    pause = np.zeros(int(0.8 * rate), dtype=np.float32)
    click = np.random.default_rng(14).uniform(-0.5, 0.5, 512).astype(np.float32)
    parts = [np.zeros(int(0.3 * rate), dtype=np.float32)]
    for name, _ in said:
        voice, voice_rate = soundfile.read(AUDIO / name, dtype="float32")
        assert voice_rate == rate
        parts += [voice, pause[: len(pause) // 2], click, pause[: len(pause) // 2]]
    parts.append(np.zeros(rate, dtype=np.float32))
    recording = tmp_path / "clicks.wav"
    soundfile.write(recording, np.concatenate(parts), rate)

    result = swictationd("--audio-file", str(recording), "--probe", "none", "--spool-dir", spool)
    assert result.code == 0, result.err
    reference = " ".join(text for _, text in said)
    assert word_error_rate(reference, result.out) <= 0.2, result.out
    assert len(result.out.splitlines()) == len(said), result.out
    heard, expected = words(result.out), words(reference)
    doubled = {w for w in expected if heard.count(w) > expected.count(w)}
    assert not doubled, result.out
