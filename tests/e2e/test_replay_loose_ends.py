"""Replay's loose ends: it leaves the process's loggers as it found them, and it skips a
flight recording's torn last line with one warning."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest

from swictation.application.entrypoints.replay import ReplayOptions, replay_main

EXAMPLES = Path(__file__).parents[2] / "examples"
QUIETED = ("swictation.guard", "swictation.tenants")


@pytest.mark.parametrize("trace", ["demo-emergency.csv", "no-such-trace.csv"])
def test_replay_puts_the_loggers_levels_back_when_it_ends(trace, caplog, monkeypatch):
    # Replay embedded in a longer-lived process (a test run, a notebook): the guard's live
    # log is quiet while replay runs (the summary tells what it did), and speaks again after,
    # whether replay succeeded or failed.
    for name in [k for k in os.environ if k.startswith("SWICTATION_")]:
        monkeypatch.delenv(name)
    before = {name: logging.getLogger(name).level for name in QUIETED}
    assert all(level < logging.ERROR for level in before.values())
    options = ReplayOptions(trace=str(EXAMPLES / "traces" / trace), models=("stt=400MiB",))
    with caplog.at_level(logging.WARNING):
        code = replay_main(options, io.StringIO(), io.StringIO())
        assert code == (0 if trace.startswith("demo") else 2)
        assert not [r for r in caplog.records if r.name in QUIETED]
        assert {name: logging.getLogger(name).level for name in QUIETED} == before
        logging.getLogger("swictation.guard").warning("after replay")
        assert [r.getMessage() for r in caplog.records if r.name in QUIETED] == ["after replay"]


# -- a torn last line ---------------------------------------------------------------------


@pytest.fixture
def replay(swictation, monkeypatch):
    for name in [k for k in os.environ if k.startswith("SWICTATION_")]:
        monkeypatch.delenv(name)
    return lambda *args: swictation("replay", *args)


def _record(path: Path, first: int, count: int) -> None:
    """One daemon run's flight recording, written by the daemon's own recorder."""
    from swictation.adapters.events import JsonlEventSink

    sink = JsonlEventSink(path, append=True)
    for i in range(first, first + count):
        sink.emit(_sample(i))
    sink.close()


def _sample(i: int):
    from swictation.domain.model import Event

    detail = {"used_mib": 1000.0 + i, "total_mib": 8192.0, "busy": False}
    return Event(float(i), "sample", "NORMAL", usage=(1000.0 + i) / 8192.0, detail=detail)


def _torn(i: int) -> bytes:
    """The first half of a sample's line: what a crash (or an older daemon on a full disk)
    left of it."""
    line = json.dumps(_sample(i).to_dict(), separators=(",", ":")).encode()
    return line[: len(line) // 2]


def _warned(result, where: str, what: str = "the last line is cut off; skipped") -> None:
    assert result.code == 0, result.err
    lines = result.err.strip().splitlines()
    assert lines == [f"swictation replay: warning: {where}: {what}"]


BEFORE_RESTART = "the last line before a restart is cut off; skipped"


def test_a_flight_recording_cut_by_a_crash_replays_with_one_warning(tmp_path, replay):
    flight = tmp_path / "flight.jsonl"
    _record(flight, 0, 5)  # line 1 is the run's start, lines 2-6 its samples
    with flight.open("ab") as out:
        out.write(_torn(5))
    result = replay(str(flight), "--json")
    _warned(result, f"{flight}:7")
    assert result.json()["samples"] == 5


def test_the_torn_last_line_of_a_run_before_a_restart_is_skipped_too(tmp_path, replay):
    # The daemon was restarted after the crash and went on recording into the same file.
    flight = tmp_path / "flight.jsonl"
    _record(flight, 0, 5)
    with flight.open("ab") as out:
        out.write(_torn(5))
    _record(flight, 0, 3)
    assert flight.read_text().count("\n") == 1 + 5 + 1 + 1 + 3  # the restart began a new line
    result = replay(str(flight), "--json")
    _warned(result, f"{flight}:7", BEFORE_RESTART)
    assert result.json()["samples"] == 8
    # An older daemon appended its start line to the torn one: skipped the same way, and the
    # run that follows is read.
    glued = tmp_path / "glued.jsonl"
    text = flight.read_bytes().replace(_torn(5) + b"\n", _torn(5))
    glued.write_bytes(text)
    result = replay(str(glued), "--json")
    _warned(result, f"{glued}:7", BEFORE_RESTART)
    assert result.json()["samples"] == 8


def test_a_bad_line_in_the_middle_is_still_an_error_naming_file_and_line(tmp_path, replay):
    flight = tmp_path / "flight.jsonl"
    _record(flight, 0, 2)
    with flight.open("ab") as out:
        out.write(_torn(2) + b"\n")  # half a line, then more of the same run
        out.write(json.dumps(_sample(3).to_dict()).encode() + b"\n")
    result = replay(str(flight), "--json")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"swictation replay: error: {flight}:4: not a JSON object")


def test_a_csv_line_cut_before_its_unit_is_skipped_not_read_as_a_tiny_card(tmp_path, replay):
    # "8192 MiB" cut to "81" still reads as a number: an 81 MiB card, a would-be OOM.
    trace = tmp_path / "nvsmi.csv"
    rows = "".join(f"2026/11/01 10:00:{i:02d}.000, 0, {4000 + i} MiB, 8192 MiB\n" for i in range(5))
    header = "timestamp, index, memory.used [MiB], memory.total [MiB]\n"
    trace.write_text(header + rows + "2026/11/01 10:00:05.000, 0, 4005 MiB, 81")
    result = replay(str(trace), "--json")
    _warned(result, f"{trace}:7")
    body = result.json()
    assert (body["samples"], body["oom_events"]) == (5, 0)
