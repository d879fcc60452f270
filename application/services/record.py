"""`swictation record`: sample the live device into the project's JSONL trace (and optionally
nvidia-smi-compatible CSV) until Ctrl-C, with everything written."""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import attrs

from swictation.domain.model import MemorySample, ProbeUnavailable
from swictation.ports import Clock, GpuProbe


class RecordError(RuntimeError):
    """The device cannot be recorded; one line for the user."""


@attrs.frozen
class RecordOptions:
    out: str
    interval_s: float = 0.5
    csv: str | None = None
    duration_s: float | None = None
    gpu: str = "0"


def _stamp(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def record(
    probe: GpuProbe,
    clock: Clock,
    options: RecordOptions,
    wall: Callable[[], float] | None = None,
    stop: threading.Event | None = None,
    err: TextIO | None = None,
) -> int:
    """Records until `stop` is set (SIGINT/SIGTERM set it) or the duration ends; returns the
    number of samples written."""
    wall_clock = wall or time.time
    stop = stop or threading.Event()
    first = probe.sample()
    if not isinstance(first, MemorySample):
        raise RecordError(f"cannot read {probe.describe()}: {first.reason}")
    start = first.t
    count = 0
    with ExitStack() as files:
        files.callback(probe.close)
        out = files.enter_context(Path(options.out).open("w", encoding="utf-8"))
        csv_out = (
            files.enter_context(Path(options.csv).open("w", encoding="utf-8"))
            if options.csv
            else None
        )
        if csv_out is not None:
            csv_out.write(
                "timestamp, index, memory.used [MiB], memory.total [MiB], memory.free [MiB]\n"
            )
        reading: MemorySample | ProbeUnavailable = first
        while True:
            if isinstance(reading, MemorySample):
                line = {
                    "t": round(reading.t - start, 3),
                    "type": "sample",
                    "gpu": options.gpu,
                    "time": round(wall_clock(), 3),
                    "used_mib": round(reading.used_mib, 1),
                    "total_mib": round(reading.total_mib, 1),
                }
                if reading.own_mib is not None:
                    line["own_mib"] = round(reading.own_mib, 1)
                if reading.processes:
                    line["processes"] = [
                        {"pid": p.pid, "name": p.name, "used_mib": round(p.used_mib, 1)}
                        for p in reading.processes
                    ]
                out.write(json.dumps(line) + "\n")
                out.flush()
                if csv_out is not None:
                    csv_out.write(
                        f"{_stamp(wall_clock())}, {options.gpu}, {reading.used_mib:.0f} MiB, "
                        f"{reading.total_mib:.0f} MiB, {reading.free_mib:.0f} MiB\n"
                    )
                    csv_out.flush()
                count += 1
            elif err is not None:
                print(f"swictation record: note: {reading.reason}", file=err)
            if options.duration_s is not None and clock.now() - start >= options.duration_s:
                break
            if clock.wait(options.interval_s, stop):
                break
            reading = probe.sample()
    return count


def stop_on_signals(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM end the recording cleanly instead of interrupting a write."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
