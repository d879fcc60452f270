"""The co-tenant refresher is a supervised worker: its failures are counted in the daemon's
health, and a failure repeated tick after tick is logged once per streak, with its count."""

from __future__ import annotations

import logging
import threading

from swictation.adapters.clock import SystemClock
from swictation.adapters.memory import EventList, FakeClock, InMemoryModelHost, NoProbe
from swictation.adapters.tenants import SimulatedTenant
from swictation.application.services.cooperation import TenantBroker, TenantSpec
from swictation.application.services.guard import GuardService
from swictation.application.services.workers import Workers
from swictation.domain.policy import GuardPolicy


class BrokenClient(SimulatedTenant):
    """A client with a bug: its first `failures` state reads raise (a client must not)."""

    def __init__(self, failures: int) -> None:
        super().__init__("ollama", 4096.0)
        self.failures = failures
        self.reads = 0
        self.recovered = threading.Event()

    def state(self):
        self.reads += 1
        if self.reads <= self.failures:
            raise KeyError("models")
        self.recovered.set()
        return super().state()


def test_a_failing_refresh_is_counted_in_the_workers_health_and_logged_once(caplog):
    workers = Workers()
    client = BrokenClient(failures=5)
    broker = TenantBroker(
        [TenantSpec("ollama", client)], EventList(), SystemClock(), refresh_s=0.01, workers=workers
    )
    with caplog.at_level(logging.INFO, logger="swictation"):
        broker.views()  # the guard's first look starts the refresher
        assert client.recovered.wait(30)
        broker.close()
    health = workers.snapshot()["tenants"]
    assert health["errors"] == 5
    assert health["last_error"] == "KeyError: 'models'"
    tracebacks = [r for r in caplog.records if r.exc_info and "co-tenants" in r.getMessage()]
    assert len(tracebacks) == 1
    assert "refreshing co-tenants works again after 5 failures" in caplog.text
    assert workers.all_alive()  # ended by close(): done, not failed


def test_a_repeated_guard_tick_failure_is_logged_once_per_streak_with_its_count(caplog):
    class Flaky(NoProbe):
        def __init__(self, clock):
            super().__init__(clock)
            self.reads = 0

        def sample(self):
            self.reads += 1
            if 2 <= self.reads <= 6:
                raise RuntimeError("driver hiccup")
            return super().sample()

    clock = FakeClock()
    guard = GuardService(Flaky(clock), InMemoryModelHost(clock), GuardPolicy(), EventList(), clock)
    with caplog.at_level(logging.INFO, logger="swictation"):
        guard.run(duration_s=60)
    assert guard.errors == 5
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert "guard tick works again after 5 failures" in caplog.text
