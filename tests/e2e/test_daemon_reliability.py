"""Issue 8 end to end: `swictationd` attacked with faults as a user's day would bring them.
Toggles through the real socket, a typing tool that fails, a closed stdout, full and
read-only filesystems (small tmpfs mounts where this test may mount, else skipped: the unit
tests cover the same paths with stand-ins), SIGKILL and a restart, SIGHUP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from swictation.adapters.audio_file import FileAudioSource
from swictation.application.config import resolve_settings
from tests.e2e.conftest import BIN
from tests.e2e.test_daemon import (
    AUDIO,
    DICTATION,
    CueAt,
    daemon,
    wait_for,
    word_error_rate,
    words,
)

FIRST = "Good morning. Please open a new document."
SECOND = "The meeting with the design team starts at ten o'clock."


class Running:
    """A daemon started in the background; its stderr read as it comes."""

    def __init__(self, *args: str, env: dict | None = None, stdout=subprocess.PIPE) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "swictationd"), *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def wait_log(self, text: str, timeout: float = 120) -> None:
        wait_for(lambda: text in self.err or self.process.poll() is not None, timeout)
        assert text in self.err, self.err

    def finish(self, timeout: float = 120) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(10)
        return code


def control(sock: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "swictation"), *args, "--socket", sock],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def recording(tmp_path: Path, *parts: tuple[str, float]) -> Path:
    """Fixture voices and silences joined into one 16 kHz WAV."""
    pieces = []
    for name, seconds in parts:
        if name == "silence":
            pieces.append(np.zeros(int(seconds * 16000), np.float32))
        else:
            voice, rate = soundfile.read(AUDIO / name, dtype="float32")
            assert rate == 16000
            pieces.append(voice)
    path = tmp_path / "recording.flac"  # long quiet costs next to nothing in FLAC
    soundfile.write(path, np.concatenate(pieces), 16000)
    return path


def voiced_end_s(name: str) -> float:
    voice, rate = soundfile.read(AUDIO / name, dtype="float32")
    loud = np.flatnonzero(np.abs(voice) > 0.02)
    return float(loud[-1] / rate)


@pytest.fixture
def env(tmp_path):
    state = tmp_path / "state"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    return {"XDG_STATE_HOME": str(state), "XDG_RUNTIME_DIR": str(runtime)}


# -- toggles ------------------------------------------------------------------------------------


def _toggled_at(tmp_path, serve_in_process, voice: str, at_s: float, command: str):
    """The recording (0.5 s of silence, `voice`, 8 s of silence) served in-process, with
    `command` handled by the daemon when the stream reaches `at_s` of audio: a point in the
    recording, however slowly this machine runs. Returns the lines typed, the utterance
    events, and whether speech was open (written ahead to the spool) at the command."""
    audio = recording(tmp_path, ("silence", 0.5), (voice, 0), ("silence", 8.0))
    spool = tmp_path / "spool"
    events = tmp_path / "events.jsonl"
    settings = resolve_settings(
        {"daemon": {"probe": "none", "spool_dir": str(spool), "events": str(events)}},
        None,
        {"XDG_CONFIG_HOME": str(tmp_path)},
        audio_file=str(audio),
    )
    open_at_command: list[bool] = []

    def source(container):
        def cue() -> None:
            open_at_command.append(bool(list(spool.glob("*.pcm"))))
            assert container.daemon().handle({"cmd": command})["listening"] is False

        return CueAt(FileAudioSource(str(audio)), at_s, cue)

    code, lines = serve_in_process(settings, source=source)
    assert code == 0
    utterances = [
        e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "utterance"
    ]
    return lines, utterances, open_at_command == [True]


def test_a_toggle_just_after_a_sentence_keeps_it(tmp_path, serve_in_process):
    said = "The weather today is cold and windy with some rain."
    # 0.25 s after the voice ends: inside the 0.8 s end-of-utterance pause.
    toggle_s = 0.5 + voiced_end_s("voice-us.wav") + 0.25
    lines, utterances, was_open = _toggled_at(
        tmp_path, serve_in_process, "voice-us.wav", toggle_s, "toggle"
    )
    assert was_open  # the toggle came while the utterance was still open: inside the pause
    assert len(lines) == 1 and len(utterances) == 1
    assert word_error_rate(said, lines[0]) <= 0.2, lines
    # Closed by the toggle, not by the pause running out (which ends 0.8 s after the voice).
    ended = utterances[0]["start_s"] + utterances[0]["duration_s"]
    assert ended < 0.5 + voiced_end_s("voice-us.wav") + 0.8 - 0.1


def test_a_toggle_or_stop_mid_sentence_transcribes_what_was_said(tmp_path, serve_in_process):
    said = words("Please send the report to the team before lunch.")
    stop_s = 0.5 + voiced_end_s("voice-gb.wav") / 2
    lines, utterances, was_open = _toggled_at(
        tmp_path, serve_in_process, "voice-gb.wav", stop_s, "stop"
    )
    assert was_open
    assert len(lines) == 1 and len(utterances) == 1
    heard = words(lines[0])
    # Cut where it was cut (the last word may be clipped): what came before is there, what
    # came after is not.
    assert heard[:3] == said[:3], heard
    assert len(heard) <= len(said) - 2, heard
    assert "lunch" not in heard
    assert utterances[0]["start_s"] + utterances[0]["duration_s"] <= stop_s + 0.1


# -- output failures ----------------------------------------------------------------------------


def typing_stand_in(tmp_path: Path, fail_first: int = 0, fail_until: Path | None = None) -> Path:
    """A `wtype` on PATH that fails its first calls (or until a file exists), recording what
    it would have typed."""
    typed = tmp_path / "typed.jsonl"
    count = tmp_path / "calls"
    script = tmp_path / "bin" / "wtype"
    script.parent.mkdir()
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"count = {str(count)!r}\n"
        "n = int(open(count).read()) + 1 if os.path.exists(count) else 1\n"
        "open(count, 'w').write(str(n))\n"
        f"if n <= {fail_first} or ({str(fail_until)!r} != 'None' and "
        f"not os.path.exists({str(fail_until)!r})):\n"
        "    sys.stderr.write('failed to open display\\n'); sys.exit(1)\n"
        f"open({str(typed)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return typed


def typed_lines(typed: Path) -> list[str]:
    """The utterances typed: each ends with the space typed after it (words typed early,
    before the pause was confirmed, are calls of their own without one)."""
    if not typed.exists():
        return []
    lines, current = [], ""
    for call in typed.read_text().splitlines():
        current += json.loads(call)[-1]
        if current.endswith(" "):
            lines.append(current.strip())
            current = ""
    return lines + ([current.strip()] if current.strip() else [])


def test_a_typing_tool_that_fails_twice_loses_nothing_and_keeps_the_order(
    tmp_path, env, swictationd
):
    typed = typing_stand_in(tmp_path, fail_first=2)
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    result = swictationd(
        "--audio-file", str(DICTATION), "--probe", "none", "--output", "wtype",
        "--spool-dir", str(tmp_path / "spool"), env={**env, "PATH": path},
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = typed_lines(typed)
    assert len(lines) == 5, lines
    assert word_error_rate(FIRST, lines[0]) <= 0.2
    assert word_error_rate(SECOND, lines[1]) <= 0.2
    assert result.err.count("output failing") == 1  # said once per change, not per retry
    assert "output recovered" in result.err
    assert "output ok" in result.err  # the final report
    assert "output done (2 errors, 0 restarts)" in result.err
    assert not list((tmp_path / "spool").iterdir())


def test_status_says_the_output_is_failing_while_text_waits(tmp_path, env):
    flag = tmp_path / "display-back"
    typed = typing_stand_in(tmp_path, fail_until=flag)
    sock = str(tmp_path / "ctl" / "s.sock")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    run = Running(
        "--audio-file", str(AUDIO / "pair.wav"), "--realtime", "--probe", "none",
        "--output", "wtype", "--socket", sock, "--spool-dir", str(tmp_path / "spool"),
        env={**env, "PATH": path},
    )  # fmt: skip
    try:
        run.wait_log("output failing")
        status = control(sock, "status")
        assert status.returncode == 0
        (line,) = [x for x in status.stdout.splitlines() if x.startswith("output:")]
        assert "failing since" in line and "waiting: wtype failed (1): failed to open display" in (
            line
        )
        as_json = json.loads(control(sock, "status", "--json").stdout)
        assert as_json["output_waiting"] >= 1 and as_json["workers"]["output"]["errors"] >= 1
        flag.write_text("")
        assert run.finish() == 0, run.err
    finally:
        run.process.kill()
    lines = typed_lines(typed)
    assert len(lines) == 2
    assert word_error_rate("Open the window.", lines[0]) <= 0.2
    assert word_error_rate("Close the door behind you.", lines[1]) <= 0.2


def test_a_closed_stdout_keeps_the_text_in_undelivered_txt(tmp_path, env):
    run = Running(
        "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none",
        "--spool-dir", str(tmp_path / "spool"), env=env,
    )  # fmt: skip
    assert run.process.stdout is not None
    run.process.stdout.close()  # nobody reads: every write is a broken pipe
    code = run.finish()
    undelivered = Path(env["XDG_STATE_HOME"]) / "swictation" / "undelivered.txt"
    assert code == 0, run.err
    assert "Traceback" not in run.err
    assert str(undelivered) in run.err
    kept = [x for x in undelivered.read_text().splitlines() if not x.startswith("#")]
    assert word_error_rate("Open the window. Close the door behind you.", " ".join(kept)) <= 0.2
    assert not list((tmp_path / "spool").iterdir())


# -- full and read-only filesystems ----------------------------------------------------------


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@contextlib.contextmanager
def small_filesystem(where: Path):
    if os.geteuid() != 0 or not _mount_tmpfs(where, "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> None:
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


@pytest.mark.parametrize("what", ["events", "output", "spool"])
def test_a_full_disk_loses_no_word(tmp_path, env, what, swictationd):
    with small_filesystem(tmp_path / "full") as full:
        (full / "spool").mkdir()
        fill(full)
        target = {
            "events": ["--events", str(full / "events.jsonl")],
            "output": ["--output", "file", "--output-file", str(full / "out.txt")],
            "spool": ["--spool-dir", str(full / "spool")],
        }[what]
        spool = [] if what == "spool" else ["--spool-dir", str(tmp_path / "spool")]
        result = swictationd(
            "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none", *target, *spool, env=env
        )
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    said = "Open the window. Close the door behind you."
    if what == "output":
        undelivered = Path(env["XDG_STATE_HOME"]) / "swictation" / "undelivered.txt"
        kept = [x for x in undelivered.read_text().splitlines() if not x.startswith("#")]
        assert word_error_rate(said, " ".join(kept)) <= 0.2
        assert str(undelivered) in result.err
    else:
        assert word_error_rate(said, result.out) <= 0.2
    if what == "events":
        assert result.err.count("flight recorder cannot write") == 1
        assert "events dropped" in result.err
    if what == "spool":
        fallback = Path(env["XDG_RUNTIME_DIR"]) / "swictation" / "spool"
        assert f"spooling to {fallback} instead" in result.err
        assert oct(fallback.stat().st_mode & 0o777) == "0o700"
    assert not list(Path(tmp_path).rglob("*.part"))


def test_an_unreadable_file_in_a_read_only_spool_is_skipped(tmp_path, env, swictationd):
    with small_filesystem(tmp_path / "ro") as ro:
        spool = ro / "spool"
        spool.mkdir()
        (spool / "20260101-000000.000-1-000001.wav").write_bytes(b"RIFF not really")
        voice, _ = soundfile.read(AUDIO / "voice-gb.wav", dtype="float32")
        soundfile.write(spool / "20260101-000000.000-1-000002.wav", voice, 16000)
        remount_read_only(ro)
        result = swictationd(
            "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none",
            "--spool-dir", str(spool), env=env,
        )  # fmt: skip
        left = sorted(p.name for p in spool.iterdir())
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "cannot read spooled audio" in result.err and "skipped" in result.err
    lines = result.out.splitlines()
    assert len(lines) == 3
    assert word_error_rate("Please send the report to the team before lunch.", lines[0]) <= 0.2
    assert len(left) == 2  # read-only: nothing could be removed, nothing was lost


# -- crashes and signals -------------------------------------------------------------------


def test_sigkill_loses_at_most_the_last_second_and_a_restart_transcribes_the_rest(tmp_path, env):
    spool = tmp_path / "spool"
    out = tmp_path / "out.txt"
    common = ["--probe", "none", "--spool-dir", str(spool), "--output", "file",
              "--output-file", str(out)]  # fmt: skip
    run = Running("--audio-file", str(DICTATION), "--realtime", *common, env=env)
    try:
        wait_for(lambda: out.exists() and "\n" in out.read_text(), 120)  # a whole line
        # The second sentence is being spoken and written ahead: at least 2 s of it on disk.
        wait_for(lambda: any(p.stat().st_size > 2 * 32000 for p in spool.glob("*.pcm")), 60)
        run.process.kill()
        run.finish()
    finally:
        run.process.kill()
    assert run.process.returncode == -signal.SIGKILL
    assert list(spool.glob("*.pcm"))
    result = daemon("--audio-file", str(AUDIO / "pair.wav"), *common, env=env)
    assert result.code == 0, result.err
    lines = out.read_text().splitlines()
    assert len(lines) == 4, lines
    assert word_error_rate(FIRST, lines[0]) <= 0.2
    # What was said of the second sentence before the kill (2 s and more of it).
    said = words(SECOND)
    assert len([w for w in words(lines[1]) if w in said]) >= 3, lines[1]
    assert word_error_rate("Open the window.", lines[2]) <= 0.2
    assert not list(spool.iterdir())


def test_sighup_stops_a_file_run_in_order(tmp_path, env):
    spool = tmp_path / "spool"
    typed = tmp_path / "typed.txt"

    def speaking_with_nothing_queued() -> bool:
        # A second of speech open, and every utterance before it typed (none waits as .wav).
        try:
            pcm = [p for p in spool.glob("*.pcm") if p.stat().st_size > 32000]
        except FileNotFoundError:  # closed between the listing and the look
            return False
        return len(pcm) == 1 and not list(spool.glob("*.wav"))

    with typed.open("w") as stdout:
        run = Running(
            "--audio-file", str(DICTATION), "--realtime", "--probe", "none",
            "--spool-dir", str(spool), env=env, stdout=stdout,
        )  # fmt: skip
        try:
            wait_for(speaking_with_nothing_queued, 120)
            before = len(typed.read_text().splitlines())
            run.process.send_signal(signal.SIGHUP)
            assert run.finish() == 0, run.err
        finally:
            run.process.kill()
    assert "SIGHUP received" in run.err
    lines = typed.read_text().splitlines()
    assert len(lines) == before + 1  # the speech in progress at the signal, transcribed too
    assert not list(spool.iterdir())


def test_audio_with_nan_is_rejected_as_unreadable(tmp_path):
    bad = tmp_path / "nan.wav"
    samples = np.zeros(16000, np.float32)
    samples[100] = np.nan
    soundfile.write(bad, samples, 16000, subtype="FLOAT")
    result = daemon("--audio-file", str(bad), "--probe", "none", "--spool-dir", str(tmp_path))
    assert result.code == 2
    assert result.err.strip().endswith("not a readable audio file (NaN or Inf samples)")


# -- rehearsal and usage errors -------------------------------------------------------------


def test_output_file_alone_means_output_file_and_file_without_a_path_fails_first(
    tmp_path, swictationd
):
    target = tmp_path / "notes.txt"
    spool = str(tmp_path / "spool")
    result = swictationd(
        "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none", "--output-file",
        str(target), "--spool-dir", spool,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out == ""
    assert len(target.read_text().splitlines()) == 2
    bad = daemon("--output", "file", "--audio-file", str(AUDIO / "pair.wav"), "--spool-dir", spool)
    assert bad.code == 2
    assert bad.err.strip() == "swictationd: error: --output file needs --output-file PATH"
    assert "model" not in bad.err  # said before any model loads


@pytest.mark.parametrize("trace", ["missing.csv", "bad.csv"])
def test_a_bad_trace_is_said_before_any_model_loads(tmp_path, trace):
    (tmp_path / "bad.csv").write_text("timestamp, memory.used [MiB]\nyesterday, lots\n")
    result = daemon(
        "--probe", "trace", "--trace", str(tmp_path / trace), "--audio-file",
        str(AUDIO / "pair.wav"), "--spool-dir", str(tmp_path / "spool"),
    )  # fmt: skip
    assert result.code == 2
    last = result.err.strip().splitlines()[-1]
    assert last.startswith(f"swictationd: error: {tmp_path / trace}")
    assert "swictation: model " not in result.err  # said before any model loads


def test_an_unknown_model_in_a_fault_is_a_usage_error(tmp_path):
    result = daemon("--inject-fault", "gpu:oom:1", "--spool-dir", str(tmp_path))
    assert result.code == 2
    assert result.err.strip() == (
        "swictationd: error: --inject-fault gpu:oom:1: unknown model 'gpu' (models: stt, vad)"
    )


def test_faults_are_injected_on_a_machine_without_a_gpu_into_the_vad_too(tmp_path, swictationd):
    from tests.conftest import has_cuda

    if has_cuda():
        pytest.skip("this machine has a GPU: faults fire while a model is on it")
    events = tmp_path / "events.jsonl"
    result = swictationd(
        "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none",
        "--inject-fault", "stt:oom:2", "--inject-fault", "vad:cuda:2",
        "--events", str(events), "--spool-dir", str(tmp_path / "spool"),
    )  # fmt: skip
    assert result.code == 0, result.err
    log = [json.loads(line) for line in events.read_text().splitlines()]
    errors = [(e["model"], e["kind"]) for e in log if e["type"] == "error"]
    assert errors.count(("stt", "out_of_memory")) == 2
    assert errors.count(("vad", "cuda")) == 2
    # The final report counts the run's CUDA errors and fallbacks.
    (report,) = [x for x in result.err.splitlines() if "final report: listening" in x]
    assert "vad 2 (0 fallbacks)" in report and "stt 2 (0 fallbacks)" in report
    assert word_error_rate("Open the window. Close the door behind you.", result.out) <= 0.2


def test_device_cuda_without_cuda_is_one_line_and_exit_1(tmp_path):
    from tests.conftest import has_cuda

    if has_cuda():
        pytest.skip("this machine has CUDA")
    result = daemon(
        "--device", "cuda", "--audio-file", str(AUDIO / "pair.wav"), "--probe", "none",
        "--spool-dir", str(tmp_path),
    )  # fmt: skip
    assert result.code == 1
    (line,) = [x for x in result.err.splitlines() if "error" in x.lower()]
    assert line.startswith("swictationd: error: --device cuda: CUDA is not available here")
    assert "Traceback" not in result.err
