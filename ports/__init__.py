"""The ports: what the core needs from the world, as typing.Protocol interfaces."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

from swictation.domain.model import Event, MemorySample, ModelState, ProbeUnavailable
from swictation.domain.recovery import ErrorKind
from swictation.domain.segmenter import SAMPLE_RATE


@attrs.frozen
class MoveResult:
    """What a move did; `done` False means the decision was not carried out, and why."""

    model: str
    device: str
    done: bool
    seconds: float = 0.0
    reason: str = ""


@attrs.frozen
class CleanupResult:
    freed_mib: float = 0.0
    detail: str = ""
    objects: int | None = None  # what garbage collection found, where it ran


@attrs.frozen
class AudioBlock:
    """Mono float32 samples at `rate` Hz starting `t` seconds into the stream."""

    t: float
    samples: Any
    rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


@runtime_checkable
class GpuProbe(Protocol):
    def sample(self) -> MemorySample | ProbeUnavailable: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...

    @property
    def origin(self) -> float | None:
        """When the replayed trace this probe reads began, on its clock (a re-executed
        daemon's trace goes on from there); None for a live card or none."""
        return None


@runtime_checkable
class ModelHost(Protocol):
    def models(self) -> tuple[ModelState, ...]: ...

    def move(self, name: str, device: str) -> MoveResult: ...

    def cleanup(self, aggressive: bool = False) -> CleanupResult: ...

    def use(self, name: str) -> AbstractContextManager[str]:
        """Hold `name` in place for one inference; yields the device it is on."""
        ...

    def classify_error(self, error: BaseException) -> ErrorKind: ...


@attrs.frozen
class CaptureHealth:
    """What capture lost: blocks dropped to overflow, times the device went away."""

    lost_blocks: int = 0
    device_losses: int = 0


@runtime_checkable
class AudioSource(Protocol):
    def blocks(self) -> Iterator[AudioBlock]: ...

    def close(self) -> None: ...

    def health(self) -> CaptureHealth:
        """A file or a list loses nothing; a live device says what it lost."""
        return CaptureHealth()


@runtime_checkable
class VoiceDetector(Protocol):
    def speech_probability(self, block: AudioBlock) -> float: ...

    def reset(self) -> None: ...


@runtime_checkable
class SpeechRecognizer(Protocol):
    name: str

    def transcribe(self, block: AudioBlock) -> str: ...


@attrs.frozen
class Word:
    """A recognised word (with its leading space and punctuation, as the recogniser wrote
    it) and where it lies in the audio it was heard in, in seconds from the block's start."""

    text: str
    start_s: float
    end_s: float


@runtime_checkable
class WordRecognizer(Protocol):
    """A recogniser that can also say where each word ends (vad.partial_every_s needs it)."""

    def transcribe_words(self, block: AudioBlock) -> list[Word]: ...


@runtime_checkable
class TextOutput(Protocol):
    def emit(self, text: str, ends: bool = True) -> None:
        """Types `text`. `ends`: it ends an utterance (a line on stdout, a space when typed
        at the cursor); False: words typed early, and more of the same utterance follows."""
        ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float: ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep up to `seconds`, waking early when `stop` is set; returns whether it is."""
        ...


@runtime_checkable
class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...

    def health(self) -> SinkHealth:
        """Events it could not keep (a flight recorder on a full disk); a sink that cannot
        fail says so by inheriting this."""
        return SinkHealth()


@attrs.frozen
class SinkHealth:
    dropped: int = 0  # events lost
    failing: bool = False  # the last write failed
    last_error: str | None = None


@runtime_checkable
class TraceWriter(Protocol):
    """Where `swictation record` puts each sample; `t` is seconds since the first."""

    def write(self, sample: MemorySample, t: float) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class FailureReport(Protocol):
    """Where a worker that survives its own failures says so (`where`: which part of it
    failed), and says that part works again; called from the `except` block, so that a
    traceback can be logged."""

    def failed(self, where: str, error: BaseException) -> None: ...

    def succeeded(self, where: str) -> None: ...
