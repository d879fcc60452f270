"""The trace files `swictation record` writes: the project's JSONL (what replay and the
flight recorder read) and, optionally, nvidia-smi-compatible CSV beside it."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from swictation.domain.model import MemorySample
from swictation.ports import TraceWriter

CSV_HEADER = "timestamp, index, memory.used [MiB], memory.total [MiB], memory.free [MiB]\n"


def _stamp(epoch: float) -> str:
    """nvidia-smi's timestamp format, in UTC."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


class TraceFileWriter(TraceWriter):
    """Opens its files at the first sample (nothing is created for a device that cannot be
    read) and flushes every line, so Ctrl-C or a crash loses nothing written."""

    def __init__(
        self,
        out: str | Path,
        csv: str | Path | None = None,
        gpu: str = "0",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._paths = (Path(out), None if csv is None else Path(csv))
        self._gpu = gpu
        self._wall = wall
        self._files = ExitStack()
        self._out: TextIO | None = None
        self._csv: TextIO | None = None

    def _open(self) -> TextIO:
        out_path, csv_path = self._paths
        self._out = self._files.enter_context(out_path.open("w", encoding="utf-8"))
        if csv_path is not None:
            self._csv = self._files.enter_context(csv_path.open("w", encoding="utf-8"))
            self._csv.write(CSV_HEADER)
        return self._out

    def write(self, sample: MemorySample, t: float) -> None:
        out = self._out or self._open()
        wall = self._wall()
        line: dict[str, Any] = {
            "t": round(t, 3),
            "type": "sample",
            "gpu": self._gpu,
            "time": round(wall, 3),
            "used_mib": round(sample.used_mib, 1),
            "total_mib": round(sample.total_mib, 1),
        }
        if sample.own_mib is not None:
            line["own_mib"] = round(sample.own_mib, 1)
        if sample.processes:
            line["processes"] = [
                {"pid": p.pid, "name": p.name, "used_mib": round(p.used_mib, 1)}
                for p in sample.processes
            ]
        out.write(json.dumps(line) + "\n")
        out.flush()
        if self._csv is not None:
            self._csv.write(
                f"{_stamp(wall)}, {self._gpu}, {sample.used_mib:.0f} MiB, "
                f"{sample.total_mib:.0f} MiB, {sample.free_mib:.0f} MiB\n"
            )
            self._csv.flush()

    def close(self) -> None:
        self._files.close()
