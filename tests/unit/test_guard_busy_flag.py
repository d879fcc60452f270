"""The daemon's guard records, in each sample of the flight recorder, whether speech was in
flight when it decided: the very flag replay then holds restores back with."""

from __future__ import annotations

from swictation.adapters.memory import EventList, FakeClock, InMemoryModelHost, ScriptedProbe
from swictation.application.services.guard import GuardService
from swictation.domain.model import ModelState
from swictation.domain.policy import GuardPolicy


def _samples(busy) -> list[dict]:
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("stt", 100.0)])
    events = EventList()
    guard = GuardService(
        ScriptedProbe(lambda t: 1000.0, 8192.0, clock),
        host,
        GuardPolicy(),
        events,
        clock,
        busy=busy,
    )
    for _ in range(4):
        guard.tick()
        clock.advance(1.0)
    return [dict(e.to_dict()) for e in events.of_type("sample")]


def test_each_sample_says_whether_speech_was_in_flight():
    said = iter([False, True, True, False])
    assert [s["busy"] for s in _samples(lambda: next(said))] == [False, True, True, False]


def test_a_guard_without_speech_to_watch_records_no_flag():
    # `swictation record` and embedding: nothing could be busy, and nothing is claimed.
    assert all("busy" not in s for s in _samples(None))
