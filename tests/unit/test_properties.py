"""Invariants of the default policy and its residency machines under arbitrary usage
(hypothesis)."""

from __future__ import annotations

import attrs
from hypothesis import event, given, settings
from hypothesis import strategies as st

from swictation.application.config import GuardConfig
from swictation.application.container import simulate
from swictation.application.services.simulation import ModelSpec
from swictation.domain.model import (
    Decision,
    Level,
    MemorySample,
    ModelState,
    Observation,
    Placement,
    Thresholds,
    Tuning,
)
from swictation.domain.policy import GuardPolicy
from tests.unit.parts import PolicyWrapper

TOTAL = 8192.0


@attrs.define
class Recording(PolicyWrapper):
    """Wraps a policy and keeps every observation it saw with the decision it made; at the
    steps in `pins` it reports a CPU fallback of the STT (as the recovery runner would)."""

    inner: GuardPolicy
    seen: list[tuple[Observation, Decision]] = attrs.field(factory=list)
    pins: frozenset[int] = frozenset()

    def observe(self, observation: Observation) -> Decision:
        if len(self.seen) in self.pins:
            observation = attrs.evolve(observation, fallbacks=("stt",))
        decision = self.inner.observe(observation)
        self.seen.append((observation, decision))
        return decision


segments = st.lists(st.tuples(st.floats(0.5, 30.0), st.floats(0.0, 1.02)), min_size=1, max_size=25)


def run(
    plan: list[tuple[float, float]],
    models: dict[str, float],
    pins: frozenset[int] = frozenset(),
    tuning: Tuning | None = None,
) -> Recording:
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
    recording = Recording(GuardPolicy(tuning=tuning), pins=pins)
    simulate(
        times,
        used,
        [TOTAL] * len(times),
        GuardConfig(tuning=tuning or Tuning()),
        [ModelSpec(n, s) for n, s in models.items()],
        policy=recording,
    )
    return recording


MODELS = {"stt": 3000.0, "helper": 900.0, "vad": 2.0}
DEFAULT_THRESHOLDS = Thresholds()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.0, 1.02), min_size=1, max_size=60))
def test_shutdown_is_never_left(after):
    # The policy itself, not the simulator (which stops at the first SHUTDOWN): the card is
    # full with nothing to offload until SHUTDOWN, then any readings at all follow.
    policy = GuardPolicy()
    t = 0.0
    while policy.level is not Level.SHUTDOWN:
        policy.observe(Observation(MemorySample(t, 0.99 * TOTAL, TOTAL)))
        t += 0.5
        assert t < 60
    for fraction in after:
        t += 0.5
        models = (ModelState("stt", 1000.0, Placement.CPU),)
        decision = policy.observe(
            Observation(MemorySample(t, fraction * TOTAL, TOTAL), models, resets=("stt",))
        )
        assert decision.level is Level.SHUTDOWN
        assert decision.previous is Level.SHUTDOWN
        assert decision.actions == ()


@settings(max_examples=150, deadline=None)
@given(segments)
def test_no_restore_lands_above_the_offload_point(plan):
    recording = run(plan, MODELS)
    th = recording.inner.thresholds
    for observation, decision in recording.seen:
        sizes = {m.name: m.size_mib for m in observation.models}
        for action in decision.actions:
            if action.kind.value == "restore":
                sample = observation.sample
                with_model = sample.used_mib + sizes[action.model]
                assert with_model < (th.emergency - th.margin) * sample.total_mib
                assert th.level_of(with_model, sample.total_mib) < Level.EMERGENCY


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


MOVES = ("offload", "restore")


@settings(max_examples=100, deadline=None)
@given(segments, st.frozensets(st.integers(0, 400), max_size=3))
def test_never_two_moves_of_one_model_at_once(plan, pins):
    recording = run(plan, MODELS, pins)
    moving: dict[str, str] = {}  # model -> the placement its move is heading for
    for observation, decision in recording.seen:
        placement = {m.name: m.placement.value for m in observation.models}
        for name, heading in list(moving.items()):
            if placement[name] in (heading, "gpu" if heading == "cpu" else "cpu"):
                del moving[name]  # arrived, or the move was not carried out
        named = [a.model for a in decision.actions if a.kind.value in MOVES]
        assert len(named) == len(set(named))
        for action in decision.actions:
            if action.kind.value in MOVES:
                assert action.model not in moving, (observation.t, action)
                assert placement[action.model] in ("gpu", "cpu")
                moving[action.model] = "cpu" if action.kind.value == "offload" else "gpu"


@settings(max_examples=100, deadline=None)
@given(segments, st.data())
def test_a_pinned_model_is_never_restored_before_its_cooldown(plan, data):
    # The guard polls at least every interval_s (2 s) from t = 0, so a run of D seconds has
    # at least D / 2 steps: pins drawn among those land inside the run, every example.
    steps = max(1, int(sum(length for length, _ in plan) / 2))
    pins = data.draw(st.frozensets(st.integers(0, steps - 1), min_size=1, max_size=3))
    tuning = Tuning(fallback_cooldown_s=20.0)
    recording = run(plan, MODELS, pins, tuning)
    pinned_at: float | None = None
    checked = 0
    for i, (observation, decision) in enumerate(recording.seen):
        if i in pins:
            pinned_at = observation.t
        residency = dict(decision.residency)
        if pinned_at is not None and observation.t - pinned_at < 20.0:
            assert residency["stt"] == "PINNED_CPU"
            assert all(a.model != "stt" for a in decision.actions)
            checked += 1
            sample = observation.sample
            if isinstance(sample, MemorySample) and decision.level < Level.EMERGENCY:
                room = DEFAULT_THRESHOLDS.restore_room(
                    sample.used_mib + MODELS["stt"], sample.total_mib
                )
                if room:
                    event("a restore would have had room inside the cooldown")
    ended = recording.seen[-1][1].level
    # Only SHUTDOWN (the simulation stops there) may end a run before its first pin.
    assert pinned_at is not None or ended is Level.SHUTDOWN
    assert checked or ended is Level.SHUTDOWN
