"""Cooperation with the other programs on the card (pure): whom to ask to release memory, in
which order, and whether our own offload waits for them."""

from __future__ import annotations

import math

import attrs

from swictation.domain.model import Action, ActionKind, Level


@attrs.frozen
class TenantView:
    """What the guard knows of one co-tenant: `held_mib` and `busy` are None where its API
    does not say; `idle_only` tenants are never asked while busy."""

    name: str
    kind: str = ""
    held_mib: float | None = None
    busy: bool | None = None
    reachable: bool = True
    idle_only: bool = True
    priority: int = 0


@attrs.frozen
class Pressure:
    """One guard step as cooperation sees it.

    `pressing`: EMERGENCY, or the forecast says the card fills before an offload could finish.
    `need_mib`: what must be freed to get back under target. `urgent`: the alternative to
    asking is a would-be OOM (at or above the SHUTDOWN point, nothing of ours left to offload,
    or the card fills before our own offload could finish)."""

    t: float
    level: Level
    pressing: bool
    need_mib: float = 0.0
    urgent: bool = False
    by_forecast: bool = False  # pressing only because the forecast says the card fills


@attrs.frozen
class CooperationStep:
    """The asks of one step, and whether our own offloads wait (for the asked to free)."""

    actions: tuple[Action, ...] = ()
    hold_offloads: bool = False


class Cooperation:
    """Idle tenants first, by `priority` then the most memory first (what their APIs report;
    unknown last), until what they report covers the need; each asked at most once per
    `reask_s`; busy ones only when urgent and not `idle_only`. After asking, our own
    offloads wait up to `wait_s` for the card to show the memory freed, unless urgent. When
    the pressure ends (NORMAL), `reload` asks those that released to take it back."""

    def __init__(self, wait_s: float = 3.0, reload: bool = False, reask_s: float = 60.0) -> None:
        self.wait_s = wait_s
        self.reload = reload
        self.reask_s = reask_s
        self._asked: dict[str, float] = {}
        self._released: list[str] = []
        self._held: dict[str, float] = {}
        self._wait_until: float | None = None

    @property
    def asked(self) -> tuple[str, ...]:
        return tuple(self._asked)

    def step(self, pressure: Pressure, tenants: tuple[TenantView, ...]) -> CooperationStep:
        t = pressure.t
        if pressure.level is Level.NORMAL and not pressure.pressing:
            return self._episode_over(t)
        if not pressure.pressing or pressure.level is Level.SHUTDOWN:
            return CooperationStep()
        waiting = self._wait_until is not None and t < self._wait_until
        # While the asked are given their time, what they said they hold counts as coming.
        coming = sum(self._held.get(name, 0.0) for name in self._asked) if waiting else 0.0
        chosen = self._choose(tenants, pressure, coming)
        for tenant in chosen:
            self._asked[tenant.name] = t
            self._held[tenant.name] = tenant.held_mib or 0.0
            self._released.append(tenant.name)
        actions = [
            Action(ActionKind.ASK_RELEASE, reason=self._why(pressure, tenant), tenant=tenant.name)
            for tenant in chosen
        ]
        if actions and (self._wait_until is None or t >= self._wait_until + self.reask_s):
            # One wait per wave of asks: later asks in the same wave do not hold us again.
            self._wait_until = t + self.wait_s
            waiting = True
        return CooperationStep(tuple(actions), waiting and not pressure.urgent)

    def _choose(
        self, tenants: tuple[TenantView, ...], pressure: Pressure, coming: float
    ) -> list[TenantView]:
        fresh = [
            v
            for v in tenants
            if v.reachable and pressure.t - self._asked.get(v.name, -math.inf) >= self.reask_s
        ]
        idle = [v for v in fresh if v.busy is not True]
        idle.sort(key=lambda v: (-v.priority, -(v.held_mib or 0.0), v.name))
        chosen: list[TenantView] = []
        covered = coming
        for view in idle:
            if covered >= pressure.need_mib > 0:
                break  # what the asked say they hold covers the need
            chosen.append(view)
            covered += view.held_mib or 0.0
        if pressure.urgent:
            busy = [v for v in fresh if v.busy is True and not v.idle_only]
            busy.sort(key=lambda v: (-v.priority, -(v.held_mib or 0.0), v.name))
            chosen.extend(busy)
        return chosen

    @staticmethod
    def _why(pressure: Pressure, tenant: TenantView) -> str:
        state = "busy" if tenant.busy else "idle" if tenant.busy is False else "idle (unknown)"
        need = f", {pressure.need_mib:,.0f} MiB needed" if pressure.need_mib > 0 else ""
        urgent = ", OOM otherwise" if pressure.urgent else ""
        what = f"forecast at {pressure.level.name}" if pressure.by_forecast else pressure.level.name
        return f"{what}{need}{urgent}; {state}"

    def _episode_over(self, t: float) -> CooperationStep:
        self._asked.clear()
        self._held.clear()
        self._wait_until = None
        released, self._released = self._released, []
        if not self.reload:
            return CooperationStep()
        return CooperationStep(
            tuple(
                Action(ActionKind.ASK_RELOAD, reason="the pressure is over", tenant=name)
                for name in dict.fromkeys(released)
            )
        )
