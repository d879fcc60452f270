"""The daemon on this machine's CPU: VAD and STT real-time factors, the pipeline's real-time
factor, end-of-speech-to-text latency with the file paced at real time, and the guard's own
cost (CPU and memory) at the default and the fastest polling interval."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
DICTATION = ROOT / "examples" / "audio" / "dictation.wav"


def _parts(realtime: bool, spool_dir: Path | None = None):
    from swictation.adapters.audio_file import FileAudioSource
    from swictation.adapters.clock import SystemClock
    from swictation.adapters.memory import EventList, ListOutput
    from swictation.adapters.model_host import RealModelHost
    from swictation.adapters.silero import SileroVoiceDetector, load_silero
    from swictation.adapters.spool import Spool
    from swictation.adapters.torch_models import TorchResidency
    from swictation.adapters.whisper_stt import WhisperRecognizer, whisper_residency
    from swictation.application.services.pipeline import DictationPipeline
    from swictation.application.services.recovery import RecoveringRunner
    from swictation.domain.recovery import RecoveryTracker

    host = RealModelHost()
    host.register("vad", TorchResidency(load_silero()))
    host.register("stt", whisper_residency(None, "cpu"))
    events = EventList()
    output = ListOutput()
    pipeline = DictationPipeline(
        FileAudioSource(DICTATION, realtime=realtime),
        SileroVoiceDetector(host),
        WhisperRecognizer(host),
        output,
        RecoveringRunner(host, RecoveryTracker(), events, SystemClock()),
        events,
        Spool(spool_dir or Path(tempfile.mkdtemp(prefix="swictation-bench-"))),
        realtime=realtime,
    )
    return host, pipeline, output


def vad_rtf() -> tuple[float, float]:
    from swictation.adapters.audio_file import load_mono_16k
    from swictation.adapters.model_host import RealModelHost
    from swictation.adapters.silero import SileroVoiceDetector, load_silero
    from swictation.adapters.torch_models import TorchResidency
    from swictation.ports import AudioBlock

    host = RealModelHost()
    host.register("vad", TorchResidency(load_silero()))
    vad = SileroVoiceDetector(host)
    samples = load_mono_16k(DICTATION)
    blocks = [
        AudioBlock(i / 16000, samples[i : i + 512]) for i in range(0, len(samples) - 511, 512)
    ]
    began = time.perf_counter()
    for block in blocks:
        vad.speech_probability(block)
    took = time.perf_counter() - began
    return took / (len(samples) / 16000), len(samples) / 16000


def pipeline_rtf(runs: int = 3) -> dict[str, float]:
    """The whole pipeline on the file as fast as it goes, best of `runs`."""
    from swictation.adapters.audio_file import load_mono_16k

    duration = len(load_mono_16k(DICTATION)) / 16000
    best: dict[str, float] = {}
    for _ in range(runs):
        _, pipeline, _ = _parts(realtime=False)
        began = time.perf_counter()
        pipeline.start_worker()
        pipeline.capture()
        pipeline.finish(None)
        took = time.perf_counter() - began
        stats = pipeline.stats
        if not best or took / duration < best["pipeline_rtf"]:
            best = {
                "audio_s": duration,
                "pipeline_rtf": took / duration,
                "stt_rtf": stats.stt_s / stats.audio_s,
                "utterances": stats.utterances,
            }
    return best


def spool_cost() -> tuple[float, float]:
    """Bytes the write-ahead spool writes per minute of speech (every utterance as WAV when
    queued, speech in progress as raw samples), and the real-time factor with it."""
    with tempfile.TemporaryDirectory() as tmp:
        _, pipeline, _ = _parts(realtime=False, spool_dir=Path(tmp))
        began = time.perf_counter()
        pipeline.start_worker()
        pipeline.capture()
        pipeline.finish(None)
        took = time.perf_counter() - began
        written = pipeline.spool.written_bytes
        speech_min = pipeline.stats.audio_s / 60
    return written / speech_min / 2**20, took


def latency() -> dict[str, float]:
    _, pipeline, _ = _parts(realtime=True)
    pipeline.start_worker()
    pipeline.capture()
    pipeline.finish(None)
    stats = pipeline.stats
    closed = stats.latencies
    spoken = stats.speech_latencies

    def q(xs: list[float], p: int) -> float:
        return statistics.quantiles(xs, n=20, method="inclusive")[p] if len(xs) > 1 else xs[0]

    return {
        "n": len(closed),
        "close_p50": statistics.median(closed),
        "close_p95": q(closed, 18),
        "speech_p50": statistics.median(spoken),
        "speech_p95": q(spoken, 18),
    }


def _guard(interval_s: float):
    from swictation.adapters.clock import SystemClock
    from swictation.adapters.events import NullEventSink
    from swictation.adapters.host_memory import HostMemoryProbe
    from swictation.adapters.memory import InMemoryModelHost
    from swictation.application.services.guard import GuardService
    from swictation.domain.model import ModelState, Thresholds
    from swictation.domain.policy import GuardPolicy

    clock = SystemClock()
    th = attrs.evolve(Thresholds(), interval_s=interval_s, min_interval_s=min(0.1, interval_s))
    host = InMemoryModelHost(clock, [ModelState("vad", 2), ModelState("stt", 1500)])
    guard = GuardService(HostMemoryProbe(clock), host, GuardPolicy(th), NullEventSink(), clock)
    guard.tick()  # imports and first-call costs out of the way
    return guard


def guard_cost(interval_s: float, seconds: float) -> tuple[float, float, int]:
    """CPU share of one core (the guard thread's own CPU time over wall time), then, in a
    second run under tracemalloc (which slows allocation, so not timed), the memory the
    monitor holds. The probe is psutil's (system RAM): NVML is not on this machine."""
    guard = _guard(interval_s)
    cpu = [0.0]

    def run() -> None:
        began = time.thread_time()
        guard.run(duration_s=seconds)
        cpu[0] = time.thread_time() - began

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    ticks = guard.ticks
    guard = _guard(interval_s)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    guard.run(duration_s=min(seconds, 5.0))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cpu[0] / seconds, max(current, peak) - base, ticks


def main() -> list[tuple[str, str]]:
    vad, duration = vad_rtf()
    rtf = pipeline_rtf()
    lat = latency()
    disk, _ = spool_cost()
    calm = guard_cost(2.0, 20.0)
    fast = guard_cost(0.1, 10.0)
    return [
        (
            "recording",
            f"examples/audio/dictation.wav, {duration:.1f} s, {rtf['utterances']} utterances",
        ),
        ("VAD real-time factor (Silero, 32 ms blocks)", f"{vad:.3f}"),
        ("STT real-time factor (tiny.en int8, per utterance)", f"{rtf['stt_rtf']:.3f}"),
        ("pipeline real-time factor (file as fast as it goes)", f"{rtf['pipeline_rtf']:.3f}"),
        (
            "utterance end (VAD) -> text, p50 / p95",
            f"{lat['close_p50']:.2f} s / {lat['close_p95']:.2f} s (n={lat['n']}, paced)",
        ),
        (
            "last voiced sample -> text, p50 / p95 (incl. 0.8 s silence)",
            f"{lat['speech_p50']:.2f} s / {lat['speech_p95']:.2f} s",
        ),
        ("write-ahead spool: disk written per minute of speech", f"{disk:.2f} MiB"),
        (
            "guard at 2 s: CPU, memory",
            f"{calm[0]:.4%} of a core, {calm[1] / 1024:.0f} KiB ({calm[2]} polls)",
        ),
        (
            "guard at 0.1 s: CPU, memory",
            f"{fast[0]:.4%} of a core, {fast[1] / 1024:.0f} KiB ({fast[2]} polls)",
        ),
    ]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name:<58} {value}")
