"""A compressed day (issue 8, partial): an output outage, an OOM storm on a simulated GPU,
a SIGKILL in the middle of a sentence and a restart, and every word typed exactly once (the
oldest first; see below for the order after a restart). The card-filling game of the full
day-in-the-life is not here: a SHUTDOWN still ends the daemon (the CPU mode of issue 8 is
not built yet)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.conftest import GiB, write_csv
from tests.e2e.test_daemon import daemon, wait_for, word_error_rate, words
from tests.e2e.test_daemon_reliability import Running, recording, typed_lines, typing_stand_in

US = "The weather today is cold and windy with some rain."
GB = "Please send the report to the team before lunch."
FEMALE = "Remember to buy milk, bread and coffee on the way home."


def test_an_outage_a_storm_and_a_sigkill_and_every_word_is_typed_once_in_order(tmp_path):
    flag = tmp_path / "display-back"
    typed = typing_stand_in(tmp_path, fail_until=flag)
    spool = tmp_path / "spool"
    calm = write_csv(tmp_path / "calm.csv", lambda t: 2900.0, 8 * GiB, 600, 1.0)
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    common = ["--output", "wtype", "--spool-dir", str(spool), "--probe", "trace",
              "--trace", str(calm)]  # fmt: skip
    morning = recording(tmp_path, ("silence", 0.5), ("voice-us.wav", 0), ("silence", 1.5),
                        ("voice-gb.wav", 0), ("silence", 4.0))  # fmt: skip
    run = Running("--audio-file", str(morning), "--realtime", *common, env=env)
    try:
        # The display is gone: the first sentence is transcribed and waits to be typed.
        run.wait_log("output failing")
        assert typed_lines(typed) == []
        # The second sentence is being spoken (written ahead) when the process is killed.
        wait_for(lambda: any(p.stat().st_size > 32000 for p in spool.glob("*.pcm")), 60)
        run.process.send_signal(signal.SIGKILL)
        run.finish()
    finally:
        run.process.kill()
    flag.write_text("")  # the display is back for the afternoon
    afternoon = Path(tmp_path / "afternoon.wav")
    recording(tmp_path, ("silence", 0.5), ("voice-female.wav", 0), ("silence", 1.0)).rename(
        afternoon
    )
    events = tmp_path / "events.jsonl"
    result = daemon(
        "--audio-file", str(afternoon), *common, "--inject-fault", "stt:oom:4",
        "--events", str(events), env=env,
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = typed_lines(typed)
    assert len(lines) == 3, lines
    assert word_error_rate(US, lines[0]) <= 0.2  # waited through the outage and the kill
    # The rest of the spool and the new speech: live speech is held back by one spooled
    # utterance at most, so the sentence cut by the kill may come after the new one.
    (cut,) = [x for x in lines[1:] if words(x)[:2] == words(GB)[:2]]
    (new,) = [x for x in lines[1:] if x != cut]
    assert word_error_rate(FEMALE, new) <= 0.2
    said = words(US) + words(GB) + words(FEMALE)
    heard = words(" ".join(lines))
    assert not [w for w in set(heard) if heard.count(w) > said.count(w)], lines
    assert "fallback" in events.read_text()  # the storm ended in the CPU fallback
    assert not list(spool.iterdir())
