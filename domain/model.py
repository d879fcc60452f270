"""Frozen values the core reasons about: samples, thresholds, models, actions and decisions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from attrs import field, validators

if TYPE_CHECKING:
    from swictation.domain.cooperation import TenantView

MIB = 1024 * 1024


class Level(enum.IntEnum):
    NORMAL = 0
    WARNING = 1
    CRITICAL = 2
    EMERGENCY = 3
    SHUTDOWN = 4


def _fraction(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _per_model_mib(
    _inst: object, attribute: attrs.Attribute[Mapping[str, float]], value: Mapping[str, float]
) -> None:
    for name, mib in value.items():
        if not 0 <= mib < 1e7:
            raise ValueError(f"{attribute.name}.{name} must be in [0, 1e7) MiB, got {mib!r}")


@attrs.frozen
class ProcessUsage:
    """GPU memory held by one process on the device."""

    pid: int
    used_mib: float = field(validator=_non_negative)
    name: str = ""


@attrs.frozen
class MemorySample:
    """One reading of the whole device; `t` is seconds on the caller's clock."""

    t: float
    used_mib: float = field(validator=_non_negative)
    total_mib: float = field(validator=_positive)
    own_mib: float | None = None
    processes: tuple[ProcessUsage, ...] = ()

    @property
    def usage(self) -> float:
        return self.used_mib / self.total_mib

    @property
    def free_mib(self) -> float:
        return self.total_mib - self.used_mib

    @property
    def others_mib(self) -> float | None:
        return None if self.own_mib is None else max(0.0, self.used_mib - self.own_mib)


@attrs.frozen
class ProbeUnavailable:
    """The probe could not read the device; `reason` says why in words."""

    t: float
    reason: str


