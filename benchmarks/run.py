#!/usr/bin/env python3
"""Runs every benchmark and prints one table: `make bench` (or `python benchmarks/run.py`)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import advise_bench
import cpu_mode_bench
import daemon_bench
import idle_bench
import latency
import memory_bench
import mic_bench
import replay_bench

BENCHES = {
    "replay": replay_bench.main,
    "advise": advise_bench.main,
    "memory": memory_bench.main,
    "daemon": daemon_bench.main,
    "idle": idle_bench.main,
    "mic": mic_bench.main,
    "latency": latency.main,
    "cpu_mode": cpu_mode_bench.main,
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(names: list[str]) -> int:
    chosen = names or list(BENCHES)
    unknown = [n for n in chosen if n not in BENCHES]
    if unknown:
        print(
            f"benchmarks: unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHES)})",
            file=sys.stderr,
        )
        return 2
    print(f"machine: {machine()}")
    for name in chosen:
        rows = BENCHES[name]()
        width = max(len(k) for k, _ in rows)
        print(f"\n{name}\n{'-' * (width + 30)}")
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
