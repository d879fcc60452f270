#!/usr/bin/env python3
"""Writes the example traces under examples/traces/ (deterministic; made by this project)."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "examples" / "traces"
START = datetime(2026, 11, 20, 19, 0, 0, tzinfo=UTC)


def stamp(t: float) -> str:
    moment = START + timedelta(seconds=t)
    return moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def evening(t: float, rng: random.Random) -> float:
    """A 12 GiB desktop card: compositor and browser, then a local LLM server that loads,
    grows its cache, shares the card with a video tab, and is stopped."""
    used = 1400 + 40 * math.sin(t / 37) + rng.uniform(-25, 25)
    if t >= 300:
        used += min(6600, (t - 300) * 800)  # the LLM loads at ~800 MiB/s
    if t >= 600:
        used += min(1300, (t - 600) * 400)  # its KV cache grows with a long prompt
    if 900 <= t < 1200:
        used += 600  # a video tab
    if t >= 1260:
        used -= min(7900, (t - 1260) * 1500)  # the LLM server is stopped
    return max(300.0, used)


def write_evening() -> None:
    rng = random.Random(2026)
    total = 12288
    lines = [
        "timestamp, name, pci.bus_id, index, memory.total [MiB], memory.used [MiB], "
        "memory.free [MiB], utilization.gpu [%]"
    ]
    for i in range(1800):
        t = float(i)
        used = round(evening(t, rng))
        lines.append(
            f"{stamp(t)}, NVIDIA GeForce RTX 3060, 00000000:01:00.0, 0, {total} MiB, "
            f"{used} MiB, {total - used} MiB, {rng.randint(0, 40)} %"
        )
    (HERE / "evening-llm.csv").write_text("\n".join(lines) + "\n")


def write_two_gpus() -> None:
    """Two cards in one nvidia-smi log without units; GPU 1 is busy with training."""
    rng = random.Random(7)
    lines = ["timestamp, index, memory.used [MiB], memory.total [MiB]"]
    for i in range(600):
        t = i * 0.5
        gpu0 = 900 + rng.uniform(-20, 20) + (5200 if 120 <= t < 220 else 0)
        gpu1 = 20000 + 3000 * min(1.0, t / 200) + rng.uniform(-100, 100)
        lines.append(f"{stamp(t)}, 0, {gpu0:.0f}, 8192")
        lines.append(f"{stamp(t)}, 1, {gpu1:.0f}, 24576")
    (HERE / "two-gpus-nounits.csv").write_text("\n".join(lines) + "\n")


def write_session() -> None:
    """The project's JSONL: a recorded daemon session with its own models on the card."""
    rng = random.Random(11)
    out = [
        {"type": "model", "model": "stt", "size_mib": 3600.0},
        {"type": "model", "model": "vad", "size_mib": 2.0},
    ]
    for i in range(900):
        t = i * 0.5
        others = 2100 + rng.uniform(-30, 30) + (4000 if 150 <= t < 300 else 0)
        own = 3602.0
        out.append(
            {
                "t": t,
                "type": "sample",
                "gpu": 0,
                "used_mib": round(others + own, 1),
                "total_mib": 10240.0,
                "own_mib": own,
            }
        )
    (HERE / "session.jsonl").write_text("".join(json.dumps(o) + "\n" for o in out))


def write_demo() -> None:
    """For `make demo`: an 8 GiB card where a game starts 4 s into the dictation, pushes the
    card into EMERGENCY for about 5 s and quits."""
    rng = random.Random(3)
    total = 8192
    lines = ["timestamp, index, memory.used [MiB], memory.total [MiB]"]
    for i in range(400):
        t = i * 0.1
        used = 2900 + rng.uniform(-15, 15)
        if 4 <= t < 10:
            used += min(4980, (t - 4) * 2500)  # the game loads its textures
        lines.append(f"{stamp(t)}, 0, {used:.0f} MiB, {total} MiB")
    (HERE / "demo-emergency.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_demo()
    HERE.mkdir(parents=True, exist_ok=True)
    write_evening()
    write_two_gpus()
    write_session()
