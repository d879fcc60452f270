"""When the daemon gives up the GPU and when it takes it back: the GPU-mode machine, on
times given as inputs (a fake clock), no process and no card."""

from __future__ import annotations

import pytest

from swictation.domain.gpu_mode import (
    GpuMode,
    GpuModeMachine,
    Tenure,
    room_for_models,
)
from swictation.domain.model import MemorySample, ModelState, Placement, Thresholds

CARD = 8192.0
MODELS = (ModelState("vad", 2.0, Placement.CPU), ModelState("stt", 1500.0, Placement.CPU))


def on_cpu(since: float = 0.0, **kw) -> GpuModeMachine:
    return GpuModeMachine(120.0, Tenure(GpuMode.ON_CPU, since, "full", **kw))


def test_a_shutdown_on_the_gpu_is_one_decision_to_leave():
    machine = GpuModeMachine(120.0)
    assert machine.on_gpu
    change = machine.shutdown(10.0, "usage 99% with nothing left to offload")
    assert change is not None and change.to_cpu
    assert change.tenure == Tenure(GpuMode.ON_CPU, 10.0, "usage 99% with nothing left to offload")
    assert machine.mode is GpuMode.RELEASING
    assert machine.shutdown(11.0, "again") is None  # decided once


def test_on_the_cpu_a_shutdown_changes_nothing():
    machine = on_cpu()
    assert machine.shutdown(5.0, "full") is None
    assert machine.mode is GpuMode.ON_CPU
    assert not machine.on_gpu


def test_the_gpu_is_taken_back_once_room_has_held_for_the_return_wait():
    machine = on_cpu()
    assert machine.watch(True, 100.0) is None
    assert machine.watch(True, 219.9) is None
    change = machine.watch(True, 220.0)
    assert change is not None and not change.to_cpu
    assert change.tenure.mode is GpuMode.ON_GPU
    assert change.tenure.returned_t == 220.0
    assert "120 s" in change.tenure.reason
    assert machine.mode is GpuMode.RETURNING
    assert machine.watch(True, 230.0) is None  # decided once


def test_room_must_hold_without_a_break():
    machine = on_cpu()
    machine.watch(True, 0.0)
    machine.watch(False, 119.0)  # the game loads its next level
    assert machine.watch(True, 121.0) is None
    assert machine.watch(True, 240.0) is None
    assert machine.watch(True, 241.0) is not None


def test_room_lost_before_the_gap_cancels_the_return():
    machine = on_cpu()
    machine.watch(True, 0.0)
    assert machine.watch(True, 120.0) is not None
    assert machine.watch(False, 125.0) is None
    assert machine.mode is GpuMode.ON_CPU
    assert machine.change is None
    assert machine.watch(True, 130.0) is None
    assert machine.watch(True, 250.0) is not None  # a full wait again


def test_a_short_stint_on_the_gpu_doubles_the_next_wait_and_a_long_one_forgets():
    back = GpuModeMachine(120.0, Tenure(GpuMode.ON_GPU, 1000.0, "room", 0, returned_t=1000.0))
    change = back.shutdown(1300.0, "full again")  # 5 minutes on the GPU: a short stint
    assert change is not None and change.tenure.backoff_steps == 1
    cpu = GpuModeMachine(120.0, change.tenure)
    assert cpu.return_wait_s() == 240.0
    cpu.watch(True, 1400.0)
    assert cpu.watch(True, 1520.0) is None
    returned = cpu.watch(True, 1640.0)
    assert returned is not None and returned.tenure.backoff_steps == 1
    settled = GpuModeMachine(120.0, returned.tenure)
    later = settled.shutdown(1640.0 + 10 * 120.0 + 1, "full, much later")
    assert later is not None and later.tenure.backoff_steps == 0


def test_the_wait_stops_doubling():
    assert on_cpu(backoff_steps=30).return_wait_s() == 16 * 120.0


def test_a_process_starts_on_the_gpu_or_on_the_cpu():
    with pytest.raises(ValueError, match="starts on the GPU or on the CPU"):
        GpuModeMachine(120.0, Tenure(GpuMode.RETURNING))


def test_no_unguarded_auto_transitions():
    machine = on_cpu()
    assert not hasattr(machine, "to_ON_GPU")


@pytest.mark.parametrize(
    ("others_mib", "room"),
    [
        (8100.0, False),  # a game holds 99 %
        (7000.0, False),  # 1.5 GiB models + context would cross the offload point
        (5000.0, True),
    ],
)
def test_room_counts_the_models_their_working_memory_and_the_context(others_mib, room):
    sample = MemorySample(0.0, others_mib, CARD, own_mib=0.0)
    assert room_for_models(sample, MODELS, 300.0, Thresholds()) is room


def test_working_memory_can_take_the_room_away():
    sample = MemorySample(0.0, 5000.0, CARD, own_mib=0.0)
    assert room_for_models(sample, MODELS, 300.0, Thresholds())
    assert not room_for_models(sample, MODELS, 300.0, Thresholds(), {"stt": 1200.0})


def test_our_own_share_of_the_reading_is_not_counted_twice():
    # Read while still on the GPU (own 1800 MiB of 6800): the others hold 5000.
    sample = MemorySample(0.0, 6800.0, CARD, own_mib=1800.0)
    assert room_for_models(sample, MODELS, 300.0, Thresholds())


def test_off_the_gpu_the_policy_only_watches_a_full_card():
    from swictation.domain.model import Level, Observation, Tuning
    from swictation.domain.policy import GuardPolicy

    tuning = Tuning(shutdown_grace_s=1.0)
    on_gpu, off_gpu = GuardPolicy(tuning=tuning), GuardPolicy(tuning=tuning, on_gpu=False)
    for t in range(30):
        full = Observation(MemorySample(float(t), 8150.0, CARD, own_mib=0.0), MODELS)
        gpu_step, cpu_step = on_gpu.observe(full), off_gpu.observe(full)
        assert cpu_step.actions == ()  # no cleanup, no offload, no SHUTDOWN
        assert cpu_step.next_poll_s == Thresholds().interval_s  # calm: nothing to protect
    assert gpu_step.level is Level.SHUTDOWN
    assert cpu_step.level is Level.EMERGENCY  # the card is still shown as it is


def test_the_mode_is_the_machines_own_state_and_nothing_beside_it():
    """One source of truth: whatever puts the `transitions` machine in a state (here its
    own `set_state`, which fires no callback) is what `mode` and `on_gpu` say."""
    machine = GpuModeMachine(120.0)
    machine._machine.set_state(GpuMode.ON_CPU.value)
    assert machine.mode is GpuMode.ON_CPU
    assert not machine.on_gpu
    assert not any(isinstance(v, GpuMode) for v in vars(machine).values())
