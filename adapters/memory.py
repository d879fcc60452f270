"""In-memory adapters that really implement the ports, for tests and the simulator."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import attrs

from swictation.domain.model import (
    Event,
    MemorySample,
    ModelState,
    Placement,
    ProbeUnavailable,
    Tuning,
)
from swictation.domain.recovery import ErrorKind
from swictation.ports import (
    AudioBlock,
    AudioSource,
    CleanupResult,
    Clock,
    EventSink,
    GpuProbe,
    ModelHost,
    MoveResult,
    SpeechRecognizer,
    TextOutput,
    VoiceDetector,
)


class FakeClock(Clock):
    """Time that moves only when told to; `wait` advances it instead of sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        self._now = t

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if not stop.is_set():
            self._now += max(0.0, seconds)
        return stop.is_set()


UsageScript = Sequence[tuple[float, float]] | Callable[[float], float | None]


class ScriptedProbe(GpuProbe):
    """Device usage from a script: a list of (t, used MiB) steps, or a function of time
    that returns used MiB (None: the probe cannot read the device then)."""

    def __init__(self, script: UsageScript, total_mib: float, clock: Clock) -> None:
        self._clock = clock
        self._total = total_mib
        if callable(script):
            self._fn = script
        else:
            steps = sorted(script)
            times = [s[0] for s in steps]

            def step(t: float) -> float | None:
                i = bisect.bisect_right(times, t) - 1
                return steps[i][1] if i >= 0 else None

            self._fn = step

    def sample(self) -> MemorySample | ProbeUnavailable:
        t = self._clock.now()
        used = self._fn(t)
        if used is None:
            return ProbeUnavailable(t, "scripted probe has no reading yet")
        return MemorySample(t, used, self._total)

    def describe(self) -> str:
        return f"scripted probe, {self._total:.0f} MiB card"

    def close(self) -> None:
        return None


class SimulatedCudaError(RuntimeError):
    """Stands in for a CUDA error raised by a model that the in-memory host holds."""

    def __init__(self, kind: ErrorKind, model: str) -> None:
        super().__init__(f"simulated {kind.value} error in {model}")
        self.kind = kind


@attrs.define
class _Hosted:
    state: ModelState
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    moving_until: float = 0.0
    failures: list[ErrorKind] = attrs.field(factory=list)


class InMemoryModelHost(ModelHost):
    """Tracks where each model lives; a move takes size / rate seconds of the clock's time,
    during which the memory is still on the card (offload) or already on it (restore)."""

    def __init__(
        self,
        clock: Clock,
        models: Iterable[ModelState] = (),
        tuning: Tuning | None = None,
        cuda_available: bool = True,
        move_wait_s: float = 5.0,
    ) -> None:
        self._clock = clock
        self._move_wait_s = move_wait_s
        self._tuning = tuning or Tuning()
        self._cuda = cuda_available
        self._models: dict[str, _Hosted] = {m.name: _Hosted(m) for m in models}
        self._fail_moves: set[str] = set()
        self.cleanups: list[bool] = []
        self.cache_mib = 0.0  # what a cleanup would give back (tests fill it)

    def register(self, model: ModelState) -> None:
        self._models[model.name] = _Hosted(model)

    def _settle(self, hosted: _Hosted) -> ModelState:
        state = hosted.state
        if state.placement in (Placement.TO_CPU, Placement.TO_GPU) and (
            self._clock.now() >= hosted.moving_until
        ):
            done = Placement.CPU if state.placement is Placement.TO_CPU else Placement.GPU
            hosted.state = state = attrs.evolve(state, placement=done)
        return state

    def models(self) -> tuple[ModelState, ...]:
        return tuple(self._settle(h) for h in self._models.values())

    def placement(self, name: str) -> Placement:
        return self._settle(self._models[name]).placement

    def gpu_resident_mib(self) -> float:
        return sum(s.size_mib for s in self.models() if s.placement.holds_gpu)

    def next_change(self) -> float | None:
        """When the next transfer in flight ends, if any."""
        ends = [
            h.moving_until
            for h in self._models.values()
            if h.state.placement in (Placement.TO_CPU, Placement.TO_GPU)
        ]
        return min(ends) if ends else None

    def move(self, name: str, device: str) -> MoveResult:  # noqa: PLR0911 -- one refusal per guard clause, each a value
        hosted = self._models.get(name)
        if hosted is None:
            return MoveResult(name, device, False, reason=f"no model named {name!r}")
        if device != "cpu" and not self._cuda:
            return MoveResult(name, device, False, reason="CUDA is not available on this machine")
        if name in self._fail_moves:
            return MoveResult(name, device, False, reason="move failed (injected)")
        if not hosted.lock.acquire(timeout=self._move_wait_s):
            return MoveResult(
                name, device, False, reason=f"still in use after {self._move_wait_s:g}s; will retry"
            )
        try:
            state = self._settle(hosted)
            to_gpu = device != "cpu"
            if state.placement in (Placement.TO_CPU, Placement.TO_GPU):
                return MoveResult(name, device, False, reason="a move is already in flight")
            if (state.placement is Placement.GPU) == to_gpu:
                return MoveResult(name, device, True, reason="already there")
            seconds = self._tuning.transfer_s(state.size_mib)
            hosted.moving_until = self._clock.now() + seconds
            moving = Placement.TO_GPU if to_gpu else Placement.TO_CPU
            hosted.state = attrs.evolve(state, placement=moving)
            return MoveResult(name, device, True, seconds)
        finally:
            hosted.lock.release()

    def cleanup(self, aggressive: bool = False) -> CleanupResult:
        self.cleanups.append(aggressive)
        freed, self.cache_mib = self.cache_mib, 0.0
        return CleanupResult(freed, f"released {freed:.1f} MiB of in-memory cache")

    def fail_moves(self, name: str, failing: bool = True) -> None:
        (self._fail_moves.add if failing else self._fail_moves.discard)(name)

    def inject(self, name: str, kind: ErrorKind, times: int = 1) -> None:
        """The next `times` uses of `name` raise a simulated `kind` error (on the GPU only)."""
        self._models[name].failures.extend([kind] * times)

    @contextmanager
    def use(self, name: str) -> Iterator[str]:
        hosted = self._models[name]
        with hosted.lock:
            state = self._settle(hosted)
            # A real host blocks until a move ends; the fake answers with where it is going.
            device = "cuda" if state.placement in (Placement.GPU, Placement.TO_GPU) else "cpu"
            if hosted.failures and device == "cuda":
                raise SimulatedCudaError(hosted.failures.pop(0), name)
            yield device

    def classify_error(self, error: BaseException) -> ErrorKind:
        return error.kind if isinstance(error, SimulatedCudaError) else ErrorKind.OTHER


