"""Shared scenario builders for the policy simulation tests."""

from __future__ import annotations

import random
from collections.abc import Callable

from swictation.adapters.memory import EventList
from swictation.application.config import GuardConfig
from swictation.application.container import simulate
from swictation.application.services.simulation import (
    ModelSpec,
    SimulationReport,
    sample_function,
)
from swictation.domain.model import Event, Thresholds, Tuning
from swictation.domain.policy import Policy

GiB = 1024.0


def run(
    policy: Policy,
    others: Callable[[float], float],
    total_gib: float,
    models: dict[str, float],
    duration_s: float,
    step_s: float = 0.05,
    busy: Callable[[float], bool] | None = None,
    tuning: Tuning | None = None,
) -> tuple[SimulationReport, list[Event]]:
    times, used = sample_function(others, duration_s, step_s)
    events = EventList()
    report = simulate(
        times,
        used,
        [total_gib * GiB] * len(times),
        GuardConfig(tuning=tuning or Tuning()),
        [ModelSpec(name, size * GiB) for name, size in models.items()],
        policy=policy,
        busy=busy,
        events=events,
    )
    return report, events.events


def actions(events: list[Event], kind: str, model: str | None = None) -> list[Event]:
    return [
        e
        for e in events
        if e.type == "action" and e.action == kind and (model is None or e.model == model)
    ]


def levels(events: list[Event]) -> list[tuple[float, str]]:
    return [(e.t, e.level or "") for e in events if e.type == "level"]


def noisy(centre: float, spread: float, seed: int = 7) -> Callable[[float], float]:
    """Deterministic noise: a fresh value every 0.5 s, uniform in centre +/- spread."""
    rng = random.Random(seed)
    values = [centre + rng.uniform(-spread, spread) for _ in range(100_000)]
    return lambda t: values[int(t * 2)]


DEFAULT = Thresholds()
