"""`swictation record`'s loop on a fake clock: what it writes, when it stops, what it says."""

from __future__ import annotations

import io

import pytest

from swictation.adapters.memory import FakeClock, ScriptedProbe
from swictation.application.services.record import RecordError, RecordOptions, record
from swictation.domain.model import MemorySample
from swictation.ports import TraceWriter


class ListWriter(TraceWriter):
    def __init__(self) -> None:
        self.rows: list[tuple[float, float]] = []
        self.closed = False

    def write(self, sample: MemorySample, t: float) -> None:
        self.rows.append((t, sample.used_mib))

    def close(self) -> None:
        self.closed = True


def test_samples_until_the_duration_with_times_from_the_first():
    clock = FakeClock(100.0)
    probe = ScriptedProbe(lambda t: 1000.0 + (t - 100.0), 8192.0, clock)
    writer = ListWriter()
    count = record(probe, clock, writer, RecordOptions(interval_s=0.5, duration_s=2.0))
    assert count == 5
    assert writer.rows == [
        (0.0, 1000.0),
        (0.5, 1000.5),
        (1.0, 1001.0),
        (1.5, 1001.5),
        (2.0, 1002.0),
    ]
    assert writer.closed


def test_a_device_that_cannot_be_read_is_one_error_and_nothing_written():
    clock = FakeClock()
    writer = ListWriter()
    with pytest.raises(RecordError, match="scripted probe has no reading yet"):
        record(ScriptedProbe([(5.0, 1.0)], 10.0, clock), clock, writer, RecordOptions())
    assert writer.rows == []


def test_a_reading_lost_mid_way_is_a_note_and_the_recording_goes_on():
    clock = FakeClock()
    probe = ScriptedProbe(lambda t: None if 0.4 < t < 0.6 else 10.0, 100.0, clock)
    err = io.StringIO()
    writer = ListWriter()
    count = record(probe, clock, writer, RecordOptions(0.5, 1.0), err=err)
    assert count == 2
    assert "note: scripted probe has no reading yet" in err.getvalue()
