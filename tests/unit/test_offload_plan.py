"""Minimal offload: the least transfer that frees enough, best MiB/s first."""

from __future__ import annotations

from swictation.domain.model import ModelState, Tuning
from swictation.domain.policy import plan_offload

T = Tuning()


def names(plan):
    return [m.name for m in plan]


def test_nothing_needed_moves_nothing():
    assert plan_offload([ModelState("stt", 3000)], 0, T) == ()


def test_the_smallest_sufficient_model_is_chosen():
    models = [ModelState("stt", 3600), ModelState("helper", 1024), ModelState("tts", 500)]
    assert names(plan_offload(models, 900, T)) == ["helper"]


def test_two_models_when_one_is_not_enough_ordered_by_efficiency():
    models = [ModelState("a", 1000), ModelState("b", 2000), ModelState("c", 4000)]
    assert names(plan_offload(models, 2800, T)) == ["b", "a"]


def test_everything_when_nothing_suffices():
    models = [ModelState("a", 100), ModelState("b", 200)]
    assert sorted(names(plan_offload(models, 10_000, T))) == ["a", "b"]


def test_many_models_use_the_greedy_plan():
    models = [ModelState(f"m{i}", 100 + i) for i in range(15)]
    plan = plan_offload(models, 250, T)
    assert sum(m.size_mib for m in plan) >= 250
    assert len(plan) == 3
