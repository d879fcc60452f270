"""The pressure state machine on transitions."""

from __future__ import annotations

from swictation.domain.machine import PressureMachine
from swictation.domain.model import Level


def test_starts_normal_and_moves_to_any_live_level():
    m = PressureMachine()
    assert m.level is Level.NORMAL
    assert m.move_to(Level.EMERGENCY)
    assert m.level is Level.EMERGENCY
    assert m.move_to(Level.WARNING)
    assert m.level is Level.WARNING


def test_staying_put_fires_nothing():
    m = PressureMachine()
    assert not m.move_to(Level.NORMAL)


def test_shutdown_is_final():
    m = PressureMachine()
    assert m.move_to(Level.SHUTDOWN)
    for level in Level:
        assert not m.move_to(level)
        assert m.level is Level.SHUTDOWN


def test_no_unguarded_auto_transitions():
    m = PressureMachine()
    assert not hasattr(m, "to_SHUTDOWN")
    assert not hasattr(m, "to_NORMAL")


def test_machines_are_independent():
    a, b = PressureMachine(), PressureMachine()
    a.move_to(Level.CRITICAL)
    assert b.level is Level.NORMAL
