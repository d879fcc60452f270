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
    assert tracker.pinned_to_cpu("stt", 4)
    assert not tracker.pinned_to_cpu("vad", 4)


def test_non_cuda_errors_and_errors_after_fallback_are_not_retried():
    tracker = RecoveryTracker(Tuning(max_failures=1))
    assert tracker.failure("stt", ErrorKind.OTHER, 0).verdict is Verdict.GIVE_UP
    assert tracker.failure("stt", ErrorKind.CUDA, 0).verdict is Verdict.FALLBACK
    assert tracker.failure("stt", ErrorKind.CUDA, 1).verdict is Verdict.GIVE_UP


def test_fallback_lasts_until_reset_or_cooldown():
    tracker = RecoveryTracker(Tuning(max_failures=1, fallback_cooldown_s=60))
    tracker.failure("stt", ErrorKind.OUT_OF_MEMORY, 100)
    assert tracker.pinned_to_cpu("stt", 159)
    assert not tracker.pinned_to_cpu("stt", 160)
    forever = RecoveryTracker(Tuning(max_failures=1))
    forever.failure("stt", ErrorKind.OUT_OF_MEMORY, 0)
    assert forever.pinned_to_cpu("stt", 1e9)
    forever.reset("stt")
    assert not forever.pinned_to_cpu("stt", 1e9)


def world():
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("vad", 2), ModelState("stt", 1500)])
    tracker = RecoveryTracker()
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
