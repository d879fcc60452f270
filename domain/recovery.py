"""CUDA error recovery as state: per-model failure counts, retries and CPU fallback."""

from __future__ import annotations

import enum

import attrs

from swictation.domain.model import Action, ActionKind, Tuning


class ErrorKind(enum.Enum):
    OUT_OF_MEMORY = "out_of_memory"
    CUDA = "cuda"
    OTHER = "other"


class Verdict(enum.Enum):
    RETRY = "retry"
    FALLBACK = "fallback"
    GIVE_UP = "give_up"


@attrs.frozen
class RecoveryStep:
    model: str
    kind: ErrorKind
    failures: int
    verdict: Verdict
    actions: tuple[Action, ...] = ()


class RecoveryTracker:
    """Counts consecutive CUDA failures per model; one model's failures never touch another."""

    def __init__(self, tuning: Tuning | None = None) -> None:
        self._tuning = tuning or Tuning()
        self._failures: dict[str, int] = {}
        self._fallback_since: dict[str, float] = {}

    def failure(self, model: str, kind: ErrorKind, t: float) -> RecoveryStep:
        if kind is ErrorKind.OTHER or model in self._fallback_since:
            # Not a device problem, or already fallen back to the CPU: nothing left to try.
            return RecoveryStep(model, kind, self._failures.get(model, 0), Verdict.GIVE_UP)
        failures = self._failures.get(model, 0) + 1
        self._failures[model] = failures
        if failures >= self._tuning.max_failures:
            self._fallback_since[model] = t
            reason = f"{failures} consecutive {kind.value} errors"
            return RecoveryStep(
                model,
                kind,
                failures,
                Verdict.FALLBACK,
                (Action(ActionKind.FALLBACK_TO_CPU, model, reason),),
            )
        cleanup = (
            ActionKind.AGGRESSIVE_CLEANUP
            if kind is ErrorKind.OUT_OF_MEMORY
            else ActionKind.COLLECT_GARBAGE
        )
        reason = f"{kind.value} error {failures}/{self._tuning.max_failures} in {model}"
        return RecoveryStep(model, kind, failures, Verdict.RETRY, (Action(cleanup, model, reason),))

    def success(self, model: str) -> None:
        self._failures[model] = 0

    def failures(self, model: str) -> int:
        return self._failures.get(model, 0)

    def pinned_to_cpu(self, model: str, t: float) -> bool:
        """Whether `model` must stay on the CPU at time `t` (fallback not reset or cooled down)."""
        since = self._fallback_since.get(model)
        if since is None:
            return False
        cooldown = self._tuning.fallback_cooldown_s
        if cooldown is not None and t - since >= cooldown:
            self.reset(model)
            return False
        return True

    def reset(self, model: str) -> None:
        """The operator's reset (or an expired cool-down): the model may use the GPU again."""
        self._failures[model] = 0
        self._fallback_since.pop(model, None)

    def snapshot(self) -> dict[str, dict[str, int | bool]]:
        names = set(self._failures) | set(self._fallback_since)
        return {
            name: {
                "failures": self._failures.get(name, 0),
                "cpu_fallback": name in self._fallback_since,
            }
            for name in sorted(names)
        }
