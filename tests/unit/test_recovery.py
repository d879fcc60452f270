"""CUDA error recovery: the tracker alone, then through the runner with the in-memory host
(a stand-in for the GPU, which this machine lacks)."""

from __future__ import annotations

import pytest

from swictation.adapters.memory import EventList, FakeClock, InMemoryModelHost, ScriptedProbe
from swictation.application.services.guard import GuardService
from swictation.application.services.recovery import RecoveringRunner
from swictation.domain.model import ModelState, Placement, Tuning
from swictation.domain.policy import GuardPolicy
from swictation.domain.recovery import ErrorKind, RecoveryTracker, Verdict

GiB = 1024.0


def test_three_failures_fall_back_and_a_success_resets_the_count():
    tracker = RecoveryTracker()
    assert tracker.failure("stt", ErrorKind.OUT_OF_MEMORY, 0).verdict is Verdict.RETRY
    tracker.success("stt")
    assert tracker.failure("stt", ErrorKind.OUT_OF_MEMORY, 1).failures == 1
    assert tracker.failure("stt", ErrorKind.CUDA, 2).verdict is Verdict.RETRY
    step = tracker.failure("stt", ErrorKind.OUT_OF_MEMORY, 3)
    assert step.verdict is Verdict.FALLBACK
    assert step.actions[0].model == "stt"
    # The fallback is posted once for the guard, whose residency machine pins the model.
    assert tracker.take_notices() == (("stt",), ())
    assert tracker.take_notices() == ((), ())


def test_non_cuda_errors_and_errors_after_fallback_are_not_retried():
    tracker = RecoveryTracker(Tuning(max_failures=1))
    assert tracker.failure("stt", ErrorKind.OTHER, 0).verdict is Verdict.GIVE_UP
    assert tracker.failure("stt", ErrorKind.CUDA, 0).verdict is Verdict.FALLBACK
    assert tracker.failure("stt", ErrorKind.CUDA, 1).verdict is Verdict.GIVE_UP


def world(tuning: Tuning | None = None):
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("vad", 2), ModelState("stt", 1500)])
    tracker = RecoveryTracker(tuning)
    events = EventList()
    return clock, host, tracker, events, RecoveringRunner(host, tracker, events, clock)


def test_oom_in_the_vad_alone_leaves_the_stt_in_place():
    _clock, host, tracker, events, runner = world()
    host.inject("vad", ErrorKind.OUT_OF_MEMORY)
    seen: list[str] = []
    assert runner.run("vad", lambda device: seen.append(device) or 0.9) == 0.9
    assert seen == ["cuda"]  # the same input, retried once, on the GPU
    assert host.placement("stt") is Placement.GPU
    assert host.placement("vad") is Placement.GPU
    assert host.cleanups == [True]
    assert tracker.failures("vad") == 0  # the success reset it
    assert [e.detail["verdict"] for e in events.of_type("error")] == ["retry"]


def test_three_ooms_in_a_row_move_that_model_only_to_the_cpu_for_good():
    clock, host, tracker, events, runner = world()
    host.inject("stt", ErrorKind.OUT_OF_MEMORY, times=3)
    devices: list[str] = []
    text = runner.run("stt", lambda device: devices.append(device) or "hello")
    assert text == "hello"
    assert devices == ["cpu"]
    clock.advance(5)
    assert host.placement("stt") is Placement.CPU
    assert host.placement("vad") is Placement.GPU
    assert [e.detail["verdict"] for e in events.of_type("error")] == ["retry", "retry", "fallback"]
    # The guard sees a calm card for minutes and still leaves the STT on the CPU.
    guard = GuardService(
        ScriptedProbe(lambda t: 1 * GiB, 24 * GiB, clock),
        host,
        GuardPolicy(),
        events,
        clock,
        recovery=tracker,
    )
    guard.run(duration_s=300)
    assert host.placement("stt") is Placement.CPU
    assert not [e for e in events.events if e.action == "restore"]


def test_other_errors_propagate_unchanged():
    _, _, _, _, runner = world()

    def broken(device: str) -> str:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        runner.run("stt", broken)


def calm_guard(clock, host, tracker, events, tuning: Tuning | None = None) -> GuardService:
    return GuardService(
        ScriptedProbe(lambda t: 1 * GiB, 24 * GiB, clock),
        host,
        GuardPolicy(tuning=tuning),
        events,
        clock,
        recovery=tracker,
    )


def test_pinning_ends_after_the_cooldown_with_a_normal_restore():
    tuning = Tuning(fallback_cooldown_s=60)
    clock, host, tracker, events, runner = world(tuning)
    host.inject("stt", ErrorKind.OUT_OF_MEMORY, times=3)
    runner.run("stt", lambda device: "hello")
    fell_back = clock.now()
    guard = calm_guard(clock, host, tracker, events, tuning)
    guard.run(duration_s=30)
    assert guard.pinned_to_cpu("stt")
    assert host.placement("stt") is Placement.CPU
    guard.run(duration_s=270)
    (restore,) = [e for e in events.events if e.action == "restore"]
    assert restore.model == "stt"
    # Not before the cool-down, and then after the room has held for the dwell.
    assert fell_back + 60 + 10 <= restore.t <= fell_back + 60 + 10 + 2.5
    assert host.placement("stt") is Placement.GPU
    assert not guard.pinned_to_cpu("stt")


def test_an_operator_reset_ends_the_pinning_at_once():
    clock, host, tracker, events, runner = world()
    host.inject("stt", ErrorKind.OUT_OF_MEMORY, times=3)
    runner.run("stt", lambda device: "hello")
    guard = calm_guard(clock, host, tracker, events)
    guard.run(duration_s=120)
    assert host.placement("stt") is Placement.CPU
    assert guard.reset("stt")
    assert not guard.reset("nonesuch")
    reset_at = clock.now()
    guard.run(duration_s=60)
    (restore,) = [e for e in events.events if e.action == "restore"]
    assert reset_at + 10 <= restore.t <= reset_at + 10 + 4.5
    assert host.placement("stt") is Placement.GPU
    # The count starts again: the next CUDA error is retried, not given up on.
    host.inject("stt", ErrorKind.CUDA)
    assert runner.run("stt", lambda device: device) == "cuda"
