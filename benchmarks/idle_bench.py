"""What listening to silence costs: `swictationd` started as a user would (a file of room
noise at -70 dBFS played at real-time pace stands in for a quiet microphone; the guard polls
the host's memory at its calm 2 s interval), and after it says `listening` the process's
CPU time is read from /proc over 20 s, with its resident memory. Then the first utterance
after a start against the ones after it (the warm-up at load)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "fixtures" / "audio"
TICKS = os.sysconf("SC_CLK_TCK")


def _daemon() -> list[str]:
    found = Path(sys.executable).parent / "swictationd"
    return [str(found)] if found.exists() else [sys.executable, "-m", "swictation.daemon"]


def quiet_room(path: Path, seconds: float, dbfs: float = -70.0) -> Path:
    import numpy as np
    import soundfile

    noise = np.random.default_rng(8).normal(0.0, 10 ** (dbfs / 20), int(seconds * 16000))
    soundfile.write(path, noise.astype(np.float32), 16000)
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Started:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*_daemon(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.err: list[str] = []
        self.out: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stderr, self.err)).start()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.out)).start()

    @staticmethod
    def _pump(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.err):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start:\n" + "".join(self.err[-20:]))
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


# Thresholds under this machine's RAM use (the host probe's "card"), so that the guard holds
# WARNING or CRITICAL for the whole run, as a daemon beside someone else's big job would.
HELD = {
    "WARNING": {"SWICTATION_THRESHOLDS_WARNING": "0.02"},
    "CRITICAL": {"SWICTATION_THRESHOLDS_WARNING": "0.01", "SWICTATION_THRESHOLDS_CRITICAL": "0.02"},
}


def idle(seconds: float = 20.0, dbfs: float = -70.0, held: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        # Longer than any start-up on a busy machine: the file must outlast the window.
        room = quiet_room(Path(tmp) / "room.wav", seconds + 90, dbfs)
        events = Path(tmp) / "events.jsonl"
        run = Started(
            "--audio-file", str(room), "--realtime", "--probe", "host",
            "--spool-dir", str(Path(tmp) / "spool"), "--events", str(events),
            env=HELD[held] if held else None,
        )  # fmt: skip
        try:
            run.wait_for("listening:")
            time.sleep(2.0)  # start-up work (warm-up, the first polls) out of the way
            pid = run.process.pid
            cpu0, wall0 = cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            cpu1, wall1 = cpu_seconds(pid), time.monotonic()
            rss = rss_mib(pid)
            level, cleanups = _pressure(events)
        finally:
            run.stop()
    return {
        "cpu": (cpu1 - cpu0) / (wall1 - wall0),
        "rss_mib": rss,
        "seconds": wall1 - wall0,
        "level": level,
        "cleanups": cleanups,
        "load": os.getloadavg()[0],
    }


def microphone_idle(seconds: float = 40.0) -> dict[str, float]:
    """The same, through the microphone: a private PulseAudio server (tests/sound_server.py)
    whose default source is the monitor of a silent sink, read by PortAudio."""
    sys.path.insert(0, str(ROOT))
    from tests.sound_server import SoundServer, why_unavailable

    reason = why_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory() as tmp:
        server = SoundServer(Path(tmp) / "server")
        server.start()
        try:
            run = Started(
                "--probe", "host", "--spool-dir", str(Path(tmp) / "spool"),
                "--socket", str(Path(tmp) / "control.sock"),
                env=server.client_env(),
            )  # fmt: skip
            try:
                run.wait_for("listening on ")
                time.sleep(2.0)
                pid = run.process.pid
                cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                time.sleep(seconds)
                cpu1, wall1 = cpu_seconds(pid), time.monotonic()
                rss = rss_mib(pid)
            finally:
                run.stop()
        finally:
            server.stop()
    return {
        "cpu": (cpu1 - cpu0) / (wall1 - wall0),
        "rss_mib": rss,
        "seconds": wall1 - wall0,
        "load": os.getloadavg()[0],
    }


def microphone_row() -> tuple[str, str]:
    got = microphone_idle()
    return (
        "listening to the microphone's silence (PulseAudio, no file)",
        f"{got['cpu']:.2%}, {got['rss_mib']:.0f} MiB (over {got['seconds']:.0f} s, "
        f"load {got['load']:.1f})",
    )


def _pressure(events: Path) -> tuple[str, int]:
    """The level the guard holds and how many cleanups it has run so far."""
    import json

    level, cleanups = "NORMAL", 0
    for line in events.read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "level":
            level = record["level"]
        elif record.get("action") in ("collect_garbage", "aggressive_cleanup"):
            cleanups += 1
    return level, cleanups


def held_row(level: str, seconds: float = 60.0) -> tuple[str, str]:
    got = idle(seconds, held=level)
    if got["level"] != level:
        raise RuntimeError(f"the guard held {got['level']}, not {level}")
    return (
        f"held at {level} (thresholds under the host's RAM use), quiet room",
        f"{got['cpu']:.2%}, {got['cleanups']} cleanups in {got['seconds'] + 2:.0f} s "
        f"after listening (load {got['load']:.1f})",
    )


def first_utterance() -> dict[str, float]:
    """The same sentence three times, 2 s apart: the STT time of the first against the rest."""
    import json

    import numpy as np
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        voice, _ = soundfile.read(AUDIO / "voice-us.wav", dtype="float32")
        pause = np.zeros(32000, np.float32)
        path = Path(tmp) / "three.wav"
        soundfile.write(
            path, np.concatenate([pause, voice, pause, voice, pause, voice, pause]), 16000
        )
        events = Path(tmp) / "events.jsonl"
        done = subprocess.run(
            [*_daemon(), "--audio-file", str(path), "--probe", "none", "--events", str(events),
             "--spool-dir", str(Path(tmp) / "spool")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        del done
        stt = [
            record["stt_s"]
            for record in map(json.loads, events.read_text().splitlines())
            if record["type"] == "utterance"
        ]
    return {"first": stt[0], "others": sum(stt[1:]) / len(stt[1:])}


def main() -> list[tuple[str, str]]:
    quiet = idle()
    noisy = idle(dbfs=-50.0)
    first = first_utterance()
    return [
        (
            "listening to a quiet room (-70 dBFS): CPU of one core, RSS",
            f"{quiet['cpu']:.2%}, {quiet['rss_mib']:.0f} MiB (over {quiet['seconds']:.0f} s)",
        ),
        (
            "listening to a noisy room (-50 dBFS, VAD on every block)",
            f"{noisy['cpu']:.2%}, {noisy['rss_mib']:.0f} MiB (over {noisy['seconds']:.0f} s)",
        ),
        (
            "first utterance after start vs the next ones (STT time)",
            f"{first['first']:.2f} s vs {first['others']:.2f} s",
        ),
        microphone_row(),
        held_row("WARNING"),
        held_row("CRITICAL"),
    ]


if __name__ == "__main__":
    if sys.argv[1:]:  # e.g. `idle_bench.py WARNING CRITICAL microphone`: those rows alone
        for which in sys.argv[1:]:
            row = microphone_row() if which == "microphone" else held_row(which)
            print("{:<58} {}".format(*row))
        sys.exit(0)
    for name, value in main():
        print(f"{name:<58} {value}")
