"""Replay's loose ends: it leaves the process's loggers as it found them, and it skips a
flight recording's torn last line with one warning."""

from __future__ import annotations

import io
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
    assert caplog.records[-1].getMessage() == "after replay"
