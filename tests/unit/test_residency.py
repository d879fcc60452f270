"""One model's residency machine on its own: moves, settling, back-off and pinning."""

from __future__ import annotations

from swictation.domain.model import Placement, Tuning
from swictation.domain.residency import ModelResidency, Residency

TUNING = Tuning(fallback_cooldown_s=60, settle_s=30, restore_backoff_s=10)


def machine(initial: Residency = Residency.ON_GPU) -> ModelResidency:
    return ModelResidency("stt", TUNING, dwell_s=10, initial=initial)


def test_an_offload_and_a_restore_go_through_moving_states():
    m = machine()
    assert m.fire("offload", 0.0)
    assert m.residency is Residency.OFFLOADING
    assert not m.fire("offload", 0.5)  # one move at a time
    assert not m.fire("restore", 0.5)
    m.follow(Placement.TO_CPU, 1.0)
    assert m.residency is Residency.OFFLOADING
    m.follow(Placement.CPU, 2.0)
    assert m.residency is Residency.ON_CPU
    m.watch_room(True, 3.0)
    assert not m.fire("restore", 12.0)  # room held 9 s: not yet the dwell
    assert m.fire("restore", 13.0)
    m.follow(Placement.GPU, 15.0)
    assert m.residency is Residency.SETTLING
    m.watch(False, 44.0)
    assert m.residency is Residency.SETTLING
    m.watch(False, 45.0)
    assert m.residency is Residency.ON_GPU


def test_pressure_soon_after_a_restore_doubles_the_wait():
    m = machine(Residency.ON_CPU)
    waits = []
    t = 0.0
    for _ in range(3):
        m.watch_room(True, t)
        t += 10
        while not m.fire("restore", t):
            t += 1
            m.watch_room(True, t)
        m.follow(Placement.GPU, t)
        m.watch(True, t + 1)  # pressure came back
        waits.append(m.backoff_until - (t + 1))
        m.fire("offload", t + 1)
        m.follow(Placement.CPU, t + 2)
        t += 2
    assert waits == [10, 20, 40]


def test_a_failed_move_returns_to_where_the_model_is():
    m = machine()
    m.fire("offload", 0.0)
    m.follow(Placement.GPU, 1.0)
    assert m.residency is Residency.ON_GPU


def test_pinned_ends_only_after_the_cooldown_or_a_reset():
    m = machine()
    m.fire("pin", 100.0)
    assert m.residency is Residency.PINNED_CPU
    m.follow(Placement.CPU, 101.0)
    m.watch_room(True, 101.0)
    assert not m.fire("restore", 150.0)
    m.watch(False, 159.0)
    assert m.residency is Residency.PINNED_CPU
    m.watch(False, 160.0)
    assert m.residency is Residency.ON_CPU
    other = machine()
    other.fire("pin", 0.0)
    assert other.fire("reset", 1.0)
    assert other.residency is Residency.ON_CPU


def test_a_model_loaded_on_the_cpu_is_not_the_guards_to_restore():
    m = machine(Residency.CPU_ONLY)
    m.watch_room(True, 0.0)
    assert not m.fire("restore", 100.0)
    assert not hasattr(m, "to_ON_GPU")
