"""The guard service: events, its thread, a safe double stop, and a failing tick."""

from __future__ import annotations

import itertools
import threading
import time

from swictation.adapters.clock import SystemClock
from swictation.adapters.memory import (
    EventList,
    FakeClock,
    InMemoryModelHost,
    NoProbe,
    ResidentModelsProbe,
    ScriptedProbe,
)
from swictation.application.services.guard import GuardService
from swictation.domain.model import MemorySample, ModelState, ProbeUnavailable
from swictation.domain.policy import GuardPolicy
from swictation.ports import GpuProbe

GiB = 1024.0


def test_every_sample_level_change_and_action_is_an_event():
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("stt", 3.6 * GiB)])
    events = EventList()
    others = ScriptedProbe([(0, 4.3 * GiB), (30, 1.0 * GiB)], 8 * GiB, clock)
    probe = ResidentModelsProbe(others, host)
    guard = GuardService(probe, host, GuardPolicy(), events, clock)
    guard.run(duration_s=3)
    kinds = {e.type for e in events.events}
    assert {"sample", "level", "action"} <= kinds
    first = events.of_type("sample")[0]
    assert first.detail["total_mib"] == 8 * GiB
    assert first.detail["own_mib"] == 3.6 * GiB
    assert events.of_type("level")[0].level == "EMERGENCY"
    assert events.of_type("action")[-1].action == "offload"


def test_runs_on_its_own_thread_and_stops_twice_safely():
    clock = SystemClock()
    host = InMemoryModelHost(clock)
    events = EventList()
    guard = GuardService(
        ScriptedProbe(lambda t: 1.0, 10.0, clock), host, GuardPolicy(), events, clock
    )
    guard.start()
    deadline = time.monotonic() + 5
    while guard.ticks == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert guard.running
    assert "swictation-guard" in [t.name for t in threading.enumerate()]
    guard.stop()
    guard.stop()
    assert not guard.running
    assert guard.ticks >= 1


class FlakyProbe(GpuProbe):
    """Raises on its second reading; a bug in one tick must not end the guard."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls = 0

    def sample(self) -> MemorySample | ProbeUnavailable:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("boom")
        return MemorySample(self.clock.now(), 1.0, 10.0)

    def describe(self) -> str:
        return "flaky"

    def close(self) -> None:
        return None


def test_an_exception_in_one_tick_is_logged_and_the_loop_goes_on(caplog):
    clock = FakeClock()
    probe = FlakyProbe(clock)
    guard = GuardService(probe, InMemoryModelHost(clock), GuardPolicy(), EventList(), clock)
    guard.run(duration_s=10)
    assert guard.errors == 1
    assert probe.calls >= 4
    assert "guard tick failed" in caplog.text


def test_an_unreadable_device_keeps_the_level_and_says_why():
    clock = FakeClock()
    events = EventList()
    guard = GuardService(NoProbe(clock), InMemoryModelHost(clock), GuardPolicy(), events, clock)
    guard.run(duration_s=5)
    probe_events = events.of_type("probe")
    assert probe_events
    assert "--probe none" in probe_events[0].detail["unavailable"]
    assert not events.of_type("level")


def test_shutdown_stops_the_loop_and_calls_back():
    clock = FakeClock()
    reasons: list[str] = []
    guard = GuardService(
        ScriptedProbe(lambda t: 0.99 * 8 * GiB, 8 * GiB, clock),
        InMemoryModelHost(clock),
        GuardPolicy(),
        EventList(),
        clock,
        on_shutdown=reasons.append,
    )
    guard.run(duration_s=3600)
    assert len(reasons) == 1
    assert "nothing left to offload" in reasons[0]
    assert clock.now() < 60


def _cleanups_in_an_hour_at_warning(host):
    clock = host._clock
    events = EventList()
    probe = ScriptedProbe([(0, 6.8 * GiB)], 8 * GiB, clock)  # 85 %: WARNING for good
    guard = GuardService(probe, host, GuardPolicy(), events, clock)
    guard.run(duration_s=3600)
    return [e for e in events.of_type("action") if e.action == "collect_garbage"]


def test_held_at_warning_a_cleanup_that_frees_nothing_backs_off():
    host = InMemoryModelHost(FakeClock())
    cleanups = _cleanups_in_an_hour_at_warning(host)
    assert all(e.detail["freed_mib"] == 0.0 for e in cleanups)
    gaps = [round(b.t - a.t) for a, b in itertools.pairwise(cleanups)]
    assert gaps[:4] == [20, 40, 80, 160]  # each empty cleanup doubles the wait from 10 s
    assert set(gaps[4:]) == {300}  # up to the cap, then steady
    assert len(cleanups) < 20  # against 360 at a fixed 10 s


def test_held_at_warning_a_cleanup_that_frees_memory_keeps_its_cadence():
    class RefillingCache(InMemoryModelHost):
        """A cache that something fills again between cleanups: each one frees 32 MiB."""

        def cleanup(self, aggressive=False):
            self.cache_mib = 32.0
            return super().cleanup(aggressive)

    host = RefillingCache(FakeClock())
    cleanups = _cleanups_in_an_hour_at_warning(host)
    assert all(e.detail["freed_mib"] == 32.0 for e in cleanups)
    assert len(cleanups) >= 300
