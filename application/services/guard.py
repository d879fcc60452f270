"""The guard service: probe -> policy -> actions, on its own thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from swictation.application.services.actions import ActionExecutor
from swictation.application.services.workers import FailureStreak
from swictation.domain.gpu_mode import GpuMode, GpuModeMachine, ModeChange, room_for_models
from swictation.domain.model import (
    Decision,
    Event,
    Level,
    MemorySample,
    Observation,
)
from swictation.domain.policy import Policy
from swictation.domain.recovery import RecoveryTracker
from swictation.ports import Clock, EventSink, GpuProbe, ModelHost
from swictation.ports.tenants import TenantRelay

log = logging.getLogger("swictation.guard")


class GuardService:
    """Samples the device, asks the policy, and carries out what it decides.

    With a GPU-mode machine (`guard.on_shutdown = "cpu"`), SHUTDOWN is handed to it instead
    of stopping the daemon, and off the GPU every reading tells it whether the card has room
    for our models again; its decisions go to `on_mode_change` (None: a return called off).
    `stop()` is safe to call any number of times, from any thread; an exception in one
    tick is logged and the loop goes on.
    """

    def __init__(
        self,
        probe: GpuProbe,
        host: ModelHost,
        policy: Policy,
        events: EventSink,
        clock: Clock,
        recovery: RecoveryTracker | None = None,
        busy: Callable[[], bool] | None = None,
        on_shutdown: Callable[[str], None] | None = None,
        record_samples: bool = True,
        start_time: float | None = None,
        tenants: TenantRelay | None = None,
        gpu_mode: GpuModeMachine | None = None,
        context_mib: float = 0.0,
        on_mode_change: Callable[[ModeChange | None], None] | None = None,
    ) -> None:
        self.probe = probe
        self.host = host
        self.policy = policy
        self.events = events
        self.clock = clock
        self.recovery = recovery or RecoveryTracker()
        self._busy = busy or (lambda: False)
        # With speech to watch (the daemon), each recorded sample says whether it was in
        # flight: replay holds restores back on exactly what this guard saw.
        self._record_busy = busy is not None
        self.on_shutdown = on_shutdown
        self.tenants = tenants
        self.gpu_mode = gpu_mode
        self.on_mode_change = on_mode_change
        self._context_mib = context_mib
        self._t = 0.0
        self._executor = ActionExecutor(host, events, self._shutdown, tenants)
        self._record_samples = record_samples
        self._t0 = clock.now() if start_time is None else start_time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fallback_interval = policy.thresholds.interval_s
        self.last_sample: MemorySample | None = None
        self.unavailable_reason: str | None = None
        self.ticks = 0
        self.errors = 0
        self._streak = FailureStreak(log, "guard tick")

    @property
    def level(self) -> Level:
        return self.policy.level

    def elapsed(self, t: float) -> float:
        return t - self._t0

    def reset(self, model: str) -> bool:
        """The operator's `swictation reset MODEL`: end its CPU pinning at the next step (the
        model then returns under the same room rules as any other). False: no such model."""
        if model not in {m.name for m in self.host.models()}:
            return False
        self.recovery.request_reset(model)
        return True

    def pinned_to_cpu(self, model: str) -> bool:
        """Pinned by its residency, or fallen back since the last step (status and the final
        report say so at once, not one poll later)."""
        state = self.policy.residency_of(model)
        pinned = state is not None and state.value == "PINNED_CPU"
        return pinned or self.recovery.fallback_posted(model)

    def tick(self) -> Decision:
        reading = self.probe.sample()
        fallbacks, resets = self.recovery.take_notices()
        views = () if self.tenants is None else self.tenants.views()
        busy = self._busy()
        observation = Observation(
            reading,
            self.host.models(),
            busy,
            fallbacks=fallbacks,
            resets=resets,
            tenants=views,
            cleanup_freed_mib=self._executor.take_cleaned(),
        )
        decision = self.policy.observe(observation)
        t = reading.t
        self._t = t
        rel = self.elapsed(t)
        self.ticks += 1
        # Why the device cannot be read right now (None while it can): for status and reports.
        self.unavailable_reason = None if isinstance(reading, MemorySample) else reading.reason
        if isinstance(reading, MemorySample):
            self.last_sample = reading
            if self._record_samples:
                detail: dict[str, object] = {
                    "used_mib": round(reading.used_mib, 1),
                    "total_mib": round(reading.total_mib, 1),
                }
                if reading.own_mib is not None:
                    detail["own_mib"] = round(reading.own_mib, 1)
                if self._record_busy:
                    detail["busy"] = busy
                self.events.emit(
                    Event(rel, "sample", decision.level.name, usage=reading.usage, detail=detail)
                )
        elif self._record_samples:
            self.events.emit(
                Event(rel, "probe", decision.level.name, detail={"unavailable": reading.reason})
            )
        if decision.changed:
            log.warning(
                "memory pressure %s -> %s (%s)",
                decision.previous.name,
                decision.level.name,
                "unknown" if decision.usage is None else f"{decision.usage:.1%}",
            )
            self.events.emit(
                Event(
                    rel,
                    "level",
                    decision.level.name,
                    usage=decision.usage,
                    detail={"from": decision.previous.name},
                )
            )
        for action in decision.actions:
            self._executor.perform(action, rel, decision.usage)
        if isinstance(reading, MemorySample):
            self._watch_room(reading, t)
        return decision

    def _watch_room(self, reading: MemorySample, t: float) -> None:
        machine = self.gpu_mode
        if machine is None or machine.on_gpu:
            return
        policy = self.policy
        working = dict(policy.tuning.working_mib)
        room = room_for_models(
            reading, self.host.models(), self._context_mib, policy.thresholds, working
        )
        was_returning = machine.mode is GpuMode.RETURNING
        change = machine.watch(room, t)
        if change is not None:
            log.warning("returning to the GPU at the next gap in speech: %s", change.tenure.reason)
            self._tell(change)
        elif was_returning and machine.mode is GpuMode.ON_CPU:
            log.warning("return to the GPU called off: the card has no room for our models again")
            self._tell(None)

    def _tell(self, change: ModeChange | None) -> None:
        if self.on_mode_change is not None:
            self.on_mode_change(change)

    def _shutdown(self, reason: str) -> None:
        if self.gpu_mode is not None:
            # Give up the GPU, not dictation: the guard goes on watching, from the CPU.
            change = self.gpu_mode.shutdown(self._t, reason)
            if change is not None:
                log.critical(
                    "memory SHUTDOWN: %s; giving up the GPU at the next gap in speech "
                    "(dictation goes on on the CPU)",
                    reason,
                )
                self._tell(change)
            return
        self._stop.set()
        if self.on_shutdown is not None:
            self.on_shutdown(reason)

    def run(self, duration_s: float | None = None) -> None:
        """Run the loop in the calling thread until stopped, SHUTDOWN, or `duration_s`."""
        end = None if duration_s is None else self.clock.now() + duration_s
        while not self._stop.is_set():
            interval = self._fallback_interval
            try:
                interval = self.tick().next_poll_s
                self._streak.succeeded()
            except Exception as error:
                self.errors += 1
                self._streak.failed(error)
            if self._stop.is_set() or (end is not None and self.clock.now() >= end):
                break
            if end is not None:
                interval = min(interval, max(0.0, end - self.clock.now()))
            if self.clock.wait(interval, self._stop):
                break

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self.run, name="swictation-guard", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
