"""Carries out the guard's asks to co-tenants off the guard's thread: keeps their latest state
for the policy, asks them to release (or reload), watches the card for what that freed, and
records every ask in the flight recorder."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from swictation.application.services.workers import FailureStreak, Workers
from swictation.domain.cooperation import TenantView
from swictation.domain.model import Action, ActionKind, Event, MemorySample, ProbeUnavailable
from swictation.ports import Clock, EventSink
from swictation.ports.tenants import ReleaseResult, Tenant, TenantRelay, TenantState

log = logging.getLogger("swictation.tenants")

Card = Callable[[], MemorySample | ProbeUnavailable | None]
REFRESHER = "tenants"  # the refresher's name among the daemon's workers


@attrs.frozen
class TenantSpec:
    """One configured co-tenant: its client, its unique name and how it may be asked."""

    name: str
    tenant: Tenant
    priority: int = 0
    idle_only: bool = True


@attrs.define
class _Record:
    spec: TenantSpec
    state: TenantState | None = None
    asks: int = 0
    reloads: int = 0
    freed_mib: float = 0.0
    last: dict[str, Any] | None = None


class TenantBroker(TenantRelay):
    """`threaded` (the daemon): states are refreshed every `refresh_s` on a worker thread and
    each ask runs on a thread of its own, watching the card up to `wait_s` for the memory to
    show as freed. Not threaded (replay on a simulated clock): everything happens in the
    caller, at once, and what the tenant reports is what it freed."""

    def __init__(
        self,
        specs: Sequence[TenantSpec],
        events: EventSink,
        clock: Clock,
        card: Card | None = None,
        wait_s: float = 3.0,
        refresh_s: float = 2.0,
        threaded: bool = True,
        workers: Workers | None = None,
    ) -> None:
        self._records = {spec.name: _Record(spec) for spec in specs}
        self._events = events
        self._clock = clock
        self._card = card
        self.wait_s = wait_s
        self.refresh_s = refresh_s
        self.threaded = threaded
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The refresher runs as a supervised worker: restarted if it dies, counted in health.
        self._workers = workers or Workers()
        self._started = False
        self._asking: list[threading.Thread] = []

    # -- what the guard sees ------------------------------------------------------------

    def views(self) -> tuple[TenantView, ...]:
        if not self.threaded:
            self.refresh()
        elif not self._started and not self._stop.is_set():
            self._start()
        with self._lock:
            return tuple(self._view(r) for r in self._records.values())

    @staticmethod
    def _view(record: _Record) -> TenantView:
        spec, state = record.spec, record.state
        return TenantView(
            spec.name,
            spec.tenant.kind,
            None if state is None else state.held_mib,
            None if state is None else state.busy,
            # Unknown until first heard from: worth asking.
            True if state is None else state.reachable,
            spec.idle_only,
            spec.priority,
        )

    def refresh(self) -> None:
        for record in list(self._records.values()):
            state = record.spec.tenant.state()
            with self._lock:
                was = record.state
                record.state = state
            if not state.reachable and (was is None or was.reachable):
                log.warning("co-tenant %s does not answer: %s", record.spec.name, state.error)

    # -- asking --------------------------------------------------------------------------

    def ask(self, action: Action, t: float, usage: float | None = None) -> None:
        record = self._records.get(action.tenant or "")
        if record is None:
            log.warning("%s for unknown co-tenant %r ignored", action.kind.value, action.tenant)
            return
        if not self.threaded:
            self._carry_out(record, action, t, usage)
            return
        thread = threading.Thread(
            target=self._carry_out,
            args=(record, action, t, usage),
            name=f"swictation-ask-{record.spec.name}",
            daemon=True,
        )
        with self._lock:
            self._asking = [a for a in self._asking if a.is_alive()] + [thread]
        thread.start()

    def _carry_out(self, record: _Record, action: Action, t: float, usage: float | None) -> None:
        spec = record.spec
        reload = action.kind is ActionKind.ASK_RELOAD
        before = self._used()
        try:
            result = spec.tenant.reload() if reload else spec.tenant.release()
        except Exception as error:  # a client must not raise; if one does, it is reported
            result = ReleaseResult(spec.tenant.kind, spec.tenant.url, False, error=repr(error))
        freed = None if reload or not result.done else self._watch(before, result)
        detail = self._detail(spec, action, result, freed)
        with self._lock:
            if reload:
                record.reloads += 1
                if not self.threaded and result.done:
                    record.freed_mib -= result.reported_mib or 0.0
            else:
                record.asks += 1
                record.freed_mib += freed or 0.0
            record.last = {"t": round(t, 3), **detail}
        if result.done:
            log.warning(
                "%s %s (%s): %s%s",
                action.kind.value,
                spec.name,
                action.reason,
                ", ".join(result.released) or "nothing to release",
                "" if freed is None else f"; the card shows {freed:,.0f} MiB freed",
            )
        else:
            log.warning("%s %s skipped: %s", action.kind.value, spec.name, result.error)
        self._events.emit(Event(t, "action", action=action.kind.value, usage=usage, detail=detail))

    def _used(self) -> float | None:
        """What the others on the card use: our own share is left out where the probe knows
        it, so that our own offload is not counted as freed by a tenant."""
        if self._card is None:
            return None
        reading = self._card()
        if not isinstance(reading, MemorySample):
            return None
        return reading.used_mib if reading.others_mib is None else reading.others_mib

    def _watch(self, before: float | None, result: ReleaseResult) -> float | None:
        """What the card shows freed since the ask: watched up to `wait_s` (threaded), or what
        the tenant reported (not threaded, or no card to watch)."""
        if not self.threaded or before is None:
            return result.reported_mib
        lowest = before
        deadline = self._clock.now() + self.wait_s
        while True:
            used = self._used()
            if used is not None:
                lowest = min(lowest, used)
            if result.reported_mib is not None and before - lowest >= 0.9 * result.reported_mib:
                break
            remaining = deadline - self._clock.now()
            if remaining <= 0 or self._clock.wait(min(0.1, remaining), self._stop):
                break
        return max(0.0, before - lowest)

    @staticmethod
    def _detail(
        spec: TenantSpec, action: Action, result: ReleaseResult, freed: float | None
    ) -> dict[str, Any]:
        detail: dict[str, Any] = {"tenant": spec.tenant.kind}
        if spec.name != spec.tenant.kind:
            detail["name"] = spec.name
        detail["url"] = spec.tenant.url
        if action.reason:
            detail["reason"] = action.reason
        detail["done"] = result.done
        if result.done:
            detail["released"] = list(result.released)
        if result.reported_mib is not None:
            detail["reported_mib"] = round(result.reported_mib, 1)
        if freed is not None:
            detail["freed_mib"] = round(freed, 1)
        if result.error:
            detail["error"] = result.error
        if result.calls:
            detail["calls"] = [call.describe() for call in result.calls]
        detail["seconds"] = round(result.seconds, 3)
        return detail

    # -- reporting -----------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """Each tenant's last known state and what asking it did, for status and reports."""
        out = []
        with self._lock:
            for record in self._records.values():
                state = record.state
                entry: dict[str, Any] = {
                    "name": record.spec.name,
                    "kind": record.spec.tenant.kind,
                    "url": record.spec.tenant.url,
                    "reachable": None if state is None else state.reachable,
                    "busy": None if state is None else state.busy,
                    "sleeping": None if state is None else state.sleeping,
                    "held_mib": None
                    if state is None or state.held_mib is None
                    else round(state.held_mib, 1),
                    "models": [] if state is None else [m.name for m in state.models],
                    "asks": record.asks,
                    "reloads": record.reloads,
                    "freed_mib": round(record.freed_mib, 1),
                    "last": record.last,
                }
                if state is not None and state.error:
                    entry["error"] = state.error
                out.append(entry)
        return out

    # -- life ------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self._workers.spawn(REFRESHER, self._refresh_loop)

    def _refresh_loop(self) -> None:
        streak = FailureStreak(log, "refreshing co-tenants")
        while not self._stop.is_set():
            try:
                self.refresh()
                streak.succeeded()
            except Exception as error:
                self._workers.error(REFRESHER, error)
                streak.failed(error)
            if self._clock.wait(self.refresh_s, self._stop):
                break

    def close(self, timeout: float = 5.0) -> None:
        """Stops refreshing; asks in flight end their watch at once and are recorded."""
        self._stop.set()
        with self._lock:
            threads = list(self._asking)
        self._workers.join(REFRESHER, timeout)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
