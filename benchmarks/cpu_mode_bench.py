"""A game fills the card: the issue's rehearsal, in full. `swictationd` plays a recording at
real-time pace while a replayed trace holds 99 % of an 8 GiB card for a minute in the
middle; the daemon gives up the (simulated) GPU, dictates on the CPU, and returns once the
card has had room for `gpu_return_s`. Prints whether every sentence was typed once and in
order, and exactly as in a run of the same recording without the game (Whisper tiny.en
mishears a few words whatever the daemon does), the exit status, and how long capture was
not listening at each re-execution.

    python benchmarks/run.py cpu_mode
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
SENTENCES = (
    ("voice-us.wav", "The weather today is cold and windy with some rain."),
    ("voice-gb.wav", "Please send the report to the team before lunch."),
    ("voice-female.wav", "Remember to buy milk, bread and coffee on the way home."),
    ("stereo-48k.wav", "Good morning. Please open a new document."),
)
ROUNDS = 5  # 20 sentences, 5 s of quiet after each: about 2 minutes
GAME = (20.0, 80.0)  # seconds of the run during which the trace holds 99 %
CARD_MIB = 8192.0
RETURN_S = 15.0
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _recording(path: Path) -> list[str]:
    pieces, said = [np.zeros(8000, np.float32)], []
    for _ in range(ROUNDS):
        for name, text in SENTENCES:
            voice, rate = soundfile.read(AUDIO / name, dtype="float32", always_2d=True)
            mono = voice.mean(axis=1)
            if rate != 16000:
                mono = soxr.resample(mono, rate, 16000)
            pieces += [mono.astype(np.float32), np.zeros(5 * 16000, np.float32)]
            said.append(text)
    soundfile.write(path, np.concatenate(pieces), 16000)
    return said


def _trace(path: Path) -> None:
    lines = ["timestamp, index, memory.used [MiB], memory.total [MiB]"]
    for i in range(1201):
        t = i * 0.5
        used = 0.99 * CARD_MIB if GAME[0] <= t < GAME[1] else 2900.0
        stamp = (dt.datetime(2026, 11, 1, 10) + dt.timedelta(seconds=t)).strftime(
            "%Y/%m/%d %H:%M:%S.%f"
        )
        lines.append(f"{stamp[:-3]}, 0, {used:.0f} MiB, {CARD_MIB:.0f} MiB")
    path.write_text("\n".join(lines) + "\n")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _at(line: str) -> float:
    match = STAMP.match(line)
    assert match, line
    return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _deaf_gaps(log: list[str]) -> list[float]:
    """Seconds from each stop for a re-execution to capture listening again."""
    gaps, stopped = [], None
    for line in log:
        if "stopping: re-executing" in line:
            stopped = _at(line)
        elif "listening:" in line and stopped is not None:
            gaps.append(_at(line) - stopped)
            stopped = None
    return gaps


def _daemon(where: Path, *probe: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "swictationd"),
            *("--audio-file", str(where / "day.wav"), "--realtime", *probe),
            *("--config", str(where / "c.toml"), "--spool-dir", str(where / "spool")),
            *("--events", str(where / "events.jsonl")),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "XDG_STATE_HOME": str(where / "state")},
    )
    return done, time.monotonic() - began


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        said = _recording(where / "day.wav")
        _trace(where / "game.csv")
        (where / "c.toml").write_text(f"[guard]\ngpu_return_s = {RETURN_S}\n")
        # The same recording without the game: what the model makes of it when nothing moves.
        quiet, _ = _daemon(where, "--probe", "none")
        (where / "events.jsonl").unlink(missing_ok=True)
        done, wall = _daemon(where, "--probe", "trace", "--trace", str(where / "game.csv"))
        events = [json.loads(x) for x in (where / "events.jsonl").read_text().splitlines()]
    lines, baseline = done.stdout.splitlines(), quiet.stdout.splitlines()
    heard, expected = _words(" ".join(lines)), _words(" ".join(said))
    exact = sum(_words(t) == _words(x) for t, x in zip(lines, said, strict=False))
    kinds = [e["type"] for e in events]
    return {
        "exit": done.returncode,
        "sentences": f"{len(lines)} typed of {len(said)}, {exact} word for word as said",
        "words": f"{len(heard)} typed of {len(expected)}",
        "baseline": "identical, line for line"
        if lines == baseline
        else f"DIFFERENT: {len(set(lines) ^ set(baseline))} lines differ",
        "misheard": sorted(
            {t for t, x in zip(lines, said, strict=False) if _words(t) != _words(x)}
        ),
        "changes": f"{kinds.count('gpu_released')} released, "
        f"{kinds.count('gpu_returned')} returned",
        "deaf": _deaf_gaps(done.stderr.splitlines()),
        "wall": wall,
    }


def main() -> list[tuple[str, str]]:
    result = run()
    deaf, misheard = result["deaf"], result["misheard"]
    assert isinstance(deaf, list) and isinstance(misheard, list)
    return [
        ("game on the card", f"99 % of 8 GiB from {GAME[0]:.0f} s to {GAME[1]:.0f} s"),
        ("exit status", str(result["exit"])),
        ("sentences", str(result["sentences"])),
        ("words", str(result["words"])),
        ("the same run without the game", str(result["baseline"])),
        ("typed otherwise than said (both runs)", "; ".join(misheard) or "-"),
        ("GPU", str(result["changes"])),
        ("not listening per re-execution", ", ".join(f"{g:.2f} s" for g in deaf) or "-"),
        ("wall time", f"{float(str(result['wall'])):.1f} s"),
    ]


if __name__ == "__main__":
    for key, value in main():
        print(f"{key:<32}{value}")
