"""Runs the installed command-line programs as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
BIN = Path(sys.executable).parent


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def run_command(*args: str, timeout: float = 300, **kwargs) -> Result:
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def swictation():
    return lambda *args, **kw: run_command("swictation", *args, **kw)


GiB = 1024.0


def write_csv(path: Path, others, total_mib: float, duration_s: float, step_s: float) -> Path:
    """An nvidia-smi CSV (with units) of a scripted workload: `others(t)` MiB used."""
    lines = ["timestamp, index, memory.used [MiB], memory.total [MiB]"]
    count = round(duration_s / step_s) + 1
    for i in range(count):
        t = i * step_s
        whole = int(t)
        stamp = (
            f"2026/11/01 {10 + whole // 3600:02d}:{whole // 60 % 60:02d}:"
            f"{whole % 60:02d}.{round((t - whole) * 1000):03d}"
        )
        lines.append(f"{stamp}, 0, {others(t):.0f} MiB, {total_mib:.0f} MiB")
    path.write_text("\n".join(lines) + "\n")
    return path
