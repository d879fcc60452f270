"""CUDA error recovery as state: per-model failure counts, retries and CPU fallback."""

from __future__ import annotations

import enum
import threading

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
    """Counts consecutive CUDA failures per model; one model's failures never touch another.

    Where a model lives after its fallback is its residency machine's business (PINNED_CPU):
    the tracker only posts the fallback, and the operator's reset, for the guard's next step.
    It is shared by the worker threads and the guard's thread, hence the lock.
    """

    def __init__(self, tuning: Tuning | None = None) -> None:
        self._tuning = tuning or Tuning()
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self._fallbacks: list[str] = []
        self._resets: list[str] = []
        # Resets asked for while the model's fallback was still posted: the guard takes
        # resets before fallbacks, so these wait one step (the pin first, then its end).
        self._resets_next: list[str] = []

    def failure(self, model: str, kind: ErrorKind, t: float) -> RecoveryStep:
        with self._lock:
            failures = self._failures.get(model, 0)
            if kind is ErrorKind.OTHER or failures >= self._tuning.max_failures:
                # Not a device problem, or fallen back already with no success since.
                return RecoveryStep(model, kind, failures, Verdict.GIVE_UP)
            failures += 1
            self._failures[model] = failures
            if failures >= self._tuning.max_failures:
                self._fallbacks.append(model)
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
        with self._lock:
            self._failures[model] = 0

    def failures(self, model: str) -> int:
        return self._failures.get(model, 0)

    def request_reset(self, model: str) -> None:
        """The operator's reset: the count starts again and the guard ends the pinning."""
        with self._lock:
            self._failures[model] = 0
            (self._resets_next if model in self._fallbacks else self._resets).append(model)

    def fallback_posted(self, model: str) -> bool:
        """Whether a fallback of `model` is posted and not yet taken in by the guard."""
        with self._lock:
            return model in self._fallbacks

    def take_notices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(fallbacks, resets) posted since the last call, each in order."""
        with self._lock:
            fallbacks, resets = tuple(self._fallbacks), tuple(self._resets)
            self._fallbacks.clear()
            self._resets[:] = self._resets_next
            self._resets_next.clear()
        return fallbacks, resets

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: {"failures": self._failures[name]} for name in sorted(self._failures)}
