"""Invariants of the default policy under arbitrary usage (hypothesis)."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from swictation.application.container import simulate
from swictation.application.services.simulation import ModelSpec
from swictation.domain.model import Decision, Level, Observation
from swictation.domain.policy import GuardPolicy

TOTAL = 8192.0


@attrs.define
class Recording:
    """Wraps a policy and keeps every observation it saw with the decision it made."""

    inner: GuardPolicy
    seen: list[tuple[Observation, Decision]] = attrs.field(factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def level(self) -> Level:
        return self.inner.level

    def observe(self, observation: Observation) -> Decision:
        decision = self.inner.observe(observation)
        self.seen.append((observation, decision))
        return decision


segments = st.lists(st.tuples(st.floats(0.5, 30.0), st.floats(0.0, 1.02)), min_size=1, max_size=25)


def run(plan: list[tuple[float, float]], models: dict[str, float]) -> Recording:
    """Piecewise-constant usage of other programs, sampled every 0.25 s."""
    times: list[float] = []
    used: list[float] = []
    t = 0.0
    for length, fraction in plan:
        end = t + length
        while t < end:
            times.append(t)
            used.append(fraction * TOTAL)
            t += 0.25
    recording = Recording(GuardPolicy())
    simulate(
        times,
        used,
        [TOTAL] * len(times),
        recording,
        [ModelSpec(n, s) for n, s in models.items()],
    )
    return recording


MODELS = {"stt": 3000.0, "helper": 900.0, "vad": 2.0}


@settings(max_examples=150, deadline=None)
@given(segments)
def test_shutdown_is_never_left(plan):
    recording = run(plan, MODELS)
    levels = [d.level for _, d in recording.seen]
    if Level.SHUTDOWN in levels:
        first = levels.index(Level.SHUTDOWN)
        assert all(level is Level.SHUTDOWN for level in levels[first:])


@settings(max_examples=150, deadline=None)
@given(segments)
def test_no_restore_while_usage_with_the_model_back_would_reach_warning(plan):
    recording = run(plan, MODELS)
    th = recording.inner.thresholds
    for observation, decision in recording.seen:
        sizes = {m.name: m.size_mib for m in observation.models}
        for action in decision.actions:
            if action.kind.value == "restore":
                sample = observation.sample
                with_model = sample.used_mib + sizes[action.model]
                assert with_model < th.warning * sample.total_mib
                assert not th.level_of(with_model, sample.total_mib) > Level.NORMAL


@settings(max_examples=150, deadline=None)
@given(segments)
def test_levels_never_step_down_without_the_dwell(plan):
    recording = run(plan, MODELS)
    th = recording.inner.thresholds
    seen = recording.seen
    for i, (observation, decision) in enumerate(seen):
        if decision.level >= decision.previous:
            continue
        t = observation.t
        # The readings since the last one that was not clear of the level just above the
        # new one must reach back a full dwell.
        above = Level(decision.level + 1)
        history = [o for o, _ in seen[: i + 1]]
        clear = [th.is_clear_of(above, o.sample.used_mib, o.sample.total_mib) for o in history]
        assert clear[-1]
        first_clear = len(clear)
        while first_clear > 0 and clear[first_clear - 1]:
            first_clear -= 1
        assert history[first_clear].t <= t - th.dwell_s + 1e-6


@settings(max_examples=100, deadline=None)
@given(segments)
def test_every_offload_names_a_resident_model_and_none_twice_in_flight(plan):
    recording = run(plan, MODELS)
    for observation, decision in recording.seen:
        placement = {m.name: m.placement.value for m in observation.models}
        for action in decision.actions:
            if action.kind.value == "offload":
                assert placement[action.model] == "gpu"
                assert action.model != "vad"  # 2 MiB frees nothing worth moving
