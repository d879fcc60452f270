"""The replay plot: a readable time axis, threshold labels apart, a legend for the levels."""

from __future__ import annotations

import itertools

import pytest

from swictation.application.entrypoints.plot import spread, time_unit

GiB = 1024.0


def test_the_time_axis_is_in_seconds_minutes_or_hours():
    assert time_unit(120) == (1.0, "seconds")
    assert time_unit(30 * 60) == (60.0, "minutes")
    assert time_unit(24 * 3600) == (3600.0, "hours")


def test_close_labels_are_spread_apart_and_far_ones_stay():
    assert spread([80, 90, 95, 98], 3.5) == [80, 90, 95, 98.5]
    assert spread([98, 95], 3.5) == [98.5, 95]
    assert spread([70, 80], 3.5) == [70, 80]


def test_the_figure_has_a_legend_for_the_levels_and_hours_on_a_long_trace(tmp_path):
    pytest.importorskip("matplotlib")
    from swictation.adapters.traces import read_trace
    from swictation.application.config import GuardConfig
    from swictation.application.container import simulate
    from swictation.application.entrypoints.plot import draw
    from swictation.application.services.simulation import ModelSpec

    path = tmp_path / "day.csv"
    lines = ["timestamp, memory.used [MiB], memory.total [MiB]"]
    lines += [f"{t}, {7000 if 3600 < t < 7200 else 1000}, 8192" for t in range(0, 6 * 3600, 10)]
    path.write_text("\n".join(lines) + "\n")
    trace = read_trace(path)
    config = GuardConfig()
    report = simulate(
        trace.times,
        trace.used_mib,
        trace.total_mib,
        config,
        [ModelSpec("stt", 1500)],
        series_points=400,
    )
    fig = draw(trace, [report], config)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"NORMAL", "WARNING", "CRITICAL", "EMERGENCY", "SHUTDOWN"} <= set(legend)
    assert any(text.startswith("offload") for text in legend)
    assert ax.get_xlabel().startswith("hours since the start")
    assert ax.get_xlim()[1] <= 6.5
    labels = [t for t in ax.texts if "%" in t.get_text()]
    assert len(labels) == 4
    heights = sorted(t.get_position()[1] for t in labels)
    assert all(b - a >= 4.5 - 1e-9 for a, b in itertools.pairwise(heights))
