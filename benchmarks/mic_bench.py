"""The daemon on the path users take: `swictationd` with no --audio-file, capturing through
sounddevice from a private PulseAudio server (tests/sound_server.py) into which
examples/audio/dictation.wav is played by paplay at real-time pace.

Measured: the time from the last voiced sample of each sentence (where it ends in the file,
plus the moment paplay began) to its line on the daemon's stdout; the daemon's own
utterance-end -> text latency (its flight recorder); and what listening to the microphone's
silence costs (CPU time from /proc over 20 s, resident memory), the all-day idle figure."""

from __future__ import annotations

import codecs
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DICTATION = ROOT / "examples" / "audio" / "dictation.wav"
TICKS = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(ROOT))

from benchmarks.latency import LineClock, Seen  # noqa: E402  (after the path above)


def speech_ends(path: Path, min_silence_s: float = 0.8) -> list[float]:
    """Where each sentence's last voiced sample lies in the file (32 ms frames above -40
    dBFS; a pause of `min_silence_s` separates sentences)."""
    import numpy as np

    from swictation.adapters.audio_file import load_mono_16k

    samples = load_mono_16k(path)
    frame = 512
    count = len(samples) // frame
    rms = np.sqrt((samples[: count * frame].reshape(count, frame) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 10 ** (-40 / 20))
    ends: list[float] = []
    for here, after in zip(loud, [*loud[1:], None], strict=True):
        if after is None or (after - here) * frame / 16000 >= min_silence_s:
            ends.append((here + 1) * frame / 16000)
    return ends


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Listening:
    """swictationd listening to the server, its stdout lines stamped as they arrive."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        daemon = Path(sys.executable).parent / "swictationd"
        self.events = tmp / "events.jsonl"
        self.process = subprocess.Popen(
            [str(daemon), "--probe", "host", "--events", str(self.events),
             "--spool-dir", str(tmp / "spool"), "--socket", str(tmp / "control.sock")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
        )  # fmt: skip
        self._clock = LineClock()
        self.log: list[str] = []
        self._readers = [
            threading.Thread(target=self._out, daemon=True),
            threading.Thread(target=self._err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def lines(self) -> list[Seen]:
        return self._clock.lines

    def _out(self) -> None:
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        text = codecs.getincrementaldecoder("utf-8")("replace")  # a character cut between reads
        while chunk := os.read(fd, 65536):  # as it comes: words typed early have no newline
            self._clock.feed(text.decode(chunk), time.monotonic())

    def _err(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.log.append(line.decode("utf-8", "replace"))

    def wait_log(self, text: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.log):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not listen:\n" + "".join(self.log[-20:]))
            time.sleep(0.05)

    def wait_lines(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)


def q95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def run(idle_s: float = 20.0) -> dict[str, float]:
    from tests.sound_server import SoundServer, why_unavailable

    reason = why_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    ends = speech_ends(DICTATION)
    with tempfile.TemporaryDirectory() as tmp:
        server = SoundServer(Path(tmp) / "server")
        server.start()
        try:
            daemon = Listening(server.client_env(), Path(tmp))
            try:
                daemon.wait_log("listening on ")
                time.sleep(2.0)  # start-up work out of the way
                pid = daemon.process.pid
                cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                time.sleep(idle_s)
                cpu1, wall1 = cpu_seconds(pid), time.monotonic()
                rss = rss_mib(pid)
                began = time.monotonic()
                server.play(DICTATION)
                daemon.wait_lines(len(ends))
            finally:
                daemon.stop()
        finally:
            server.stop()
        utterances = [
            e
            for e in map(json.loads, daemon.events.read_text().splitlines())
            if e["type"] == "utterance"
        ]
    if len(daemon.lines) != len(ends):
        raise RuntimeError(f"{len(daemon.lines)} lines for {len(ends)} sentences")
    pairs = list(zip(daemon.lines, ends, strict=True))
    spoken = [seen.words_at - (began + end) for seen, end in pairs]
    line_ends = [seen.ended_at - (began + end) for seen, end in pairs]
    closed = [e["latency_s"] for e in utterances]
    return {
        "sentences": len(ends),
        "speech_p50": statistics.median(spoken),
        "speech_p95": q95(spoken),
        "line_p50": statistics.median(line_ends),
        "line_p95": q95(line_ends),
        "close_p50": statistics.median(closed),
        "close_p95": q95(closed),
        "idle_cpu": (cpu1 - cpu0) / (wall1 - wall0),
        "idle_rss_mib": rss,
        "idle_s": wall1 - wall0,
    }


def main() -> list[tuple[str, str]]:
    r = run()
    return [
        (
            "microphone: last voiced sample -> text, p50 / p95",
            f"{r['speech_p50']:.2f} s / {r['speech_p95']:.2f} s "
            f"({r['sentences']:.0f} sentences, dictation.wav via paplay)",
        ),
        (
            "microphone: last voiced sample -> end of its line, p50 / p95",
            f"{r['line_p50']:.2f} s / {r['line_p95']:.2f} s",
        ),
        (
            "microphone: utterance end (VAD) -> text (< 0: typed before), p50 / p95",
            f"{r['close_p50']:.2f} s / {r['close_p95']:.2f} s",
        ),
        (
            "microphone: listening to silence, CPU (of one core), memory",
            f"{r['idle_cpu']:.2%}, {r['idle_rss_mib']:.0f} MiB (over {r['idle_s']:.0f} s)",
        ),
    ]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name:<60} {value}")
