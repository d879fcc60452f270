"""Whether this daemon holds the GPU at all, on `transitions`: on the GPU, leaving it (a
SHUTDOWN: the card stayed full with only our CUDA context left on it), on the CPU watching
for room, or returning. A mode change is a re-execution of the daemon (a CUDA context cannot
be freed inside a process): the machine decides when, the application carries it out at the
next gap in speech, and the next process starts in the mode it was handed."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import attrs
from transitions import EventData

from swictation.domain.model import MemorySample, ModelState, Thresholds
from swictation.domain.transition_table import table_machine, triggers

# A return that ends in another give-up sooner than this many return waits doubles the next
# wait (a game in its menu for two minutes, then playing again), up to MAX_BACKOFF_FACTOR.
SHORT_STINT_FACTOR = 10.0
MAX_BACKOFF_FACTOR = 16.0


class GpuMode(enum.Enum):
    ON_GPU = "ON_GPU"
    RELEASING = "RELEASING"  # re-executing on the CPU at the next gap in speech
    ON_CPU = "ON_CPU"  # no CUDA context: dictating on the CPU, watching the card for room
    RETURNING = "RETURNING"  # room held long enough: re-executing on the GPU at the next gap


_M = GpuMode
# (trigger, sources, destination); a trigger with no matching row changes nothing.
TRANSITIONS: tuple[tuple[str, tuple[GpuMode, ...], GpuMode], ...] = (
    ("leave", (_M.ON_GPU,), _M.RELEASING),
    ("room_held", (_M.ON_CPU,), _M.RETURNING),
    ("room_lost", (_M.RETURNING,), _M.ON_CPU),
)
TRIGGERS = triggers(TRANSITIONS)


@attrs.frozen
class Tenure:
    """What one process hands the next about the GPU: the mode to start in (ON_GPU or
    ON_CPU), when (seconds
    on the system-wide monotonic clock) and why the GPU was given up or taken back, and how
    many short stints on the GPU in a row lengthen the next wait."""

    mode: GpuMode = GpuMode.ON_GPU
    since_t: float | None = None
    reason: str = ""
    backoff_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    returned_t: float | None = None  # when the GPU was last taken back


@attrs.frozen
class ModeChange:
    """A decision to re-execute, at the next gap in speech, as `tenure` says (its mode is
    where the next process starts: ON_CPU or ON_GPU)."""

    t: float
    tenure: Tenure

    @property
    def to_cpu(self) -> bool:
        return self.tenure.mode is GpuMode.ON_CPU


def room_for_models(
    sample: MemorySample,
    models: Iterable[ModelState],
    context_mib: float,
    thresholds: Thresholds,
    working_mib: dict[str, float] | None = None,
) -> bool:
    """Whether the card, as read with nothing of ours on it, has room for every model, its
    working memory and a CUDA context, below the offload point by the margin."""
    working = dict(working_mib or {})
    models = tuple(models)
    need = sum(m.size_mib for m in models) + context_mib
    work = sum(max(m.working_mib, working.get(m.name, 0.0)) for m in models)
    own = sample.own_mib or 0.0
    return thresholds.restore_room(sample.used_mib - own + need, sample.total_mib, work)


class GpuModeMachine:
    """The GPU mode of this process. Inputs: the pressure machine's SHUTDOWN (`shutdown`) and,
    on the CPU, whether the card has room for our models (`watch`); time is an input."""

    # Set on the instance by transitions.Machine.
    state: str
    trigger: Callable[..., bool]

    def __init__(self, return_after_s: float, tenure: Tenure | None = None) -> None:
        tenure = tenure or Tenure()
        if tenure.mode not in (GpuMode.ON_GPU, GpuMode.ON_CPU):
            raise ValueError(f"a process starts on the GPU or on the CPU, not {tenure.mode}")
        self.tenure = tenure
        self._return_after_s = return_after_s
        self.room_since: float | None = None
        self.change: ModeChange | None = None
        conditions: dict[str, list[Callable[[EventData], bool]]] = {
            "room_held": [self._room_held_long_enough],
        }
        before: dict[str, list[Callable[[EventData], None]]] = {
            "leave": [self._on_leave],
            "room_held": [self._on_return],
            "room_lost": [self._on_room_lost],
        }
        self._machine = table_machine(
            self, GpuMode, TRANSITIONS, tenure.mode, None, conditions, before
        )

    @property
    def mode(self) -> GpuMode:
        """The machine's own state, as a GpuMode: the one record of the mode."""
        return GpuMode(self.state)

    @property
    def on_gpu(self) -> bool:
        """Whether this process holds (or may hold) the GPU: models and a CUDA context."""
        return self.mode in (GpuMode.ON_GPU, GpuMode.RELEASING)

    def return_wait_s(self) -> float:
        """How long the card must have room before the return: `return_after_s`, doubled for
        each short stint on the GPU in a row."""
        factor = min(MAX_BACKOFF_FACTOR, 2.0**self.tenure.backoff_steps)
        return self._return_after_s * factor

    # -- inputs ------------------------------------------------------------------------------

    def shutdown(self, t: float, reason: str) -> ModeChange | None:
        """The pressure machine reached SHUTDOWN: leave the GPU. Returns the decision when
        it is newly taken (on the CPU already, or leaving, nothing changes)."""
        before = self.mode
        self.trigger("leave", t=t, reason=reason)
        return self.change if self.mode is not before else None

    def watch(self, room: bool, t: float) -> ModeChange | None:
        """On the CPU, whether the card has room for our models now; held for the return
        wait, the GPU is taken back. Returns the decision when one is newly taken."""
        before = self.mode
        if before is GpuMode.ON_CPU:
            if not room:
                self.room_since = None
            else:
                if self.room_since is None:
                    self.room_since = t
                self.trigger("room_held", t=t)
        elif before is GpuMode.RETURNING and not room:
            self.trigger("room_lost", t=t)
        after = self.mode
        return self.change if after is not before and after is GpuMode.RETURNING else None

    # -- conditions and callbacks -------------------------------------------------------------

    def _room_held_long_enough(self, event: EventData) -> bool:
        t: float = event.kwargs["t"]
        return self.room_since is not None and t - self.room_since >= self.return_wait_s()

    def _on_leave(self, event: EventData) -> None:
        t: float = event.kwargs["t"]
        steps = self.tenure.backoff_steps
        returned = self.tenure.returned_t
        short = returned is not None and t - returned < SHORT_STINT_FACTOR * self._return_after_s
        steps = steps + 1 if short else 0
        handed = Tenure(GpuMode.ON_CPU, t, event.kwargs["reason"], steps, returned)
        self.change = ModeChange(t, handed)

    def _on_return(self, event: EventData) -> None:
        t: float = event.kwargs["t"]
        assert self.room_since is not None
        held = t - self.room_since
        reason = f"the card has had room for our models for {held:.0f} s"
        handed = Tenure(GpuMode.ON_GPU, t, reason, self.tenure.backoff_steps, t)
        self.change = ModeChange(t, handed)

    def _on_room_lost(self, _event: EventData) -> None:
        self.change = None
        self.room_since = None
