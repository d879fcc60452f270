"""The dictation pipeline built from in-memory parts, for the unit tests: scripted audio,
an energy VAD, a scripted recognizer, a list output, models in memory on a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from swictation.adapters.memory import (
    EnergyVoiceDetector,
    EventList,
    FakeClock,
    InMemoryModelHost,
    ListAudioSource,
    ListOutput,
    ScriptedRecognizer,
)
from swictation.adapters.spool import Spool
from swictation.application.services.pipeline import DictationPipeline
from swictation.application.services.recovery import RecoveringRunner
from swictation.domain.model import ModelState, Placement
from swictation.domain.recovery import RecoveryTracker
from swictation.ports import AudioBlock

RATE, BLOCK = 16000, 512


def audio(*parts: tuple[str, float]) -> list[AudioBlock]:
    """('speech'|'silence', seconds) parts as 32 ms blocks (speech: a 200 Hz tone)."""
    samples = []
    for kind, seconds in parts:
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        samples.append(0.3 * np.sin(2 * np.pi * 200 * t) if kind == "speech" else np.zeros(n))
    whole = np.concatenate(samples).astype(np.float32)
    whole = np.pad(whole, (0, -len(whole) % BLOCK))
    return [AudioBlock(i / RATE, whole[i : i + BLOCK]) for i in range(0, len(whole), BLOCK)]


def block_at(seconds: float) -> int:
    """The index of the 32 ms block that holds second `seconds` of the audio."""
    return int(seconds * RATE) // BLOCK


class Waiting(ListAudioSource):
    """Before each block of `points`, waits until its `ready()` is true (the worker has done
    what the test needs): the test holds the audio there instead of racing the clock."""

    def __init__(self, blocks: list[AudioBlock], points: dict[int, Callable[[], bool]]) -> None:
        super().__init__(blocks)
        self._points = points

    def blocks(self):
        for i, block in enumerate(super().blocks()):
            ready = self._points.get(i)
            if ready is not None:
                for _ in range(6000):  # 30 s: a busy machine is slow, never wrong
                    if ready():
                        break
                    threading.Event().wait(0.005)
                else:
                    raise AssertionError(f"the worker never got there (block {i})")
            yield block


class Built(NamedTuple):
    pipeline: DictationPipeline
    output: Any
    stt: Any
    events: EventList
    host: InMemoryModelHost


def build(
    blocks,
    texts,
    tmp_path,
    *,
    source=None,
    host=None,
    output=None,
    stt=None,
    kept=None,
    retry=(0.01, 0.05),
    workers=None,
    clock=None,
    vad=None,
    settings=None,
) -> Built:
    """The pipeline hearing `blocks` (or `source`) and transcribing them as `texts`, its
    spool (and fallback) in `tmp_path`; text that cannot be delivered goes to `kept`."""
    clock = clock or FakeClock()
    host = host or InMemoryModelHost(clock, [ModelState("vad", 2), ModelState("stt", 1500)])
    events = EventList()
    output = output if output is not None else ListOutput()
    stt = stt or ScriptedRecognizer(texts)
    extra: dict[str, Any] = {} if workers is None else {"workers": workers}
    if settings is not None:
        extra["settings"] = settings
    pipeline = DictationPipeline(
        source if source is not None else ListAudioSource(blocks),
        vad if vad is not None else EnergyVoiceDetector(0.05),
        stt,
        output,
        RecoveringRunner(host, RecoveryTracker(), events, clock),
        events,
        Spool(tmp_path / "spool", fallback=tmp_path / "fallback"),
        keep_undelivered=(lambda texts: kept.extend(texts) or tmp_path / "undelivered.txt")
        if kept is not None
        else (lambda texts: None),
        retry_s=retry,
        **extra,
    )
    return Built(pipeline, output, stt, events, host)


def with_fakes(container, texts, blocks) -> tuple[ListOutput, EventList]:
    """The same parts swapped into the application's container with `override`: the daemon
    it builds hears `blocks` and transcribes them as `texts`; its output and its events."""
    from dependency_injector import providers

    clock = FakeClock()
    host = InMemoryModelHost(
        clock, (ModelState("vad", 2.0, Placement.CPU), ModelState("stt", 75.0, Placement.CPU))
    )
    output, events = ListOutput(), EventList()
    for name, part in (
        ("clock", clock),
        ("host", host),
        ("source", ListAudioSource(blocks)),
        ("vad", EnergyVoiceDetector()),
        ("recognizer", ScriptedRecognizer(texts)),
        ("output", output),
        ("events", events),
    ):
        getattr(container, name).override(providers.Object(part))
    return output, events


def run_all(pipeline: DictationPipeline) -> None:
    pipeline.start_worker()
    pipeline.capture()
    pipeline.finish(drain_timeout_s=None)


class PolicyWrapper:
    """A test's wrapper around a real policy: everything the guard reads is the wrapped
    policy's (`self.inner`); a subclass overrides `observe` to count or record."""

    inner: Any

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def level(self) -> Any:
        return self.inner.level

    @property
    def quiet_after_s(self) -> float:
        return float(self.inner.quiet_after_s)

    @property
    def thresholds(self) -> Any:
        return self.inner.thresholds

    @property
    def tuning(self) -> Any:
        return self.inner.tuning

    def residency_of(self, name: str) -> Any:
        return self.inner.residency_of(name)
