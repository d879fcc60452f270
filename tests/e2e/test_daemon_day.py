"""A compressed day (issue 8; the whole day is `benchmarks/day_bench.py`): toggles through the
real control socket (just after a sentence, and in the middle of one), an OOM storm on a
simulated GPU, an output outage, a SIGKILL in the middle of a sentence, and a restart into a
game that fills the card (the daemon gives up the GPU and goes on on the CPU), and every
word typed exactly once, in the order it was said."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from swictation.adapters.control_socket import request
from tests.e2e.conftest import GiB, write_csv
from tests.e2e.test_daemon import AUDIO, daemon, wait_for, word_error_rate, words
from tests.e2e.test_daemon_reliability import (
    Running,
    control,
    recording,
    typed_lines,
    typing_stand_in,
    voiced_end_s,
)

pytestmark = pytest.mark.slow

US = "The weather today is cold and windy with some rain."
FEMALE = "Remember to buy milk, bread and coffee on the way home."
GB = "Please send the report to the team before lunch."
PAIR = ("Open the window.", "Close the door behind you.")


def seconds(name: str) -> float:
    import soundfile

    return float(soundfile.info(AUDIO / name).duration)


def typing_calls_running(script: Path) -> bool:
    """Whether a process running the typing stand-in is alive (read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(script).encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue  # the process ended while we looked
    return False


def toggle_at(sock: str, due: float, listening: bool) -> None:
    """The request `swictation toggle` sends, at a moment (a new interpreter per toggle
    would start too late to toggle inside a 0.5 s pause on a busy machine)."""
    time.sleep(max(0.0, due - time.monotonic()))
    assert request(sock, {"cmd": "toggle"})["listening"] is listening


def test_toggles_a_storm_an_outage_a_sigkill_and_a_game_and_every_word_is_typed_once_in_order(
    tmp_path,
):
    flag = tmp_path / "display-back"
    typed = typing_stand_in(tmp_path, fail_until=flag)
    spool = tmp_path / "spool"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    sock = str(runtime / "ctl" / "s.sock")
    calm = write_csv(tmp_path / "calm.csv", lambda t: 2900.0, 8 * GiB, 600, 1.0)
    game = write_csv(tmp_path / "game.csv", lambda t: 0.99 * 8 * GiB, 8 * GiB, 600, 1.0)
    config = tmp_path / "c.toml"
    config.write_text("[guard]\nshutdown_grace_s = 1.0\n")
    events = tmp_path / "events.jsonl"
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    common = ["--output", "wtype", "--spool-dir", str(spool), "--probe", "trace",
              "--socket", sock, "--events", str(events), "--config", str(config)]  # fmt: skip
    gap = 3.0
    morning = recording(tmp_path, ("silence", 0.5), ("voice-us.wav", 0), ("silence", gap),
                        ("voice-female.wav", 0), ("silence", gap), ("voice-gb.wav", 0),
                        ("silence", 6.0))  # fmt: skip
    female_at = 0.5 + seconds("voice-us.wav") + gap
    gb_at = female_at + seconds("voice-female.wav") + gap
    # The morning's first transcriptions meet an OOM storm: three retries, the CPU fallback.
    run = Running("--audio-file", str(morning), "--realtime", *common, "--trace", str(calm),
                  "--inject-fault", "stt:oom:4", env=env)  # fmt: skip
    try:
        run.wait_log("listening:")
        began = time.monotonic()
        # Off 0.25 s after the first sentence (inside its end-of-utterance pause), back on.
        toggle_at(sock, began + 0.5 + voiced_end_s("voice-us.wav") + 0.25, listening=False)
        toggle_at(sock, began + female_at - 1.0, listening=True)
        # Off in the middle of the second: what was said of it is cut and transcribed.
        toggle_at(sock, began + female_at + voiced_end_s("voice-female.wav") / 2, False)
        toggle_at(sock, began + gb_at - 1.0, listening=True)
        # The display is gone all morning: the text waits, and status says so.
        status = json.loads(control(sock, "status", "--json").stdout)
        assert status["output_waiting"] >= 1 and "failing since" in status["output"]
        assert status["workers"]["control"]["state"] == "running"
        assert typed_lines(typed) == []
        # The third sentence is being spoken (written ahead) when the process is killed:
        # 1.5 s of it heard (16-bit samples), so its first words are whole.
        wait_for(lambda: any(p.stat().st_size > 48000 for p in spool.glob("*.pcm")), 60)
        run.process.send_signal(signal.SIGKILL)
        run.finish()
    finally:
        run.process.kill()
    # A typing call the killed daemon had started runs on without it; were the display back
    # before it looks, it would type a line the restart types again from the spool.
    wait_for(lambda: not typing_calls_running(tmp_path / "bin" / "wtype"), 60)
    flag.write_text("")  # the display is back for the afternoon
    afternoon = Path(tmp_path / "afternoon.wav")
    recording(tmp_path, ("pair.wav", 0)).rename(afternoon)
    # A game holds the card from the start: the daemon gives up the GPU at a gap in speech,
    # re-executes itself on the CPU and the afternoon goes on from where it stopped.
    result = daemon(
        "--audio-file", str(afternoon), "--realtime", *common, "--trace", str(game), env=env
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = typed_lines(typed)
    assert len(lines) == 5, lines
    # In the order said: what waited through the outage and the kill, then the new speech
    # (transcribed while the spool was, and typed after it), through the re-execution.
    assert word_error_rate(US, lines[0]) <= 0.2, lines
    cut_female, cut_gb = words(lines[1]), words(lines[2])
    assert cut_female[:2] == words(FEMALE)[:2] and len(cut_female) < len(words(FEMALE)), lines
    assert cut_gb[:2] == words(GB)[:2] and len(cut_gb) <= len(words(GB)), lines
    assert word_error_rate(PAIR[0], lines[3]) <= 0.2, lines
    assert word_error_rate(PAIR[1], lines[4]) <= 0.2, lines
    log = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["type"] for e in log].count("gpu_released") == 1  # the game: on the CPU
    assert any(e.get("action") == "fallback_to_cpu" for e in log), "the storm's fallback"
    assert "re-executed: running on the CPU" in result.err
    (report,) = [x for x in result.err.splitlines() if "final report: listening" in x]
    assert "control running" in report  # the control thread's health, with the others'
    assert not list(spool.iterdir())
