"""The broker between the guard and its co-tenants, over real HTTP: asks run off the guard's
thread, what the card shows freed is recorded, and a tenant that hangs never holds the guard."""

from __future__ import annotations

import threading

from swictation.adapters.clock import SystemClock
from swictation.adapters.memory import EventList, InMemoryModelHost, ScriptedProbe
from swictation.adapters.tenants import OllamaTenant
from swictation.application.services.cooperation import TenantBroker, TenantSpec
from swictation.application.services.guard import GuardService
from swictation.domain.model import Action, ActionKind, MemorySample, ModelState, Tuning
from swictation.domain.policy import GuardPolicy
from tests.tenant_servers import FakeOllama, serving, silent_port

TOTAL = 24576.0


class _Card:
    """The device as the broker watches it: others' usage, changed by the test's programs."""

    def __init__(self, used: float) -> None:
        self.used = used
        self.clock = SystemClock()

    def __call__(self) -> MemorySample:
        return MemorySample(self.clock.now(), self.used, TOTAL, own_mib=0.0)


class _FreeingOllama(FakeOllama):
    """An Ollama whose unload shows on the card, as the real one's does."""

    def __init__(self, card: _Card, models: dict[str, float]) -> None:
        super().__init__(models)
        self.card = card

    def handle(self, method, path, body):
        status, payload = super().handle(method, path, body)
        if path == "/api/generate" and body.get("keep_alive") == 0 and status == 200:
            self.card.used -= self.sizes[body["model"]] / (1024 * 1024)
        return status, payload


class _Recorded(EventList):
    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()

    def emit(self, event) -> None:
        super().emit(event)
        if event.action == "ask_release":
            self.arrived.set()


def test_an_ask_records_what_the_card_shows_freed(tmp_path):
    card = _Card(0.96 * TOTAL)
    program = _FreeingOllama(card, {"llama3.2:latest": 6144.0})
    events = _Recorded()
    with serving(program) as url:
        broker = TenantBroker(
            [TenantSpec("ollama", OllamaTenant(url))], events, SystemClock(), card, wait_s=600
        )
        broker.refresh()
        (view,) = broker.views()
        assert (view.name, view.held_mib, view.reachable) == ("ollama", 6144.0, True)
        broker.ask(Action(ActionKind.ASK_RELEASE, tenant="ollama", reason="EMERGENCY"), 12.5)
        # The card shows the memory freed: the watch ends long before its 600 s.
        assert events.arrived.wait(60)
        broker.close()
    (event,) = events.of_type("action")
    detail = event.detail
    assert event.t == 12.5 and event.action == "ask_release"
    assert detail["tenant"] == "ollama" and detail["done"] is True
    assert detail["released"] == ["llama3.2:latest"]
    assert detail["reported_mib"] == 6144.0
    assert detail["freed_mib"] == 6144.0
    assert detail["reason"] == "EMERGENCY"
    (entry,) = broker.snapshot()
    assert entry["asks"] == 1 and entry["freed_mib"] == 6144.0
    assert entry["last"]["t"] == 12.5


def test_the_guard_never_waits_for_a_tenant_that_hangs():
    events = _Recorded()
    clock = SystemClock()
    host = InMemoryModelHost(clock, [ModelState("stt", 3600.0)])
    probe = ScriptedProbe(lambda _t: 0.97 * TOTAL, TOTAL, clock)
    with silent_port() as url:
        broker = TenantBroker(
            [TenantSpec("ollama", OllamaTenant(url, timeout_s=600))],
            events,
            clock,
            probe.sample,
            wait_s=3.0,
        )
        guard = GuardService(
            probe, host, GuardPolicy(tuning=Tuning()), events, clock, tenants=broker
        )
        decision = guard.tick()  # decides to ask; the ask hangs on its own thread
        assert [a.tenant for a in decision.actions if a.kind is ActionKind.ASK_RELEASE] == [
            "ollama"
        ]
        assert not events.arrived.is_set()  # the tick returned while the ask still hangs
        guard.tick()
        assert not events.arrived.is_set()
    # The port closes: the hanging request fails, and the ask is recorded as not done.
    assert events.arrived.wait(60)
    broker.close()
    asks = [e for e in events.of_type("action") if e.action == "ask_release"]
    assert len(asks) == 1
    assert asks[0].detail["done"] is False and asks[0].detail["error"]


def test_views_are_known_after_a_refresh_and_unreachable_tenants_are_marked():
    program = FakeOllama({"llama3.2:latest": 6144.0})
    with serving(program) as url, silent_port() as quiet:
        broker = TenantBroker(
            [
                TenantSpec("ollama", OllamaTenant(url)),
                TenantSpec("ollama#2", OllamaTenant(quiet, timeout_s=0.2), idle_only=False),
            ],
            EventList(),
            SystemClock(),
            threaded=False,
        )
        first, second = broker.views()  # not threaded: refreshed in the call
    assert (first.name, first.held_mib, first.reachable) == ("ollama", 6144.0, True)
    assert (second.name, second.reachable, second.idle_only) == ("ollama#2", False, False)
    snapshot = broker.snapshot()
    assert snapshot[1]["reachable"] is False and "no answer" in snapshot[1]["error"]


def test_a_reload_after_the_pressure_asks_the_tenant_to_load_again():
    program = FakeOllama({"llama3.2:latest": 6144.0})
    events = EventList()
    with serving(program) as url:
        broker = TenantBroker(
            [TenantSpec("ollama", OllamaTenant(url))], events, SystemClock(), threaded=False
        )
        broker.ask(Action(ActionKind.ASK_RELEASE, tenant="ollama"), 1.0)
        assert program.loaded == set()
        broker.ask(Action(ActionKind.ASK_RELOAD, tenant="ollama", reason="over"), 30.0)
        assert program.loaded == {"llama3.2:latest"}
    kinds = [(e.action, e.detail["done"]) for e in events.of_type("action")]
    assert kinds == [("ask_release", True), ("ask_reload", True)]
    assert events.of_type("action")[1].detail["calls"] == [
        'POST /api/generate {"model":"llama3.2:latest"} -> 200'
    ]
    (entry,) = broker.snapshot()
    assert entry["asks"] == 1 and entry["reloads"] == 1
