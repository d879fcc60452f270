"""`swictation record`: sample the live device into a trace until Ctrl-C or the duration
ends; the writer (an adapter) owns the file formats."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import TextIO

import attrs

from swictation.domain.model import MemorySample, ProbeUnavailable
from swictation.ports import Clock, GpuProbe, TraceWriter


class RecordError(RuntimeError):
    """The device cannot be recorded; one line for the user."""


@attrs.frozen
class RecordOptions:
    interval_s: float = 0.5
    duration_s: float | None = None


def record(
    probe: GpuProbe,
    clock: Clock,
    writer: TraceWriter,
    options: RecordOptions,
    stop: threading.Event | None = None,
    err: TextIO | None = None,
) -> int:
    """Records until `stop` is set (SIGINT/SIGTERM set it) or the duration ends; returns the
    number of samples written."""
    stop = stop or threading.Event()
    first = probe.sample()
    if not isinstance(first, MemorySample):
        raise RecordError(f"cannot read {probe.describe()}: {first.reason}")
    start = first.t
    count = 0
    with ExitStack() as closing:
        closing.callback(probe.close)
        closing.callback(writer.close)
        reading: MemorySample | ProbeUnavailable = first
        while True:
            if isinstance(reading, MemorySample):
                writer.write(reading, reading.t - start)
                count += 1
            elif err is not None:
                print(f"swictation record: note: {reading.reason}", file=err)
            if options.duration_s is not None and clock.now() - start >= options.duration_s:
                break
            if clock.wait(options.interval_s, stop):
                break
            reading = probe.sample()
    return count
