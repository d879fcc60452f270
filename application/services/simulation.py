"""The simulator behind replay and the policy tests: a recorded (or scripted) device, models
resident on it, and the real guard polling on its own schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from swictation.application.services.guard import GuardService
from swictation.domain.model import ActionKind, Level, ModelState


@attrs.frozen
class ModelSpec:
    name: str
    size_mib: float
    offloadable: bool = True
    working_mib: float = 0.0


@attrs.frozen
class SimulationReport:
    policy: str
    samples: int
    duration_s: float
    levels: dict[str, float]
    transitions: int
    offloads: int
    restores: int
    shutdown: bool
    oom_events: int
    peak_usage: float
    first_oom_s: float | None = None
    final_placement: dict[str, str] = attrs.field(factory=dict)
    # (t, simulated usage, level) at most `series_points` times, for plots.
    series: tuple[tuple[float, float, int], ...] = ()
    # (t, kind, model) for every offload/restore, and t of every would-be OOM (capped).
    marks: tuple[tuple[float, str, str], ...] = ()
    per_model: dict[str, ModelTime] = attrs.field(factory=dict)
    # The least free memory on the simulated card (MiB), our models counted.
    min_free_mib: float = math.inf
    # Co-tenants asked to release: {name: {"asks": n, "freed_mib": MiB}}.
    tenants: dict[str, dict[str, float]] = attrs.field(factory=dict)

    @property
    def asks(self) -> int:
        return int(sum(t["asks"] for t in self.tenants.values()))

    def to_json(self) -> dict[str, Any]:
        body = self._body()
        if self.tenants:
            body.update(asks=self.asks, tenants=self.tenants)
        return body

    def _body(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "samples": self.samples,
            "duration_s": round(self.duration_s, 3),
            "levels": {k: round(v, 3) for k, v in self.levels.items()},
            "transitions": self.transitions,
            "offloads": self.offloads,
            "restores": self.restores,
            "shutdown": self.shutdown,
            "oom_events": self.oom_events,
            "peak_usage": round(self.peak_usage, 4),
            "first_oom_s": None if self.first_oom_s is None else round(self.first_oom_s, 3),
            "final_placement": self.final_placement,
            "per_model": {name: m.to_json() for name, m in self.per_model.items()},
            "min_free_mib": round(self.min_free_mib, 1)
            if math.isfinite(self.min_free_mib)
            else None,
        }


@attrs.define
class ModelTime:
    """One model's moves in a simulation, and its time off the GPU (from the offload
    decision to the restore decision, or the end)."""

    size_mib: float
    offloads: int = 0
    restores: int = 0
    seconds_off_gpu: float = 0.0
    longest_off_gpu_s: float = 0.0
    off_since: float | None = None

    def offload(self, t: float) -> None:
        self.offloads += 1
        if self.off_since is None:
            self.off_since = t

    def back(self, t: float) -> None:
        if self.off_since is not None:
            spell = t - self.off_since
            self.seconds_off_gpu += spell
            self.longest_off_gpu_s = max(self.longest_off_gpu_s, spell)
            self.off_since = None

    def to_json(self) -> dict[str, Any]:
        return {
            "size_mib": round(self.size_mib, 1),
            "offloads": self.offloads,
            "restores": self.restores,
            "seconds_off_gpu": round(self.seconds_off_gpu, 3),
            "longest_off_gpu_s": round(self.longest_off_gpu_s, 3),
        }


class SimulatedHost(Protocol):
    """The in-memory host's view the simulator needs besides the port."""

    def models(self) -> tuple[ModelState, ...]: ...

    def gpu_resident_mib(self) -> float: ...

    def next_change(self) -> float | None: ...


class SettableClock(Protocol):
    def now(self) -> float: ...

    def set(self, t: float) -> None: ...


class TraceRow(Protocol):
    used: float
    total: float
    own: float | None


@attrs.frozen
class SimulationRig:
    """What a simulation runs, built by the container: a fake clock, the trace row the guard
    reads (through the simulated probe), the models in memory and the guard itself."""

    clock: SettableClock
    row: TraceRow
    host: SimulatedHost
    guard: GuardService


