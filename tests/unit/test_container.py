"""The composition root: selectors and overrides."""

from __future__ import annotations

from dependency_injector import providers

from swictation.adapters.memory import EventList, FakeClock, ScriptedProbe
from swictation.application.container import make_container
from swictation.domain.legacy import LegacyPolicy
from swictation.domain.policy import GuardPolicy


def test_policy_selector():
    assert isinstance(make_container().policy(), GuardPolicy)
    assert isinstance(make_container(policy="legacy").policy(), LegacyPolicy)


def test_fakes_swap_in_with_override():
    container = make_container()
    clock = FakeClock()
    events = EventList()
    container.clock.override(providers.Object(clock))
    container.events.override(providers.Object(events))
    container.probe.override(providers.Object(ScriptedProbe(lambda t: 9.5, 10.0, clock)))
    guard = container.guard()
    decision = guard.tick()
    assert decision.level.name == "EMERGENCY"
    assert events.of_type("level")[0].level == "EMERGENCY"


def test_events_to_a_file(tmp_path):
    path = tmp_path / "events.jsonl"
    container = make_container(events_path=str(path))
    guard = container.guard()
    guard.tick()
    container.events().close()
    assert '"type":"probe"' in path.read_text()
