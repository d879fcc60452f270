"""The default guard policy: the pressure machine and one residency machine per model,
composed into decisions (hysteresis, cadence, adaptive polling, forecast, minimal offload,
safe restore, CPU pinning and an orderly SHUTDOWN)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from swictation.domain.cooperation import Cooperation, CooperationStep, Pressure, TenantView
from swictation.domain.forecast import GrowthForecast, time_to_exhaustion_s
from swictation.domain.levels import WATCH_TABLE, level_table
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
from swictation.domain.residency import ModelResidency, Residency

_GRADED = (Level.WARNING, Level.CRITICAL, Level.EMERGENCY)
_EXHAUSTIVE_UP_TO = 10


class Policy(Protocol):
    """What the guard service and the replay drive: observations in, decisions out; its
    thresholds (the guard's fallback poll, the room a return to the GPU needs) and tuning
    (each model's working memory) are part of it."""

    name: str
    thresholds: Thresholds
    tuning: Tuning

    @property
    def level(self) -> Level: ...

    @property
    def quiet_after_s(self) -> float:
        """After this long with one unchanged reading and nothing moving, the policy decides
        nothing new (a simulation may then jump to the next reading)."""
        ...

    def observe(self, observation: Observation) -> Decision: ...

    def residency_of(self, name: str) -> Residency | None:
        """Where the policy keeps model `name` (None: it keeps no residency machines)."""
        ...


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


class GuardPolicy(Policy):
    """The guard as it should be: device-wide, hysteretic, persistent and predictive."""

    name = "default"

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        tuning: Tuning | None = None,
        on_gpu: bool = True,
    ):
        self.thresholds = thresholds or Thresholds()
        self.tuning = tuning or Tuning()
        # Off the GPU (the daemon gave it up), the guard only watches: the watch table, the
        # calm poll, and no SHUTDOWN (nothing of ours is left on the card to give up).
        self.on_gpu = on_gpu
        self._machine = PressureMachine(level_table(self.tuning) if on_gpu else WATCH_TABLE)
        self._forecast = GrowthForecast(self.tuning.forecast_window_s)
        self._clear_since: dict[Level, float | None] = dict.fromkeys(_GRADED)
        self._shutdown_since: float | None = None
        self.residency: dict[str, ModelResidency] = {}
        self.cooperation = Cooperation(self.tuning.tenant_wait_s, self.tuning.tenant_reload)

    @property
    def level(self) -> Level:
        return self._machine.level

    @property
    def quiet_after_s(self) -> float:
        th, tu = self.thresholds, self.tuning
        waits = (
            th.dwell_s,
            th.interval_s,
            tu.reapply_s,
            tu.shutdown_grace_s,
            tu.settle_s,
            tu.restore_backoff_max_s,
            tu.restore_wait_s,
            tu.forecast_window_s,
            tu.fallback_cooldown_s or 0.0,
        )
        # Every deadline run out twice over: a dwell, then a back-off, then a settle.
        return 2 * sum(waits)

    def residency_of(self, name: str) -> Residency | None:
        machine = self.residency.get(name)
        return None if machine is None else machine.residency

    def observe(self, observation: Observation) -> Decision:
        sample = observation.sample
        previous = self._machine.level
        t = sample.t
        self._take_notices(observation, t)
        if observation.cleanup_freed_mib is not None:
            self._machine.cleaned(observation.cleanup_freed_mib)
        if isinstance(sample, ProbeUnavailable) or previous is Level.SHUTDOWN:
            # Unknown is not calm: keep the level and look again soon.
            return Decision(
                t, previous, previous, (), self.thresholds.interval_s, residency=self._snapshot()
            )
        models = observation.models
        used, total = sample.used_mib, sample.total_mib
        for model in models:
            self._machine_of(model).follow(model.placement, t)
        resident_mib = sum(m.size_mib for m in models if m.placement.holds_gpu)
        self._forecast.add(
            t, used - resident_mib if sample.own_mib is None else used - sample.own_mib
        )
        in_flight = [m for m in models if m.placement in (Placement.TO_CPU, Placement.TO_GPU)]
        leaving_mib = sum(m.size_mib for m in in_flight if m.placement is Placement.TO_CPU)
        offloadable = self._offload_candidates(models)

        self._machine.move_to(self._target_level(sample, previous, offloadable, in_flight))
        level = self._machine.level
        for model in models:
            machine = self.residency[model.name]
            machine.watch(level >= Level.EMERGENCY, t)
            working = max(model.working_mib, self.tuning.working_mib.get(model.name, 0.0))
            machine.watch_room(
                self.thresholds.restore_room(used + model.size_mib, total, working), t
            )

        slope = self._forecast.slope_mib_s()
        tte = time_to_exhaustion_s(total - used, slope)
        if level is Level.SHUTDOWN:
            action = Action(
                ActionKind.SHUTDOWN,
                reason=f"usage {sample.usage:.1%} >= {self.thresholds.shutdown:.0%} "
                "with nothing left to offload",
            )
            return Decision(
                t,
                level,
                previous,
                (action,),
                self.thresholds.min_interval_s,
                sample.usage,
                tte,
                self._snapshot(),
            )
        actions: list[Action] = []
        cleanup = self._machine.due_cleanup(t, sample.usage, self.thresholds.margin)
        if cleanup is not None:
            actions.append(cleanup)
        interval = self._interval(sample, tte, bool(in_flight))
        growth = self._forecast.sustained_slope_mib_s(slope)
        asks = self._cooperate(
            sample, used - leaving_mib, offloadable, growth, interval, observation.tenants
        )
        actions.extend(asks.actions)
        if not asks.hold_offloads:
            actions.extend(
                self._offloads(sample, used - leaving_mib, offloadable, growth, interval, t)
            )
        waiting = False
        if self._machine.rule.restores and not in_flight:
            restores, waiting = self._restore(models, sample, slope or 0.0, observation.busy)
            actions.extend(restores)
        if waiting:
            # A restore is due but speech is in flight: look for the next gap often.
            interval = self.thresholds.min_interval_s
        return Decision(
            t, level, previous, tuple(actions), interval, sample.usage, tte, self._snapshot()
        )

    # -- residency ----------------------------------------------------------------------

    def _machine_of(self, model: ModelState) -> ModelResidency:
        machine = self.residency.get(model.name)
        if machine is None:
            initial = Residency.CPU_ONLY if model.placement is Placement.CPU else Residency.ON_GPU
            machine = ModelResidency(model.name, self.tuning, self.thresholds.dwell_s, initial)
            self.residency[model.name] = machine
        return machine

    def _take_notices(self, observation: Observation, t: float) -> None:
        placements = {m.name: m.placement for m in observation.models}
        for name in observation.resets:
            machine = self.residency.get(name)
            if machine is not None:
                machine.fire("reset", t)
        for name in observation.fallbacks:
            placement = placements.get(name, Placement.CPU)
            self._machine_of(ModelState(name, 0.0, placement)).fire("pin", t)

    def _snapshot(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, m.state) for name, m in self.residency.items())

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
        if self.on_gpu and sample.usage >= th.shutdown and not offloadable and not in_flight:
            if self._shutdown_since is None:
                self._shutdown_since = t
            if t - self._shutdown_since >= self.tuning.shutdown_grace_s:
                target = Level.SHUTDOWN
        else:
            self._shutdown_since = None
        return target

    def _interval(self, sample: MemorySample, tte: float | None, moving: bool) -> float:
        """Poll faster as headroom shrinks: geometric from `interval_s` at WARNING's exit
        point down to `min_interval_s` at EMERGENCY, capped by the level's poll ceiling."""
        th = self.thresholds
        if not self.on_gpu:
            return th.interval_s
        start = th.warning - th.margin
        pressure = (sample.usage - start) / (th.emergency - start)
        if th.warning_free_mib > th.emergency_free_mib:
            floor_start = th.warning_free_mib + th.margin * sample.total_mib
            by_floor = (floor_start - sample.free_mib) / (floor_start - th.emergency_free_mib)
            pressure = max(pressure, by_floor)
        pressure = min(1.0, max(0.0, pressure))
        interval: float = th.interval_s * (th.min_interval_s / th.interval_s) ** pressure
        ceiling = self._machine.rule.poll_ceiling_s
        if ceiling is not None:
            interval = min(interval, max(th.min_interval_s, ceiling))
        if tte is not None:
            interval = min(interval, max(th.min_interval_s, tte / 4))
        if moving:
            interval = min(interval, max(th.min_interval_s, 0.25))
        return interval

    # -- actions ------------------------------------------------------------------------

    def _cooperate(
        self,
        sample: MemorySample,
        projected_mib: float,
        candidates: Sequence[ModelState],
        growth: float | None,
        interval: float,
        tenants: tuple[TenantView, ...],
    ) -> CooperationStep:
        """Co-tenants are asked where the level's rule would offload our own models (to the
        target, or early on the forecast), and urgently where that would not save us."""
        if not tenants and not self.cooperation.asked:
            return CooperationStep()
        rule, level = self._machine.rule, self._machine.level
        th = self.thresholds
        total = sample.total_mib
        target_mib = min(th.critical * total, total - th.critical_free_mib)
        tte = time_to_exhaustion_s(sample.free_mib, growth)
        all_out = self.tuning.transfer_s(sum(m.size_mib for m in candidates))
        lead = self.tuning.forecast_safety * (interval + all_out)
        need = projected_mib - target_mib
        pressing = rule.offload_to_target and need > 0
        by_forecast = False
        forecast = rule.forecast_offloads and tte is not None and growth is not None
        if not pressing and forecast and tte is not None and growth is not None and tte <= lead:
            pressing = by_forecast = True
            need = projected_mib + min(growth * lead, total) - target_mib
        urgent = pressing and (
            sample.usage >= th.shutdown
            or not candidates
            or (tte is not None and tte <= interval + all_out)
        )
        return self.cooperation.step(
            Pressure(sample.t, level, pressing, max(0.0, need), urgent, by_forecast), tenants
        )

    def _offload_candidates(self, models: Sequence[ModelState]) -> list[ModelState]:
        movable = (Residency.ON_GPU, Residency.SETTLING)
        return [
            m
            for m in models
            if m.placement is Placement.GPU
            and m.offloadable
            and self.residency[m.name].residency in movable
            and m.size_mib >= self.tuning.min_offload_mib
        ]

    def _offloads(
        self,
        sample: MemorySample,
        projected_mib: float,
        candidates: Sequence[ModelState],
        growth: float | None,
        interval: float,
        t: float,
    ) -> list[Action]:
        if not candidates:
            return []
        rule = self._machine.rule
        th = self.thresholds
        total = sample.total_mib
        target_mib = min(th.critical * total, total - th.critical_free_mib)
        tte = time_to_exhaustion_s(sample.free_mib, growth)
        plan: tuple[ModelState, ...] = ()
        reason = ""
        forecast = False
        if rule.offload_to_target and projected_mib > target_mib:
            plan = plan_offload(candidates, projected_mib - target_mib, self.tuning)
            reason = f"{self._machine.level.name} at {sample.usage:.1%}"
        elif rule.forecast_offloads and tte is not None and growth is not None:
            all_out = self.tuning.transfer_s(sum(m.size_mib for m in candidates))
            lead = self.tuning.forecast_safety * (interval + all_out)
            if tte <= lead:
                need = projected_mib + min(growth * lead, total) - target_mib
                plan = plan_offload(candidates, need, self.tuning)
                reason = f"forecast: card full in {tte:.1f}s, offload takes {all_out:.1f}s"
                forecast = True
        actions = []
        for model in plan:
            if self.residency[model.name].fire("offload", t, forecast=forecast):
                actions.append(Action(ActionKind.OFFLOAD, model.name, reason))
        return actions

    def _restore(
        self, models: Sequence[ModelState], sample: MemorySample, slope: float, busy: bool
    ) -> tuple[list[Action], bool]:
        """At most one restore per step, the largest first; also whether one is waiting for
        a gap in speech."""
        t = sample.t
        waiting = False
        ready = [m for m in models if self.residency[m.name].ready_to_restore(t)]
        for model in sorted(ready, key=lambda m: (-m.size_mib, m.name)):
            machine = self.residency[model.name]
            room = sample.free_mib - model.size_mib
            if slope > 0 and room / slope < self.tuning.settle_s:
                continue  # others are growing into the room the model would need
            if busy:
                # Speech in flight: wait for the next gap, but not longer than restore_wait_s.
                if machine.due_since is None:
                    machine.due_since = t
                if t - machine.due_since < self.tuning.restore_wait_s:
                    waiting = True
                    continue
            why = "forecast offload proved unneeded" if machine.by_forecast else "room held"
            if machine.fire("restore", t):
                return [Action(ActionKind.RESTORE, model.name, f"{why} for the dwell")], False
        return [], waiting
