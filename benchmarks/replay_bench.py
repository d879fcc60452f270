"""Replay speed: a day of nvidia-smi samples at 10 Hz through `swictation replay`, against a
bare loop that only parses the file (csv + datetime.strptime) and classifies each row."""

from __future__ import annotations

import csv
import math
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROWS = 864_000
TOTAL = 12288
HEADER = (
    "timestamp, name, pci.bus_id, index, memory.total [MiB], memory.used [MiB], "
    "memory.free [MiB], utilization.gpu [%]"
)


def write_day(path: Path, rows: int = ROWS) -> None:
    """A desktop day: quiet hours, work hours with a local LLM coming and going, bursts."""
    rng = random.Random(1)
    start = datetime(2026, 11, 20, 0, 0, 0, tzinfo=UTC)
    with path.open("w") as out:
        out.write(HEADER + "\n")
        for i in range(rows):
            t = i / 10
            used = 1300 + 200 * math.sin(t / 900) + rng.uniform(-30, 30)
            hour = (t / 3600) % 24
            if 9 <= hour < 18 and int(t / 1800) % 3 == 0:
                used += 6800  # an LLM server for half an hour in three
            if int(t / 600) % 7 == 3:
                used += 1500  # a game or a render now and then
            used = min(TOTAL - 10, used)
            stamp = start + timedelta(seconds=t)
            out.write(
                f"{stamp:%Y/%m/%d %H:%M:%S}.{stamp.microsecond // 1000:03d}, "
                f"NVIDIA GeForce RTX 3060, 00000000:01:00.0, 0, {TOTAL} MiB, {used:.0f} MiB, "
                f"{TOTAL - used:.0f} MiB, {rng.randint(0, 99)} %\n"
            )


def bare_loop(path: Path) -> dict[str, int]:
    """The baseline: parse every row with csv and strptime, classify it by threshold."""
    counts = {"NORMAL": 0, "WARNING": 0, "CRITICAL": 0, "EMERGENCY": 0}
    with path.open(newline="") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        next(reader)
        for row in reader:
            datetime.strptime(row[0], "%Y/%m/%d %H:%M:%S.%f")
            used = float(row[5].split()[0])
            total = float(row[4].split()[0])
            usage = used / total
            if usage >= 0.95:
                counts["EMERGENCY"] += 1
            elif usage >= 0.90:
                counts["CRITICAL"] += 1
            elif usage >= 0.80:
                counts["WARNING"] += 1
            else:
                counts["NORMAL"] += 1
    return counts


def best_of(runs: int, fn) -> float:
    best = math.inf
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def main(runs: int = 3) -> list[tuple[str, str]]:
    command = Path(sys.executable).parent / "swictation"
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "day.csv"
        write_day(trace)
        size_mb = trace.stat().st_size / 1e6
        bare = best_of(runs, lambda: bare_loop(trace))
        replay = best_of(
            runs,
            lambda: subprocess.run(
                [
                    str(command),
                    "replay",
                    str(trace),
                    "--model",
                    "stt=3600MiB",
                    "--model",
                    "vad=2MiB",
                    "--json",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            ),
        )
    return [
        ("trace", f"{ROWS:,} rows of nvidia-smi CSV ({size_mb:.0f} MB), 24 h at 10 Hz"),
        ("bare loop (csv + strptime + classify)", f"{bare:.2f} s"),
        ("swictation replay, end to end", f"{replay:.2f} s"),
        ("replay / bare loop", f"{replay / bare:.2f}"),
    ]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name:<40} {value}")
