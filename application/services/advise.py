"""`swictation replay --advise`: the presets and a small grid of the settings that matter,
each replayed on the trace, ranked by what dictation would have felt like."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import attrs

from swictation.application.config import GuardConfig, PolicyName
from swictation.application.services.simulation import SimulationReport
from swictation.domain.model import PRESETS, Thresholds


@attrs.frozen
class Candidate:
    """One setting to try: a label, the guard's configuration, and the keys that differ
    from the defaults (for the snippet to paste)."""

    label: str
    config: GuardConfig
    changes: tuple[tuple[str, str, Any], ...] = ()  # (section, key, value)

    def snippet(self) -> str:
        if not self.changes:
            return "# the defaults: nothing to change"
        lines: list[str] = []
        for section in ("thresholds", "guard"):
            keys = [(k, v) for s, k, v in self.changes if s == section]
            if keys:
                lines.append(f"[{section}]")
                lines += [f"{k} = {_toml(v)}" for k, v in keys]
        return "\n".join(lines)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else f"{value:g}"


def candidates(base: GuardConfig) -> list[Candidate]:
    """The presets, legacy, and around each preset: a longer dwell with a wider margin, and
    an earlier forecast."""
    out: list[Candidate] = []
    for name, preset in PRESETS.items():
        thresholds = attrs.evolve(
            preset,
            **{k: getattr(base.thresholds, k) for k in ("interval_s", "min_interval_s")},
        )
        changes: tuple[tuple[str, str, Any], ...] = (
            () if name == "default" else (("thresholds", "preset", name),)
        )
        plain = GuardConfig(thresholds, base.tuning, PolicyName.DEFAULT)
        out.append(Candidate(f"{name} preset", plain, changes))
        steady = attrs.evolve(thresholds, dwell_s=30.0, margin=0.05)
        out.append(
            Candidate(
                f"{name}, dwell 30 s, margin 5 points",
                GuardConfig(steady, base.tuning, PolicyName.DEFAULT),
                (*changes, ("thresholds", "dwell_s", 30.0), ("thresholds", "margin", 0.05)),
            )
        )
        early = attrs.evolve(base.tuning, forecast_safety=3.0, forecast_window_s=8.0)
        out.append(
            Candidate(
                f"{name}, earlier forecast",
                GuardConfig(thresholds, early, PolicyName.DEFAULT),
                (
                    *changes,
                    ("guard", "forecast_safety", 3.0),
                    ("guard", "forecast_window_s", 8.0),
                ),
            )
        )
    out.append(
        Candidate(
            "legacy policy", GuardConfig(policy=PolicyName.LEGACY), (("guard", "policy", "legacy"),)
        )
    )
    return out


@attrs.frozen
class Advice:
    candidate: Candidate
    report: SimulationReport

    @property
    def seconds_off_gpu(self) -> float:
        return sum(m.seconds_off_gpu for m in self.report.per_model.values())

    @property
    def moves(self) -> int:
        return self.report.offloads + self.report.restores

    def rank(self) -> tuple[bool, bool, float, int, int]:
        r = self.report
        # On a tie, the fewest changes to paste.
        return (
            r.oom_events > 0,
            r.shutdown,
            round(self.seconds_off_gpu, 3),
            self.moves,
            len(self.candidate.changes),
        )


Simulate = Callable[[GuardConfig], SimulationReport]

# Set before the worker processes fork, so that the trace is not pickled for each task.
_JOB: Simulate | None = None


def _run(index: int, configs: Sequence[GuardConfig]) -> SimulationReport:
    assert _JOB is not None
    return _JOB(configs[index])


def advise(simulate: Simulate, base: GuardConfig, workers: int | None = None) -> list[Advice]:
    """Every candidate replayed (in parallel where the platform forks), best first."""
    global _JOB
    found = candidates(base)
    configs = [c.config for c in found]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        _JOB = simulate
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(min(workers, len(configs)), mp_context=context) as pool:
                reports = list(pool.map(_run, range(len(configs)), [configs] * len(configs)))
        finally:
            _JOB = None
    else:
        reports = [simulate(config) for config in configs]
    ranked = [Advice(c, r) for c, r in zip(found, reports, strict=True)]
    return sorted(ranked, key=Advice.rank)


def largest_model_mib(
    used_mib: Sequence[float], total_mib: Sequence[float], thresholds: Thresholds
) -> float:
    """The largest model that would never have brought the card to the offload point
    (EMERGENCY, or its free-memory floor) on this trace, with nothing else of ours on it."""
    room = math.inf
    emergency, floor = thresholds.emergency, thresholds.emergency_free_mib
    for used, total in zip(used_mib, total_mib, strict=True):
        limit = min(emergency * total, total - floor) - used
        if limit < room:
            room = limit
    return max(0.0, room if math.isfinite(room) else 0.0)
