"""Thresholds, presets, samples and the level arithmetic."""

from __future__ import annotations

import attrs
import pytest

from swictation.domain.model import PRESETS, Level, MemorySample, Thresholds

GiB = 1024.0


def test_presets_have_the_documented_figures():
    assert (PRESETS["default"].warning, PRESETS["default"].critical) == (0.80, 0.90)
    assert (PRESETS["default"].emergency, PRESETS["default"].shutdown) == (0.95, 0.98)
    c = PRESETS["conservative"]
    assert (c.warning, c.critical, c.emergency) == (0.70, 0.80, 0.85)
    a = PRESETS["aggressive"]
    assert (a.warning, a.critical, a.emergency) == (0.85, 0.92, 0.97)


@pytest.mark.parametrize(
    "changes",
    [
        {"warning": 0.9, "critical": 0.9},
        {"critical": 0.96},
        {"shutdown": 0.94},
        {"shutdown": 1.2},
        {"warning": 0.0},
        {"margin": -0.01},
        {"min_interval_s": 5.0},
        {"critical_free_mib": 2048.0},
    ],
)
def test_thresholds_refuse_inconsistent_values(changes):
    with pytest.raises(ValueError):
        attrs.evolve(Thresholds(), **changes)


def test_thresholds_are_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Thresholds().warning = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("usage", "level"),
    [
        (0.5, Level.NORMAL),
        (0.80, Level.WARNING),
        (0.899, Level.WARNING),
        (0.90, Level.CRITICAL),
        (0.95, Level.EMERGENCY),
        (0.999, Level.EMERGENCY),
    ],
)
def test_level_by_percentage_on_a_big_card(usage, level):
    total = 80 * GiB
    assert Thresholds().level_of(usage * total, total) is level


def test_a_free_memory_floor_triggers_first_on_a_small_card():
    # 75 % of a 4 GiB card leaves 1 GiB: below the 1024 MiB WARNING floor.
    total = 4 * GiB
    assert Thresholds().level_of(0.76 * total, total) is Level.WARNING
    # The same 76 % on a 24 GiB card leaves plenty.
    assert Thresholds().level_of(0.76 * 24 * GiB, 24 * GiB) is Level.NORMAL


def test_floors_of_zero_are_off():
    th = attrs.evolve(Thresholds(), warning_free_mib=0, critical_free_mib=0, emergency_free_mib=0)
    assert th.level_of(0.79 * 1024, 1024) is Level.NORMAL


def test_clear_of_a_level_needs_the_margin():
    th = Thresholds()
    total = 80 * GiB
    assert not th.is_clear_of(Level.WARNING, 0.78 * total, total)
    assert th.is_clear_of(Level.WARNING, 0.769 * total, total)


def test_sample_validates_and_derives():
    s = MemorySample(1.0, 6 * GiB, 8 * GiB, own_mib=2 * GiB)
    assert s.usage == 0.75
    assert s.free_mib == 2 * GiB
    assert s.others_mib == 4 * GiB
    with pytest.raises(ValueError):
        MemorySample(0.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        MemorySample(0.0, -1.0, 10.0)
