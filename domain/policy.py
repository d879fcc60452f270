"""The default guard policy: hysteresis, cadence, adaptive polling, forecast, minimal offload,
safe restore and an orderly SHUTDOWN."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from swictation.domain.cooperation import Cooperation, CooperationStep, Pressure, TenantView
from swictation.domain.forecast import GrowthForecast, time_to_exhaustion_s
from swictation.domain.machine import PressureMachine
from swictation.domain.model import (
    Action,
    ActionKind,
    Decision,
    Level,
    MemorySample,
    ModelState,
    Observation,
    Placement,
    ProbeUnavailable,
    Thresholds,
    Tuning,
)

_GRADED = (Level.WARNING, Level.CRITICAL, Level.EMERGENCY)
_EXHAUSTIVE_UP_TO = 10


class Policy(Protocol):
    """What the guard service and the replay drive: observations in, decisions out."""

    name: str

    @property
    def level(self) -> Level: ...

    def observe(self, observation: Observation) -> Decision: ...


def plan_offload(
    candidates: Iterable[ModelState], need_mib: float, tuning: Tuning
) -> tuple[ModelState, ...]:
    """The set of models that frees `need_mib` in the least transfer time (all of them when
    none suffices), ordered best MiB-per-second of transfer first."""
    if need_mib <= 0:
        return ()
    pool = sorted(candidates, key=lambda m: (-m.size_mib / tuning.transfer_s(m.size_mib), m.name))
    if sum(m.size_mib for m in pool) <= need_mib:
        return tuple(pool)
    if len(pool) > _EXHAUSTIVE_UP_TO:
        chosen: list[ModelState] = []
        for model in pool:
            if sum(m.size_mib for m in chosen) >= need_mib:
                break
            chosen.append(model)
        return tuple(chosen)
    best: tuple[ModelState, ...] = tuple(pool)
    best_cost = (math.inf, len(pool))
    for size in range(1, len(pool) + 1):
        for subset in itertools.combinations(pool, size):
            if sum(m.size_mib for m in subset) < need_mib:
                continue
            cost = (sum(tuning.transfer_s(m.size_mib) for m in subset), size)
            if cost < best_cost:
                best, best_cost = subset, cost
    return best


class GuardPolicy:
    """The guard as it should be: device-wide, hysteretic, persistent and predictive."""

    name = "default"

    def __init__(self, thresholds: Thresholds | None = None, tuning: Tuning | None = None):
        self.thresholds = thresholds or Thresholds()
        self.tuning = tuning or Tuning()
        self._machine = PressureMachine()
        self._forecast = GrowthForecast(self.tuning.forecast_window_s)
        self._clear_since: dict[Level, float | None] = dict.fromkeys(_GRADED)
        self._last_applied: float | None = None
        self._shutdown_since: float | None = None
        self._offloaded: set[str] = set()
        self._restore_ok_since: dict[str, float] = {}
        self._restored_at: dict[str, float] = {}
        self._backoff_steps: dict[str, int] = {}
        self._backoff_until: dict[str, float] = {}
        self.cooperation = Cooperation(self.tuning.tenant_wait_s, self.tuning.tenant_reload)

    @property
    def level(self) -> Level:
        return self._machine.level

    def observe(self, observation: Observation) -> Decision:
        sample = observation.sample
        previous = self._machine.level
        if isinstance(sample, ProbeUnavailable) or previous is Level.SHUTDOWN:
            # Unknown is not calm: keep the level and look again soon.
            return Decision(
                sample.t, previous, previous, (), next_poll_s=self.thresholds.interval_s
            )
        models = observation.models
        t, used, total = sample.t, sample.used_mib, sample.total_mib
        resident_mib = sum(m.size_mib for m in models if m.placement.holds_gpu)
        self._forecast.add(
            t, used - resident_mib if sample.own_mib is None else used - sample.own_mib
        )
        in_flight = [m for m in models if m.placement in (Placement.TO_CPU, Placement.TO_GPU)]
        leaving_mib = sum(m.size_mib for m in in_flight if m.placement is Placement.TO_CPU)
        offloadable = self._offload_candidates(models)

        target = self._target_level(sample, previous, offloadable, in_flight)
        self._machine.move_to(target)
        level = self._machine.level
        self._watch_restores(level, models, t)
        self._track_restore_room(models, used, total, t)

        actions: list[Action] = []
        slope = self._forecast.slope_mib_s()
        tte = time_to_exhaustion_s(total - used, slope)
        if level is Level.SHUTDOWN:
            actions.append(
                Action(
                    ActionKind.SHUTDOWN,
                    reason=f"usage {sample.usage:.1%} >= {self.thresholds.shutdown:.0%} "
                    "with nothing left to offload",
                )
            )
            return Decision(
                t,
                level,
                previous,
                tuple(actions),
                self.thresholds.min_interval_s,
                sample.usage,
                tte,
            )
        actions.extend(self._cleanup(level, previous, t))
        interval = self._interval(sample, tte, bool(in_flight))
        cooperation = self._cooperate(
            level, sample, used - leaving_mib, offloadable, slope, interval, observation.tenants
        )
        actions.extend(cooperation.actions)
        if not cooperation.hold_offloads:
            actions.extend(
                self._offloads(level, sample, used - leaving_mib, offloadable, slope, interval)
            )
        if level is Level.NORMAL and not observation.busy and not in_flight:
            actions.extend(self._restore(models, sample, slope or 0.0))
        return Decision(t, level, previous, tuple(actions), interval, sample.usage, tte)

    # -- levels -------------------------------------------------------------------------

    def _target_level(
        self,
        sample: MemorySample,
        previous: Level,
        offloadable: Sequence[ModelState],
        in_flight: Sequence[ModelState],
    ) -> Level:
        th = self.thresholds
        t, used, total = sample.t, sample.used_mib, sample.total_mib
        for graded in _GRADED:
            if th.is_clear_of(graded, used, total):
                if self._clear_since[graded] is None:
                    self._clear_since[graded] = t
            else:
                self._clear_since[graded] = None
        raw = th.level_of(used, total)
        target = max(raw, previous)
        if raw < previous:
            # Step down only through levels whose exit point has held for the dwell.
            level = previous
            while level > Level.NORMAL:
                since = self._clear_since[level]
                if since is None or t - since < th.dwell_s:
                    break
                level = Level(level - 1)
            target = level
        if sample.usage >= th.shutdown and not offloadable and not in_flight:
            if self._shutdown_since is None:
                self._shutdown_since = t
            if t - self._shutdown_since >= self.tuning.shutdown_grace_s:
                target = Level.SHUTDOWN
        else:
            self._shutdown_since = None
        return target

    def _interval(self, sample: MemorySample, tte: float | None, moving: bool) -> float:
        """Poll faster as headroom shrinks: geometric from `interval_s` at WARNING's exit
        point down to `min_interval_s` at EMERGENCY."""
        th = self.thresholds
        start = th.warning - th.margin
        pressure = (sample.usage - start) / (th.emergency - start)
        if th.warning_free_mib > th.emergency_free_mib:
            floor_start = th.warning_free_mib + th.margin * sample.total_mib
            by_floor = (floor_start - sample.free_mib) / (floor_start - th.emergency_free_mib)
            pressure = max(pressure, by_floor)
        pressure = min(1.0, max(0.0, pressure))
        interval: float = th.interval_s * (th.min_interval_s / th.interval_s) ** pressure
        if tte is not None:
            interval = min(interval, max(th.min_interval_s, tte / 4))
        if moving:
            interval = min(interval, max(th.min_interval_s, 0.25))
        return interval

    # -- actions ------------------------------------------------------------------------

    def _cleanup(self, level: Level, previous: Level, t: float) -> list[Action]:
        if level is Level.NORMAL:
            self._last_applied = None
            return []
        due = level > previous or self._last_applied is None
        if not due and self._last_applied is not None:
            due = t - self._last_applied >= self.tuning.reapply_s
        if not due:
            return []
        self._last_applied = t
        kind = (
            ActionKind.COLLECT_GARBAGE if level is Level.WARNING else ActionKind.AGGRESSIVE_CLEANUP
        )
        why = "entered" if level > previous else "still"
        return [Action(kind, reason=f"{why} {level.name}")]

    def _cooperate(
        self,
        level: Level,
        sample: MemorySample,
        projected_mib: float,
        candidates: Sequence[ModelState],
        slope: float | None,
        interval: float,
        tenants: tuple[TenantView, ...],
    ) -> CooperationStep:
        """Co-tenants are asked where our own offload would be planned (EMERGENCY, or the
        forecast says the card fills first), and urgently where that would not save us."""
        if not tenants and not self.cooperation.asked:
            return CooperationStep()
        th = self.thresholds
        total = sample.total_mib
        target_mib = min(th.critical * total, total - th.critical_free_mib)
        tte = time_to_exhaustion_s(sample.free_mib, slope)
        all_out = self.tuning.transfer_s(sum(m.size_mib for m in candidates))
        lead = self.tuning.forecast_safety * (interval + all_out)
        need = projected_mib - target_mib
        pressing = level is Level.EMERGENCY and need > 0
        by_forecast = False
        if not pressing and tte is not None and slope is not None and tte <= lead:
            pressing = by_forecast = True
            need = projected_mib + min(slope * lead, total) - target_mib
        urgent = pressing and (
            sample.usage >= th.shutdown
            or not candidates
            or (tte is not None and tte <= interval + all_out)
        )
        return self.cooperation.step(
            Pressure(sample.t, level, pressing, max(0.0, need), urgent, by_forecast), tenants
        )

    def _offload_candidates(self, models: Sequence[ModelState]) -> list[ModelState]:
        return [
            m
            for m in models
            if m.placement is Placement.GPU
            and m.offloadable
            and not m.pinned_cpu
            and m.size_mib >= self.tuning.min_offload_mib
        ]

    def _offloads(
        self,
        level: Level,
        sample: MemorySample,
        projected_mib: float,
        candidates: Sequence[ModelState],
        slope: float | None,
        interval: float,
    ) -> list[Action]:
        if not candidates:
            return []
        tte = time_to_exhaustion_s(sample.free_mib, slope)
        th = self.thresholds
        total = sample.total_mib
        target_mib = min(th.critical * total, total - th.critical_free_mib)
        plan: tuple[ModelState, ...] = ()
        reason = ""
        if level is Level.EMERGENCY and projected_mib > target_mib:
            plan = plan_offload(candidates, projected_mib - target_mib, self.tuning)
            reason = f"EMERGENCY at {sample.usage:.1%}"
        elif tte is not None:
            all_out = self.tuning.transfer_s(sum(m.size_mib for m in candidates))
            lead = self.tuning.forecast_safety * (interval + all_out)
            if tte <= lead and slope is not None:
                need = projected_mib + min(slope * lead, total) - target_mib
                plan = plan_offload(candidates, need, self.tuning)
                reason = f"forecast: card full in {tte:.1f}s, offload takes {all_out:.1f}s"
        for model in plan:
            self._offloaded.add(model.name)
            self._restore_ok_since.pop(model.name, None)
        return [Action(ActionKind.OFFLOAD, m.name, reason) for m in plan]

    def _track_restore_room(
        self, models: Sequence[ModelState], used: float, total: float, t: float
    ) -> None:
        for model in models:
            if model.name not in self._offloaded or model.placement is not Placement.CPU:
                continue
            if self.thresholds.restore_room(used + model.size_mib, total):
                self._restore_ok_since.setdefault(model.name, t)
            else:
                self._restore_ok_since.pop(model.name, None)

    def _restore(
        self, models: Sequence[ModelState], sample: MemorySample, slope: float
    ) -> list[Action]:
        t = sample.t
        waiting = [
            m
            for m in models
            if m.name in self._offloaded and m.placement is Placement.CPU and not m.pinned_cpu
        ]
        for model in sorted(waiting, key=lambda m: (-m.size_mib, m.name)):
            since = self._restore_ok_since.get(model.name)
            if since is None or t - since < self.thresholds.dwell_s:
                continue
            if t < self._backoff_until.get(model.name, -math.inf):
                continue
            room = sample.free_mib - model.size_mib
            if slope > 0 and room / slope < self.tuning.settle_s:
                continue  # others are growing into the room the model would need
            self._offloaded.discard(model.name)
            self._restore_ok_since.pop(model.name, None)
            self._restored_at[model.name] = t
            return [Action(ActionKind.RESTORE, model.name, "room held for the dwell")]
        return []

    def _watch_restores(self, level: Level, models: Sequence[ModelState], t: float) -> None:
        """A restore that leads back to pressure within `settle_s` doubles the next wait."""
        for name, restored in list(self._restored_at.items()):
            if level >= Level.WARNING:
                steps = self._backoff_steps.get(name, 0) + 1
                self._backoff_steps[name] = steps
                wait = min(
                    self.tuning.restore_backoff_max_s,
                    self.tuning.restore_backoff_s * 2 ** (steps - 1),
                )
                self._backoff_until[name] = t + wait
                del self._restored_at[name]
            elif t - restored >= self.tuning.settle_s:
                self._backoff_steps.pop(name, None)
                del self._restored_at[name]
        for model in models:
            # A model on the GPU by other means is no longer ours to restore.
            if model.placement is Placement.GPU:
                self._offloaded.discard(model.name)
