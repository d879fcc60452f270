"""The pressure state machine on transitions."""

from __future__ import annotations

from swictation.domain.levels import level_table
from swictation.domain.machine import PressureMachine
from swictation.domain.model import ActionKind, Level, Tuning


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


def test_named_triggers_rise_at_once_and_step_down_one_level_at_a_time():
    m = PressureMachine()
    m.escalate(target=Level.CRITICAL)
    assert m.level is Level.CRITICAL
    m.relax()
    assert m.level is Level.WARNING
    m.relax()
    m.relax()  # NORMAL has nowhere lower to go: nothing happens
    assert m.level is Level.NORMAL


def test_shutdown_is_reached_only_from_emergency():
    m = PressureMachine()
    m.give_up()
    assert m.level is Level.NORMAL
    m.escalate(target=Level.EMERGENCY)
    m.give_up()
    assert m.level is Level.SHUTDOWN


def test_the_level_table_drives_cleanup_on_entry_and_on_cadence():
    m = PressureMachine(level_table(Tuning(reapply_s=10)))
    assert m.due_cleanup(0.0) is None  # NORMAL does nothing
    m.move_to(Level.WARNING)
    first = m.due_cleanup(1.0)
    assert first is not None and first.kind is ActionKind.COLLECT_GARBAGE
    assert first.reason == "entered WARNING"
    assert m.due_cleanup(5.0) is None
    again = m.due_cleanup(11.0)
    assert again is not None and again.reason == "still WARNING"
    m.move_to(Level.EMERGENCY)
    entered = m.due_cleanup(12.0)
    assert entered is not None and entered.kind is ActionKind.AGGRESSIVE_CLEANUP
    assert m.rule.offload_to_target and not m.rule.restores


def test_the_table_says_what_each_level_allows():
    table = level_table()
    assert [lv.name for lv in Level if table[lv].restores] == ["NORMAL", "WARNING", "CRITICAL"]
    assert [lv.name for lv in Level if table[lv].offload_to_target] == ["EMERGENCY"]
    assert table[Level.EMERGENCY].poll_ceiling_s is not None
    assert table[Level.NORMAL].reapply_s is None


def _cleanup_times(m, start, until, freed_mib=0.0, usage=None):
    """Steps the machine once a second; each cleanup reports `freed_mib` before the next."""
    times = []
    for step in range(int(start), int(until) + 1):
        t = float(step)
        if m.due_cleanup(t, None if usage is None else usage(t), rise=0.03) is not None:
            times.append(t)
            m.cleaned(freed_mib)
    return times


def test_a_cleanup_that_freed_nothing_backs_off_up_to_the_cap():
    m = PressureMachine(level_table(Tuning(reapply_s=10, reapply_max_s=80)))
    m.move_to(Level.WARNING)
    assert _cleanup_times(m, 0, 400) == [0, 20, 60, 140, 220, 300, 380]


def test_a_cleanup_that_freed_memory_keeps_the_cadence():
    m = PressureMachine(level_table(Tuning(reapply_s=10, reapply_max_s=80)))
    m.move_to(Level.CRITICAL)
    assert _cleanup_times(m, 0, 50, freed_mib=12.0) == [0, 10, 20, 30, 40, 50]
    # Once it frees nothing again, it backs off from the cadence.
    assert _cleanup_times(m, 51, 130)[:3] == [60, 80, 120]  # 50 freed memory: 10 s


def test_usage_rising_by_the_margin_brings_the_cadence_back():
    m = PressureMachine(level_table(Tuning(reapply_s=10, reapply_max_s=300)))
    m.move_to(Level.WARNING)
    assert _cleanup_times(m, 0, 100, usage=lambda t: 0.82) == [0, 20, 60]
    # Usage 0.86 from t=101: more than 0.03 above the last cleanup's 0.82.
    times = _cleanup_times(m, 101, 160, usage=lambda t: 0.82 if t < 101 else 0.86)
    assert times[:2] == [101, 121]  # due again at once, then backing off anew


def test_a_level_change_brings_the_cadence_back():
    m = PressureMachine(level_table(Tuning(reapply_s=10, reapply_max_s=300)))
    m.move_to(Level.CRITICAL)
    assert _cleanup_times(m, 0, 100) == [0, 20, 60]
    m.move_to(Level.WARNING)  # stepping down: no cleanup on entry, the base cadence again
    later = _cleanup_times(m, 101, 200)
    assert later[:2] == [101, 121]
