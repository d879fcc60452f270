"""One model's residency on `transitions`: on the GPU, moving, waiting on the CPU, settling
after a restore, or pinned to the CPU after CUDA errors."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

from transitions import EventData

from swictation.domain.model import Placement, Tuning
from swictation.domain.transition_table import table_machine, triggers


class Residency(enum.Enum):
    ON_GPU = "ON_GPU"
    OFFLOADING = "OFFLOADING"
    ON_CPU = "ON_CPU"  # offloaded by the guard (or released from a pin): waiting to return
    RESTORING = "RESTORING"
    SETTLING = "SETTLING"  # back on the GPU; pressure soon after means a longer wait next time
    PINNED_CPU = "PINNED_CPU"  # after repeated CUDA errors, until the cool-down or a reset
    CPU_ONLY = "CPU_ONLY"  # loaded on the CPU: not the guard's to move


_S = Residency
# (trigger, sources, destination); a trigger with no matching row changes nothing.
TRANSITIONS: tuple[tuple[str, tuple[Residency, ...], Residency], ...] = (
    ("pin", tuple(_S), _S.PINNED_CPU),  # a new fallback while pinned restarts the cool-down
    ("reset", (_S.PINNED_CPU,), _S.ON_CPU),
    ("cool_down", (_S.PINNED_CPU,), _S.ON_CPU),
    ("offload", (_S.ON_GPU, _S.SETTLING), _S.OFFLOADING),
    ("offloaded", (_S.OFFLOADING,), _S.ON_CPU),
    ("restore", (_S.ON_CPU,), _S.RESTORING),
    ("restored", (_S.RESTORING,), _S.SETTLING),
    ("move_failed", (_S.OFFLOADING,), _S.ON_GPU),
    ("move_failed", (_S.RESTORING,), _S.ON_CPU),
    ("pressure_returned", (_S.SETTLING,), _S.ON_GPU),
    ("settled", (_S.SETTLING,), _S.ON_GPU),
    ("appeared_on_gpu", (_S.ON_CPU, _S.CPU_ONLY), _S.ON_GPU),
    ("left_gpu", (_S.ON_GPU, _S.SETTLING), _S.ON_CPU),
)
TRIGGERS = triggers(TRANSITIONS)


class ModelResidency:
    """Where one model is and what it waits for. Inputs are the host's placements, the
    level and time; the policy fires `offload` and `restore`, whose conditions guard them."""

    # Set on the instance by transitions.Machine.
    state: str
    trigger: Callable[..., bool]

    def __init__(
        self, name: str, tuning: Tuning, dwell_s: float, initial: Residency = Residency.ON_GPU
    ) -> None:
        self.name = name
        self._residency = initial
        self._tuning = tuning
        self._dwell_s = dwell_s
        self.room_since: float | None = None
        self.due_since: float | None = None
        self.restored_at: float | None = None
        self.pinned_since: float | None = None
        self.backoff_steps = 0
        self.backoff_until = -math.inf
        self.by_forecast = False
        conditions: dict[str, list[Callable[[EventData], bool]]] = {
            "restore": [self._room_held, self._backoff_over],
            "settled": [self._settle_elapsed],
            "cool_down": [self._cooled_down],
        }
        before: dict[str, list[Callable[[EventData], None]]] = {
            "pin": [self._on_pin],
            "offload": [self._on_offload],
            "restored": [self._on_restored],
            "pressure_returned": [self._back_off],
            "settled": [self._forget_backoff],
        }
        self._machine = table_machine(
            self, Residency, TRANSITIONS, initial, self._entered, conditions, before
        )

    @property
    def residency(self) -> Residency:
        return self._residency

    def _entered(self, _event: EventData) -> None:
        self._residency = Residency(self.state)

    def fire(self, trigger: str, t: float, **kwargs: Any) -> bool:
        """Fire `trigger` at time `t`; returns whether the state changed."""
        before = self.state
        self.trigger(trigger, t=t, **kwargs)
        return self.state != before

    # -- inputs ------------------------------------------------------------------------------

    def follow(self, placement: Placement, t: float) -> None:
        """Take in where the host says the model is."""
        state = self.residency
        if state is Residency.OFFLOADING:
            if placement is Placement.CPU:
                self.fire("offloaded", t)
            elif placement is Placement.GPU:
                self.fire("move_failed", t)
        elif state is Residency.RESTORING:
            if placement is Placement.GPU:
                self.fire("restored", t)
            elif placement is Placement.CPU:
                self.fire("move_failed", t)
        elif state in (Residency.ON_CPU, Residency.CPU_ONLY) and placement is Placement.GPU:
            self.fire("appeared_on_gpu", t)
        elif state in (Residency.ON_GPU, Residency.SETTLING) and placement is Placement.CPU:
            self.fire("left_gpu", t)

    def watch(self, pressure: bool, t: float) -> None:
        """Pressure (the offload point reached) and the passing of time."""
        state = self.residency
        if state is Residency.SETTLING:
            self.fire("pressure_returned" if pressure else "settled", t)
        elif state is Residency.PINNED_CPU:
            self.fire("cool_down", t)

    def watch_room(self, room: bool, t: float) -> None:
        """Whether the card has room for the model back; held for the dwell, it may return."""
        if self.residency is not Residency.ON_CPU or not room:
            self.room_since = None
            self.due_since = None
        elif self.room_since is None:
            self.room_since = t

    def ready_to_restore(self, t: float) -> bool:
        return (
            self.residency is Residency.ON_CPU
            and self.room_since is not None
            and t - self.room_since >= self._dwell_s
            and t >= self.backoff_until
        )

    # -- conditions and callbacks -------------------------------------------------------------

    def _room_held(self, event: EventData) -> bool:
        t: float = event.kwargs["t"]
        return self.room_since is not None and t - self.room_since >= self._dwell_s

    def _backoff_over(self, event: EventData) -> bool:
        return bool(event.kwargs["t"] >= self.backoff_until)

    def _settle_elapsed(self, event: EventData) -> bool:
        return self.restored_at is None or event.kwargs["t"] - self.restored_at >= (
            self._tuning.settle_s
        )

    def _cooled_down(self, event: EventData) -> bool:
        cooldown = self._tuning.fallback_cooldown_s
        return (
            cooldown is not None
            and self.pinned_since is not None
            and event.kwargs["t"] - self.pinned_since >= cooldown
        )

    def _on_pin(self, event: EventData) -> None:
        self.pinned_since = event.kwargs["t"]
        self.room_since = self.due_since = None

    def _on_offload(self, event: EventData) -> None:
        if self.residency is Residency.SETTLING:
            self._back_off(event)
        self.by_forecast = bool(event.kwargs.get("forecast", False))
        self.room_since = self.due_since = None

    def _on_restored(self, event: EventData) -> None:
        self.restored_at = event.kwargs["t"]
        self.room_since = self.due_since = None

    def _back_off(self, event: EventData) -> None:
        """A restore that led back to pressure within `settle_s` doubles the next wait."""
        self.backoff_steps += 1
        wait = min(
            self._tuning.restore_backoff_max_s,
            self._tuning.restore_backoff_s * 2 ** (self.backoff_steps - 1),
        )
        self.backoff_until = event.kwargs["t"] + wait
        self.restored_at = None

    def _forget_backoff(self, _event: EventData) -> None:
        self.backoff_steps = 0
        self.restored_at = None
