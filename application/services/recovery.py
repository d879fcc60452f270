"""Runs one model operation with CUDA error recovery: clean up, retry the same input, and
after N failures move that model (only that one) to the CPU."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from swictation.application.services.actions import ActionExecutor
from swictation.domain.model import Event
from swictation.domain.recovery import RecoveryTracker, Verdict
from swictation.ports import Clock, EventSink, ModelHost

log = logging.getLogger("swictation.recovery")
T = TypeVar("T")


class RecoveringRunner:
    def __init__(
        self,
        host: ModelHost,
        tracker: RecoveryTracker,
        events: EventSink,
        clock: Clock,
        start_time: float = 0.0,
    ) -> None:
        self._host = host
        self._tracker = tracker
        self._events = events
        self._clock = clock
        self._t0 = start_time
        self._executor = ActionExecutor(host, events)
        # The run's totals per model (the tracker's counts reset on success): for reports.
        self.totals: dict[str, dict[str, int]] = {}

    def run(self, model: str, operation: Callable[[str], T]) -> T:
        """Call `operation(device)` with `model` held in place; retry on CUDA errors."""
        while True:
            device: str | None = None  # stays None when the host fails before handing over
            try:
                with self._host.use(model) as device:
                    result = operation(device)
            except Exception as error:  # classified below; anything else is re-raised
                t = self._clock.now()
                step = self._tracker.failure(model, self._host.classify_error(error), t)
                rel = t - self._t0
                self._events.emit(
                    Event(
                        rel,
                        "error",
                        model=model,
                        detail={
                            "kind": step.kind.value,
                            "failures": step.failures,
                            "verdict": step.verdict.value,
                            "device": device,
                            "error": str(error),
                        },
                    )
                )
                log.warning(
                    "%s error in %s on %s (%d): %s",
                    step.kind.value,
                    model,
                    device,
                    step.failures,
                    step.verdict.value,
                )
                counts = self.totals.setdefault(model, {"errors": 0, "fallbacks": 0})
                counts["errors"] += 1
                counts["fallbacks"] += step.verdict is Verdict.FALLBACK
                if step.verdict is Verdict.GIVE_UP:
                    raise
                for action in step.actions:
                    self._executor.perform(action, rel)
                continue
            self._tracker.success(model)
            return result
