"""The original add-on's policy, reproduced exactly, for side-by-side replay."""

from __future__ import annotations

from swictation.domain.levels import LEGACY_TABLE
from swictation.domain.machine import PressureMachine
from swictation.domain.model import (
    Action,
    ActionKind,
    Decision,
    Level,
    Observation,
    Placement,
    ProbeUnavailable,
    Thresholds,
    Tuning,
)
from swictation.domain.policy import Policy
from swictation.domain.residency import Residency

LEGACY_THRESHOLDS = Thresholds(
    warning=0.80,
    critical=0.90,
    emergency=0.95,
    shutdown=0.98,
    warning_free_mib=0,
    critical_free_mib=0,
    emergency_free_mib=0,
    margin=0.0,
    dwell_s=0.0,
    interval_s=2.0,
    min_interval_s=2.0,
)
LEGACY_RESTORE_AT = 0.60


class LegacyPolicy(Policy):
    """80/90/95 %, acts only when the level changes, restores at <= 60 % on return to
    NORMAL (and never again if that moment is missed), no hysteresis, a fixed 2 s poll."""

    name = "legacy"

    def __init__(self, thresholds: Thresholds = LEGACY_THRESHOLDS) -> None:
        self.thresholds = thresholds
        self.tuning = Tuning()  # it tunes nothing: no working memory is counted
        self._machine = PressureMachine(LEGACY_TABLE)
        self._offloaded: set[str] = set()
        self._check_after_offload = False

    @property
    def level(self) -> Level:
        return self._machine.level

    def residency_of(self, name: str) -> Residency | None:
        return None  # no residency machines: a model is where its last action put it

    @property
    def quiet_after_s(self) -> float:
        # It acts on a change of level only, and re-checks once after its offloads.
        return 4 * self.thresholds.interval_s

    def observe(self, observation: Observation) -> Decision:
        sample = observation.sample
        previous = self._machine.level
        interval = self.thresholds.interval_s
        if isinstance(sample, ProbeUnavailable) or previous is Level.SHUTDOWN:
            return Decision(sample.t, previous, previous, (), interval)
        usage = sample.usage
        moving = any(
            m.placement in (Placement.TO_CPU, Placement.TO_GPU) for m in observation.models
        )
        if self._check_after_offload and not moving:
            # The emergency handler's one re-check, once its offloads are done.
            self._check_after_offload = False
            if usage >= self.thresholds.shutdown:
                self._machine.move_to(Level.SHUTDOWN)
                reason = f"usage {usage:.1%} >= 98% after offloading"
                return Decision(
                    sample.t,
                    Level.SHUTDOWN,
                    previous,
                    (Action(ActionKind.SHUTDOWN, reason=reason),),
                    interval,
                    usage,
                )
        level = self.thresholds.level_of(sample.used_mib, sample.total_mib)
        if not self._machine.move_to(level):
            return Decision(sample.t, previous, previous, (), interval, usage)
        rule = self._machine.rule
        actions: list[Action] = []
        if rule.cleanup is not None:
            actions.append(Action(rule.cleanup, reason=f"entered {level.name}"))
        if rule.offload_to_target:
            for model in observation.models:
                if model.placement is Placement.GPU:
                    self._offloaded.add(model.name)
                    actions.append(Action(ActionKind.OFFLOAD, model.name, "entered EMERGENCY"))
            self._check_after_offload = True
        if rule.restores and usage <= LEGACY_RESTORE_AT:
            for model in observation.models:
                if model.name in self._offloaded and model.placement is Placement.CPU:
                    actions.append(Action(ActionKind.RESTORE, model.name, "back to NORMAL"))
            self._offloaded.clear()
        return Decision(sample.t, level, previous, tuple(actions), interval, usage)
