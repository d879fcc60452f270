"""`swictation replay --advise` on a day of nvidia-smi samples at 10 Hz (864,000 rows): every
candidate setting replayed, on all cores. The target is under 30 s on 2 cores."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replay_bench import ROWS, write_day


def main() -> list[tuple[str, str]]:
    command = Path(sys.executable).parent / "swictation"
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "day.csv"
        write_day(trace)
        began = time.perf_counter()
        done = subprocess.run(
            [str(command), "replay", str(trace), "--model", "stt=3600MiB", "--advise", "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - began
    import json

    body = json.loads(done.stdout)
    return [
        ("trace", f"{ROWS:,} rows of nvidia-smi CSV, 24 h at 10 Hz"),
        ("settings tried", str(body["tried"])),
        ("swictation replay --advise, end to end", f"{seconds:.1f} s"),
        ("best", body["advice"][0]["label"]),
    ]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name:<40} {value}")