def run_simulation(  # noqa: PLR0912, PLR0915 -- one pass over the rows with the guard's polls between them; issue 9 rewrites it
    rig: SimulationRig,
    times: Sequence[float],
    used_mib: Sequence[float],
    total_mib: Sequence[float],
    own_mib: Sequence[float | None] | None = None,
    progress: Callable[[int], None] | None = None,
    series_points: int = 0,
) -> SimulationReport:
    """Replay device usage (`used_mib` excludes our models) with the rig's models resident at
    the start. OOMs and the peak are judged at every row; the guard polls on its own schedule
    and sees the latest row at or before each poll. The guard's co-tenants (simulated, their
    memory part of `used_mib`) free what they hold from every later row once asked."""
    n = len(times)
    if n == 0:
        raise ValueError("nothing to simulate: no samples")
    clock, feed, host, guard = rig.clock, rig.row, rig.host, rig.guard
    policy = guard.policy
    quiet = policy.quiet_after_s
    tenants = guard.tenants
    freed = 0.0
    levels = dict.fromkeys((level.name for level in Level), 0.0)
    level = policy.level
    transitions = offloads = restores = oom = 0
    first_oom: float | None = None
    peak = 0.0
    resident = host.gpu_resident_mib()
    change_at = host.next_change()
    next_poll = times[0]
    last_t = times[0]
    shutdown = False
    stride = max(1, n // series_points) if series_points else 0
    series: list[tuple[float, float, int]] = []
    marks: list[tuple[float, str, str]] = []
    per_model = {m.name: ModelTime(m.size_mib) for m in host.models()}
    min_free = math.inf
    for i in range(n):
        t = times[i]
        total = total_mib[i]
        if change_at is not None and t >= change_at:
            clock.set(t)
            resident = host.gpu_resident_mib()
            change_at = host.next_change()
        on_card = max(0.0, used_mib[i] - freed) + resident
        if total - on_card < min_free:
            min_free = total - on_card
        usage = on_card / total
        if usage > peak:
            peak = usage
        if usage >= 1.0:
            oom += 1
            if first_oom is None:
                first_oom = t - times[0]
            if stride and len(marks) < 10_000:
                marks.append((t - times[0], "oom", ""))
        if stride and i % stride == 0:
            series.append((t - times[0], usage, int(level)))
        if shutdown:
            continue
        following = times[i + 1] if i + 1 < n else math.nextafter(t, math.inf)
        feed.used = max(0.0, used_mib[i] - freed)
        feed.total = total
        feed.own = None if own_mib is None else own_mib[i]
        while next_poll < following and not shutdown:
            if next_poll - t >= quiet and change_at is None:
                # One reading for a long while, nothing moving: nothing new will be decided
                # until the next reading, so the cost follows the rows, not the time span.
                next_poll = following
                break
            poll = max(next_poll, t)
            clock.set(poll)
            if change_at is not None and poll >= change_at:
                resident = host.gpu_resident_mib()
                change_at = host.next_change()
            decision = guard.tick()
            levels[level.name] += poll - last_t
            last_t = poll
            if decision.level is not level:
                transitions += 1
                level = decision.level
            for action in decision.actions:
                kind = action.kind
                if kind not in (ActionKind.OFFLOAD, ActionKind.RESTORE):
                    continue
                model = per_model.get(action.model or "")
                if kind is ActionKind.OFFLOAD:
                    offloads += 1
                    if model is not None:
                        model.offload(poll)
                else:
                    restores += 1
                    if model is not None:
                        model.restores += 1
                        model.back(poll)
                if stride:
                    marks.append((poll - times[0], kind.value, action.model or ""))
            if decision.level is Level.SHUTDOWN:
                shutdown = True
            if decision.actions:
                resident = host.gpu_resident_mib()
                change_at = host.next_change()
                if tenants is not None:
                    freed = _freed(tenants.snapshot())
                    feed.used = max(0.0, used_mib[i] - freed)
            next_poll = poll + decision.next_poll_s
        if progress is not None and i % 8192 == 0:
            progress(i)
    end = times[-1]
    levels[level.name] += max(0.0, end - last_t)
    clock.set(end)
    for model in per_model.values():
        model.back(end)
    return SimulationReport(
        policy=policy.name,
        samples=n,
        duration_s=end - times[0],
        levels=levels,
        transitions=transitions,
        offloads=offloads,
        restores=restores,
        shutdown=shutdown,
        oom_events=oom,
        peak_usage=peak,
        first_oom_s=first_oom,
        final_placement={m.name: m.placement.value for m in host.models()},
        series=tuple(series),
        marks=tuple(marks),
        per_model=per_model,
        min_free_mib=min_free,
        tenants={}
        if tenants is None
        else {
            entry["name"]: {"asks": entry["asks"], "freed_mib": entry["freed_mib"]}
            for entry in tenants.snapshot()
        },
    )


def _freed(snapshot: Sequence[dict[str, Any]]) -> float:
    return float(sum(entry["freed_mib"] for entry in snapshot))


def sample_function(
    fn: Callable[[float], float], duration_s: float, step_s: float = 0.05
) -> tuple[list[float], list[float]]:
    """Times and values of `fn` every `step_s` seconds over `duration_s` (for scenarios)."""
    count = round(duration_s / step_s) + 1
    times = [i * step_s for i in range(count)]
    return times, [fn(t) for t in times]