class ResidentModelsProbe(GpuProbe):
    """A probe that adds the host's GPU-resident models to another probe's reading: how a
    trace (recorded without our models) is replayed with them on the card.

    The trace's usage is taken to hold this daemon's CUDA context; `released_mib` is what
    leaves it when the daemon has given the GPU up (the context, in CPU mode)."""

    def __init__(self, inner: GpuProbe, host: InMemoryModelHost, released_mib: float = 0.0) -> None:
        self._inner = inner
        self._host = host
        self._released_mib = released_mib

    def sample(self) -> MemorySample | ProbeUnavailable:
        reading = self._inner.sample()
        if isinstance(reading, ProbeUnavailable):
            return reading
        own = self._host.gpu_resident_mib()
        return MemorySample(
            reading.t,
            max(0.0, reading.used_mib - self._released_mib) + own,
            reading.total_mib,
            (reading.own_mib or 0.0) + own,
            reading.processes,
        )

    @property
    def origin(self) -> float | None:
        """The replayed trace's start on the clock, where the inner probe has one."""
        return self._inner.origin

    def describe(self) -> str:
        released = ""
        if self._released_mib:
            released = f", less the {self._released_mib:g} MiB context given up"
        return f"{self._inner.describe()} + simulated model residency{released}"

    def close(self) -> None:
        self._inner.close()


class ListOutput(TextOutput):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, text: str) -> None:
        self.lines.append(text)


class EventList(EventSink):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        return None

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]


class ListAudioSource(AudioSource):
    def __init__(self, blocks: Iterable[AudioBlock]) -> None:
        self._blocks = list(blocks)
        self.closed = False

    def blocks(self) -> Iterator[AudioBlock]:
        for block in self._blocks:
            if self.closed:
                return
            yield block

    def close(self) -> None:
        self.closed = True


class EnergyVoiceDetector(VoiceDetector):
    """Speech wherever the block's mean absolute amplitude exceeds `level`."""

    def __init__(self, level: float = 0.01) -> None:
        self._level = level

    def speech_probability(self, block: AudioBlock) -> float:
        samples = block.samples
        if len(samples) == 0:
            return 0.0
        energy = sum(abs(float(x)) for x in samples) / len(samples)
        return 1.0 if energy > self._level else 0.0

    def reset(self) -> None:
        return None


class ScriptedRecognizer(SpeechRecognizer):
    """Returns scripted texts in order, one per utterance."""

    name = "scripted"

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = list(texts)
        self.heard: list[AudioBlock] = []

    def transcribe(self, block: AudioBlock) -> str:
        self.heard.append(block)
        return self._texts.pop(0) if self._texts else ""


class NoProbe(GpuProbe):
    """`--probe none`: the guard runs, knows it cannot see the device, and says so."""

    def __init__(self, clock: Clock, reason: str = "no GPU probe configured (--probe none)"):
        self._clock = clock
        self._reason = reason

    def sample(self) -> MemorySample | ProbeUnavailable:
        return ProbeUnavailable(self._clock.now(), self._reason)

    def describe(self) -> str:
        return "none"

    def close(self) -> None:
        return None
