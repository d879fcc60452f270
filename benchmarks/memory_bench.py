"""Replay's memory on a big file: 10 million rows (about 11.6 days at 10 Hz) through
`swictation replay`, peak resident memory of the whole process. The target is under 200 MB."""

from __future__ import annotations

import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 10_000_000
TOTAL = 24576


def write_rows(path: Path, rows: int = ROWS) -> None:
    """Seconds, used MiB, total MiB: a desktop's day, again and again."""
    with path.open("w") as out:
        out.write("timestamp, memory.used [MiB], memory.total [MiB]\n")
        chunk: list[str] = []
        for i in range(rows):
            t = i / 10
            used = 9000 + 6000 * math.sin(t / 1800) + (i * 7919 % 200)
            chunk.append(f"{t:.1f}, {used:.0f}, {TOTAL}\n")
            if len(chunk) == 100_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


def main() -> list[tuple[str, str]]:
    command = Path(sys.executable).parent / "swictation"
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "big.csv"
        write_rows(trace)
        size_mb = trace.stat().st_size / 1e6
        began = time.perf_counter()
        subprocess.run(
            [str(command), "replay", str(trace), "--model", "stt=3600MiB", "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return [
        ("trace", f"{ROWS:,} rows of CSV ({size_mb:.0f} MB)"),
        ("swictation replay, end to end", f"{seconds:.0f} s"),
        ("peak resident memory", f"{peak_mb:.0f} MB"),
    ]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name:<40} {value}")
