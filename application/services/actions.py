"""Carries out the domain's actions through the ports and records each as an event."""

from __future__ import annotations

import logging
from collections.abc import Callable

from swictation.domain.model import Action, ActionKind, Event
from swictation.ports import CleanupResult, EventSink, ModelHost, MoveResult
from swictation.ports.tenants import TenantRelay

log = logging.getLogger("swictation.guard")
_MOVES = (ActionKind.OFFLOAD, ActionKind.RESTORE, ActionKind.FALLBACK_TO_CPU)
_ASKS = (ActionKind.ASK_RELEASE, ActionKind.ASK_RELOAD)


class ActionExecutor:
    def __init__(
        self,
        host: ModelHost,
        events: EventSink,
        on_shutdown: Callable[[str], None] | None = None,
        tenants: TenantRelay | None = None,
    ) -> None:
        self._host = host
        self._events = events
        self._on_shutdown = on_shutdown
        self._tenants = tenants
        self._cleaned_mib: float | None = None

    def take_cleaned(self) -> float | None:
        """What the cleanups since the last call freed, in MiB (None: none ran); the policy
        backs off a cleanup that frees nothing."""
        cleaned, self._cleaned_mib = self._cleaned_mib, None
        return cleaned

    def perform(self, action: Action, t: float, usage: float | None = None) -> bool:
        """Carry out one action; returns whether it was done."""
        kind = action.kind
        if kind in _ASKS and self._tenants is not None:
            # Carried out off this thread; the relay records it with what it freed.
            self._tenants.ask(action, t, usage)
            return True
        detail: dict[str, object] = {"reason": action.reason} if action.reason else {}
        done = True
        if kind in _ASKS:
            done = False
            detail.update(tenant=action.tenant, not_done="no co-tenants configured")
        if kind in (ActionKind.COLLECT_GARBAGE, ActionKind.AGGRESSIVE_CLEANUP):
            cleaned: CleanupResult = self._host.cleanup(kind is ActionKind.AGGRESSIVE_CLEANUP)
            detail["freed_mib"] = round(cleaned.freed_mib, 1)
            if cleaned.objects is not None:
                detail["objects"] = cleaned.objects
            self._cleaned_mib = (self._cleaned_mib or 0.0) + cleaned.freed_mib
        elif kind in _MOVES:
            assert action.model is not None
            device = "cuda" if kind is ActionKind.RESTORE else "cpu"
            moved: MoveResult = self._host.move(action.model, device)
            done = moved.done
            detail["seconds"] = round(moved.seconds, 3)
            if not moved.done:
                detail["not_done"] = moved.reason
                log.warning("%s %s not carried out: %s", kind.value, action.model, moved.reason)
        elif kind is ActionKind.SHUTDOWN and self._on_shutdown is not None:
            self._on_shutdown(action.reason)
        if kind in _MOVES or kind is ActionKind.SHUTDOWN:
            log.warning(
                "%s%s: %s", kind.value, f" {action.model}" if action.model else "", action.reason
            )
        else:
            log.info("%s: %s", kind.value, action.reason)
        self._events.emit(
            Event(t, "action", action=kind.value, model=action.model, usage=usage, detail=detail)
        )
        return done
