"""A CPU fallback shows in status and the final report at once, not only after the guard's
next step takes it in (a run that ends within one poll of the fallback never showed it)."""

from __future__ import annotations

from swictation.adapters.memory import EventList, FakeClock, InMemoryModelHost, ScriptedProbe
from swictation.application.services.guard import GuardService
from swictation.domain.model import ModelState
from swictation.domain.policy import GuardPolicy
from swictation.domain.recovery import ErrorKind, RecoveryTracker, Verdict


def calm_guard(*models: ModelState) -> tuple[GuardService, RecoveryTracker, FakeClock]:
    """A guard on a card at 12 %, with its own recovery tracker, on a fake clock."""
    clock = FakeClock()
    recovery = RecoveryTracker()
    guard = GuardService(
        ScriptedProbe(lambda t: 1000.0, 8192.0, clock),
        InMemoryModelHost(clock, list(models)),
        GuardPolicy(),
        EventList(),
        clock,
        recovery=recovery,
    )
    return guard, recovery, clock


def test_a_fallback_is_reported_before_the_guards_next_step():
    guard, recovery, clock = calm_guard(ModelState("stt", 100.0), ModelState("vad", 2.0))
    guard.tick()
    verdicts = [recovery.failure("stt", ErrorKind.OUT_OF_MEMORY, 1.0).verdict for _ in range(3)]
    assert verdicts[-1] is Verdict.FALLBACK
    assert guard.pinned_to_cpu("stt")  # before the guard has stepped again
    assert not guard.pinned_to_cpu("vad")
    clock.advance(2.0)
    guard.tick()
    assert guard.pinned_to_cpu("stt")  # and after: its residency is pinned


def test_a_reset_right_after_a_fallback_is_not_lost():
    # The operator resets as soon as status shows the fallback, before the guard has taken
    # it in: the reset ends the pinning (it came after the fallback), it is not undone by it.
    guard, recovery, clock = calm_guard(ModelState("stt", 100.0))
    guard.tick()
    for _ in range(3):
        recovery.failure("stt", ErrorKind.OUT_OF_MEMORY, 1.0)
    assert guard.reset("stt")
    for _ in range(3):
        clock.advance(2.0)
        guard.tick()
    assert not guard.pinned_to_cpu("stt")
