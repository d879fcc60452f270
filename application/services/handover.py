"""What one daemon process hands the next when it re-executes itself (a SIGHUP, giving up the
GPU, taking it back): the GPU mode to start in, the replayed trace's time origin, how much
of an audio file was heard, whether dictation was toggled off, and the control-socket
lock's descriptor; carried in one environment variable. (The flight recorder starts a new
run at each start, as after any restart; replay lays the runs end to end.) The stop at a
gap in speech that comes before a re-execution, and the decision to re-execute."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping

import attrs
import cattrs

from swictation.application.services.stop import StopSignal
from swictation.domain.gpu_mode import GpuMode, ModeChange, Tenure
from swictation.domain.model import Event
from swictation.domain.policy import Policy
from swictation.ports import AudioBlock, AudioSource, CaptureHealth, EventSink, GpuProbe

log = logging.getLogger("swictation")

ENV = "SWICTATION_HANDOVER"

_converter = cattrs.Converter()
_converter.register_unstructure_hook(GpuMode, lambda mode: mode.value)
_converter.register_structure_hook(GpuMode, lambda value, _kind: GpuMode(value))


@attrs.frozen
class Handover:
    """Times are seconds on CLOCK_MONOTONIC, which is the same for every process of the
    system, so a clock carried across the re-execution goes on where it was."""

    tenure: Tenure = attrs.field(factory=Tenure)
    trace_origin: float | None = None  # when the replayed trace began
    audio_offset: int = 0  # samples of --audio-file heard before
    lock_fd: int | None = None  # the control socket's flock, inherited across exec
    listening: bool = True  # toggled off stays off: a re-execution never turns the mic on

    def encode(self) -> str:
        return json.dumps(_converter.unstructure(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Handover:
        """ValueError, in words, for anything that is not a handover."""
        try:
            return _converter.structure(json.loads(text), cls)
        except (ValueError, TypeError, cattrs.BaseValidationError) as error:
            raise ValueError(f"{ENV} is not a handover: {error}") from None


def take_handover(environ: MutableMapping[str, str]) -> Handover | None:
    """The handover from the process this one replaced, removed from the environment (so a
    program this one starts never sees it); None for a fresh start."""
    text = environ.pop(ENV, None)
    if text is None:
        return None
    try:
        return Handover.decode(text)
    except ValueError as error:
        log.warning("%s; starting afresh", error)
        return None


def wall_clock(monotonic_t: float) -> float:
    """A time on the monotonic clock as seconds since the epoch."""
    return time.time() - (time.monotonic() - monotonic_t)


class GapStop(AudioSource):
    """Wraps the audio source: once armed, capture ends at the first gap in speech (after
    the pipeline has listened to the block that ended the speech), so an utterance is never
    cut by a re-execution; after `max_wait_s` of unbroken speech it ends anyway (the open
    speech is then cut and transcribed, as at any stop)."""

    def __init__(self, source: AudioSource, max_wait_s: float = 60.0) -> None:
        self._source = source
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._armed: Callable[[], None] | None = None
        self._armed_at = 0.0
        self._in_speech: Callable[[], bool] = lambda: False
        self.stopped = False

    def arm(self, at_gap: Callable[[], None], in_speech: Callable[[], bool]) -> None:
        """Ends capture at the first block after which `in_speech()` is false (the pipeline
        that hears this source says whether speech is open); `at_gap()` is called then, on
        the capture thread."""
        with self._lock:
            if self._armed is None:
                self._armed_at = time.monotonic()
            self._armed = at_gap
            self._in_speech = in_speech

    def disarm(self) -> bool:
        """False when too late: capture has already ended at a gap."""
        with self._lock:
            self._armed = None
            return not self.stopped

    @property
    def armed(self) -> bool:
        return self._armed is not None

    def blocks(self) -> Iterator[AudioBlock]:
        for block in self._source.blocks():
            yield block
            # Back here once the pipeline has listened to `block`.
            if self._armed is not None and self._at_gap():
                return

    def _at_gap(self) -> bool:
        waited = time.monotonic() - self._armed_at
        if self._in_speech() and waited < self._max_wait_s:
            return False
        with self._lock:
            at_gap = self._armed
            if at_gap is None:
                return False
            self.stopped = True
        if waited >= self._max_wait_s:
            log.warning("no gap in speech for %.0f s: cutting the speech in progress", waited)
        at_gap()
        return True

    @property
    def position(self) -> int | None:
        """The next sample of a file to be read (None for a live source)."""
        value = getattr(self._source, "position", None)
        return value if isinstance(value, int) else None

    def close(self) -> None:
        self._source.close()

    def health(self) -> CaptureHealth:
        return self._source.health()

    def describe(self) -> str:
        describe = getattr(self._source, "describe", None)
        return str(describe()) if describe is not None else type(self._source).__name__


class Reexecution:
    """Whether this process re-executes itself once it has stopped, and what it hands the
    next: asked for by a SIGHUP (`request`), or by the guard's GPU-mode decisions
    (`change_mode`, carried out at the next gap in speech: capture ends there, the queue
    drains, the daemon stops and re-executes)."""

    def __init__(
        self,
        gap: GapStop,
        stop: StopSignal,
        events: EventSink,
        policy: Policy,
        probe: GpuProbe,
        listening: threading.Event,
        in_speech: Callable[[], bool],
        start_time: float,
    ) -> None:
        self._gap = gap
        self._in_speech = in_speech  # the pipeline's: whether an utterance is open
        self._stop = stop
        self._events = events
        self._policy = policy
        self._probe = probe
        self._listening = listening
        self._start_time = start_time  # the flight recorder's t = 0
        self.handover: Handover | None = None  # None: no re-execution

    def request(self, tenure: Tenure) -> Handover:
        """Re-execute once stopped, in `tenure`'s mode, going on where this process is."""
        self.handover = Handover(
            tenure,
            trace_origin=self._probe.origin,
            audio_offset=self._gap.position or 0,
            listening=self._listening.is_set(),
        )
        return self.handover

    def change_mode(self, change: ModeChange | None) -> None:
        """The guard's GPU-mode decision (None: a return called off)."""
        if change is None:
            self._gap.disarm()
            return
        self._gap.arm(lambda: self._at_gap(change), self._in_speech)

    def _at_gap(self, change: ModeChange) -> None:
        """On the capture thread, at the gap: the handover, and the stop."""
        tenure = change.tenure
        handover = self.request(tenure)
        where = "on the CPU" if change.to_cpu else "on the GPU"
        kind = "gpu_released" if change.to_cpu else "gpu_returned"
        self._events.emit(
            Event(
                time.monotonic() - self._start_time,
                kind,
                self._policy.level.name,
                detail={"reason": tenure.reason, "audio_offset": handover.audio_offset},
            )
        )
        self._stop.request(f"re-executing {where}: {tenure.reason}")