@attrs.frozen
class Thresholds:
    """When each level begins and how it is left.

    A level is entered when usage reaches its fraction of the card *or* free memory falls
    below its floor (MiB; 0 disables the floor), whichever comes first. It is left only
    after usage has stayed below the entry point minus `margin` for `dwell_s`.
    """

    warning: float = field(default=0.80, validator=_fraction)
    critical: float = field(default=0.90, validator=_fraction)
    emergency: float = field(default=0.95, validator=_fraction)
    shutdown: float = field(default=0.98, validator=_fraction)
    warning_free_mib: float = field(default=1024.0, validator=_non_negative)
    critical_free_mib: float = field(default=512.0, validator=_non_negative)
    emergency_free_mib: float = field(default=256.0, validator=_non_negative)
    margin: float = field(
        default=0.03, validator=validators.and_(_non_negative, validators.lt(0.5))
    )
    dwell_s: float = field(default=10.0, validator=_non_negative)
    interval_s: float = field(default=2.0, validator=_positive)
    min_interval_s: float = field(default=0.1, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not self.warning < self.critical < self.emergency < self.shutdown:
            raise ValueError(
                "thresholds must rise: warning < critical < emergency < shutdown, got "
                f"{self.warning} / {self.critical} / {self.emergency} / {self.shutdown}"
            )
        if not self.warning_free_mib >= self.critical_free_mib >= self.emergency_free_mib:
            raise ValueError(
                "free-memory floors must fall: warning >= critical >= emergency, got "
                f"{self.warning_free_mib} / {self.critical_free_mib} / {self.emergency_free_mib}"
            )
        if self.min_interval_s > self.interval_s:
            raise ValueError(
                f"min_interval_s ({self.min_interval_s}) must not exceed interval_s "
                f"({self.interval_s})"
            )

    def entry(self, level: Level) -> tuple[float, float]:
        """(usage fraction, free-MiB floor) at which `level` begins."""
        if level is Level.WARNING:
            return self.warning, self.warning_free_mib
        if level is Level.CRITICAL:
            return self.critical, self.critical_free_mib
        if level is Level.EMERGENCY:
            return self.emergency, self.emergency_free_mib
        if level is Level.SHUTDOWN:
            return self.shutdown, 0.0
        return 0.0, 0.0

    def level_of(self, used_mib: float, total_mib: float) -> Level:
        """The level a reading calls for on its own, without hysteresis (capped at EMERGENCY)."""
        usage = used_mib / total_mib
        free = total_mib - used_mib
        if usage >= self.emergency or free < self.emergency_free_mib:
            return Level.EMERGENCY
        if usage >= self.critical or free < self.critical_free_mib:
            return Level.CRITICAL
        if usage >= self.warning or free < self.warning_free_mib:
            return Level.WARNING
        return Level.NORMAL

    def is_clear_of(self, level: Level, used_mib: float, total_mib: float) -> bool:
        """True when a reading is below `level`'s entry point by at least the margin."""
        fraction, floor = self.entry(level)
        slack = self.margin * total_mib
        if used_mib >= (fraction - self.margin) * total_mib:
            return False
        return floor <= 0 or (total_mib - used_mib) > floor + slack

    def restore_room(self, used_mib: float, total_mib: float, working_mib: float = 0.0) -> bool:
        """True when a reading with the model back (`used_mib` counts it) stays below the
        offload point (EMERGENCY) by the margin and leaves the free-memory floor plus the
        model's working memory free."""
        if used_mib >= (self.emergency - self.margin) * total_mib:
            return False
        free = total_mib - used_mib
        return free - working_mib > self.emergency_free_mib + self.margin * total_mib


PRESETS: Mapping[str, Thresholds] = {
    "default": Thresholds(),
    "conservative": Thresholds(warning=0.70, critical=0.80, emergency=0.85, shutdown=0.95),
    "aggressive": Thresholds(warning=0.85, critical=0.92, emergency=0.97, shutdown=0.99),
}


@attrs.frozen
class Tuning:
    """How the default policy paces itself; every duration is in seconds."""

    reapply_s: float = field(default=10.0, validator=_positive)
    # A cleanup that freed nothing doubles the wait before the next, up to this; a level
    # change, a cleanup that freed memory, or usage rising by the margin brings back reapply_s.
    reapply_max_s: float = field(default=300.0, validator=_positive)
    shutdown_grace_s: float = field(default=5.0, validator=_non_negative)
    restore_backoff_s: float = field(default=10.0, validator=_positive)
    restore_backoff_max_s: float = field(default=600.0, validator=_positive)
    settle_s: float = field(default=60.0, validator=_non_negative)
    min_offload_mib: float = field(default=64.0, validator=_non_negative)
    transfer_mib_s: float = field(default=2e9 / MIB, validator=_positive)
    transfer_overhead_s: float = field(default=0.05, validator=_non_negative)
    forecast_window_s: float = field(default=4.0, validator=_positive)
    forecast_safety: float = field(default=1.5, validator=validators.ge(1.0))
    max_failures: int = field(default=3, validator=validators.ge(1))
    fallback_cooldown_s: float | None = field(
        default=None, validator=validators.optional(_positive)
    )
    restore_wait_s: float = field(default=5.0, validator=_non_negative)
    # MiB a model needs beyond its weights while it runs (activations), by model name; a
    # restore leaves it free.
    working_mib: Mapping[str, float] = field(factory=dict, hash=False, validator=_per_model_mib)
    # Cooperation: how long our own offload waits for asked co-tenants to free memory, and
    # whether they are asked to reload when the pressure is over.
    tenant_wait_s: float = field(default=3.0, validator=_non_negative)
    tenant_reload: bool = False

    def transfer_s(self, size_mib: float) -> float:
        return self.transfer_overhead_s + size_mib / self.transfer_mib_s


class Placement(enum.Enum):
    GPU = "gpu"
    CPU = "cpu"
    TO_CPU = "to_cpu"
    TO_GPU = "to_gpu"

    @property
    def holds_gpu(self) -> bool:
        """Whether the model's memory is on the card now (a move out frees it only at the end)."""
        return self is not Placement.CPU


@attrs.frozen
class ModelState:
    """What the guard knows of one registered model."""

    name: str
    size_mib: float = field(validator=_non_negative)
    placement: Placement = Placement.GPU
    offloadable: bool = True
    # Activations and buffers the model needs beyond its weights while it runs.
    working_mib: float = field(default=0.0, validator=_non_negative)


class ActionKind(enum.Enum):
    COLLECT_GARBAGE = "collect_garbage"
    AGGRESSIVE_CLEANUP = "aggressive_cleanup"
    OFFLOAD = "offload"
    RESTORE = "restore"
    FALLBACK_TO_CPU = "fallback_to_cpu"
    SHUTDOWN = "shutdown"
    ASK_RELEASE = "ask_release"
    ASK_RELOAD = "ask_reload"


@attrs.frozen
class Action:
    kind: ActionKind
    model: str | None = None
    reason: str = ""
    tenant: str | None = None  # the co-tenant an ASK_* action is for


@attrs.frozen
class Observation:
    """Everything one guard step sees: the device, the models, whether speech is in flight,
    and the models that fell back to the CPU or that the operator reset since the last step."""

    sample: MemorySample | ProbeUnavailable
    models: tuple[ModelState, ...] = ()
    busy: bool = False
    fallbacks: tuple[str, ...] = ()
    resets: tuple[str, ...] = ()
    tenants: tuple[TenantView, ...] = ()  # the co-tenants that may be asked to release
    cleanup_freed_mib: float | None = None  # what the last step's cleanup freed (None: none)

    @property
    def t(self) -> float:
        return self.sample.t


@attrs.frozen
class Decision:
    """What one guard step decided; the application carries out `actions` in order."""

    t: float
    level: Level
    previous: Level
    actions: tuple[Action, ...] = ()
    next_poll_s: float = 2.0
    usage: float | None = None
    time_to_exhaustion_s: float | None = None
    # (model, residency state) after this step, for status and tests.
    residency: tuple[tuple[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return self.level is not self.previous


@attrs.frozen
class Event:
    """One line of the flight recorder."""

    t: float
    type: str
    level: str | None = None
    action: str | None = None
    model: str | None = None
    usage: float | None = None
    detail: Mapping[str, Any] = field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 3), "type": self.type}
        for key in ("level", "action", "model"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.usage is not None:
            out["usage"] = round(self.usage, 4)
        out.update(self.detail)
        return out
