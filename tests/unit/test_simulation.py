"""The simulator's own promises: per-model time off the GPU, the least free memory, and a
cost that follows the rows rather than the time span."""

from __future__ import annotations

import attrs

from swictation.application.config import GuardConfig
from swictation.application.container import simulate
from swictation.application.services.simulation import ModelSpec
from swictation.domain.model import Decision, Observation
from swictation.domain.policy import GuardPolicy
from tests.unit.parts import PolicyWrapper

GiB = 1024.0
YEAR = 365 * 24 * 3600.0


@attrs.define
class Counting(PolicyWrapper):
    inner: GuardPolicy
    calls: int = 0

    def observe(self, observation: Observation) -> Decision:
        self.calls += 1
        return self.inner.observe(observation)


def test_three_rows_spanning_a_year_cost_a_handful_of_steps():
    policy = Counting(GuardPolicy())
    # Full for half a year with a 2 GiB model on an 8 GiB card, then calm.
    report = simulate(
        [0.0, YEAR / 2, YEAR],
        [7.5 * GiB, 1.0 * GiB, 1.0 * GiB],
        [8 * GiB] * 3,
        GuardConfig(),
        [ModelSpec("stt", 2 * GiB)],
        policy=policy,
    )
    assert policy.calls < 20_000  # ticking through the year at 2 s would take 15 million
    assert report.duration_s == YEAR
    assert abs(sum(report.levels.values()) - YEAR) < 1e-3 * YEAR
    # The guard still did what the rows call for: out while full, back once calm.
    assert report.offloads == 1
    assert report.restores == 1
    stt = report.per_model["stt"]
    assert YEAR / 2 - 1 < stt.seconds_off_gpu < YEAR / 2 + 3600


def test_per_model_time_off_the_gpu_and_the_least_free_memory():
    def others(t: float) -> float:
        return 5.3 * GiB if t < 60 else 1.0 * GiB

    times = [i * 0.5 for i in range(361)]
    report = simulate(
        times,
        [others(t) for t in times],
        [8 * GiB] * len(times),
        GuardConfig(),
        [ModelSpec("stt", 2.5 * GiB), ModelSpec("vad", 2.0)],
    )
    stt = report.per_model["stt"]
    assert (stt.offloads, stt.restores) == (1, 1)
    assert 60 + 10 <= stt.seconds_off_gpu <= 60 + 16
    assert stt.longest_off_gpu_s == stt.seconds_off_gpu
    assert report.per_model["vad"].offloads == 0
    # 5.3 GiB + 2.5 GiB + 2 MiB on an 8 GiB card, before the offload.
    assert abs(report.min_free_mib - (8 - 5.3 - 2.5) * GiB + 2.0) < 1.0
    body = report.to_json()
    assert body["per_model"]["stt"]["offloads"] == 1
    assert body["min_free_mib"] == round(report.min_free_mib, 1)
