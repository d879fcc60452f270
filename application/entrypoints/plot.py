"""The replay plot: usage over time, thresholds, level bands and markers, one panel a policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swictation.adapters.traces import Trace
from swictation.application.config import GuardConfig
from swictation.application.services.simulation import SimulationReport
from swictation.domain.model import Level

COLOURS = {
    Level.NORMAL: "#e8f5e9",
    Level.WARNING: "#fff8e1",
    Level.CRITICAL: "#ffe0b2",
    Level.EMERGENCY: "#ffcdd2",
    Level.SHUTDOWN: "#cfd8dc",
}


def time_unit(duration_s: float) -> tuple[float, str]:
    """(divisor, name) for a time axis a person reads easily: seconds, minutes or hours."""
    if duration_s >= 3 * 3600:
        return 3600.0, "hours"
    if duration_s >= 10 * 60:
        return 60.0, "minutes"
    return 1.0, "seconds"


def spread(values: Sequence[float], gap: float) -> list[float]:
    """Label positions near `values` (in order) that stay at least `gap` apart."""
    placed: list[float] = []
    for value in sorted(values):
        placed.append(value if not placed else max(value, placed[-1] + gap))
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    for rank, index in enumerate(order):
        out[index] = placed[rank]
    return out


def plot_replay(
    path: str, trace: Trace, reports: Sequence[SimulationReport], config: GuardConfig
) -> None:
    import matplotlib.pyplot as plt

    fig = draw(trace, reports, config)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(trace: Trace, reports: Sequence[SimulationReport], config: GuardConfig) -> Any:
    """The figure: one panel a policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(reports), 1, figsize=(11, 3.6 * len(reports)), sharex=True, squeeze=False
    )
    from matplotlib.patches import Patch

    th = config.thresholds
    scale, unit = time_unit(trace.duration_s)
    for ax, report in zip(axes[:, 0], reports, strict=True):
        xs = [p[0] / scale for p in report.series]
        ys = [p[1] * 100 for p in report.series]
        levels = [p[2] for p in report.series]
        start = 0
        for i in range(1, len(xs) + 1):
            if i == len(xs) or levels[i] != levels[start]:
                end = xs[i] if i < len(xs) else xs[-1]
                ax.axvspan(xs[start], end, color=COLOURS[Level(levels[start])], lw=0)
                start = i
        ax.plot(xs, ys, color="#1a237e", lw=1.0, label="simulated usage")
        if report.policy == "default":
            marks = [
                (th.warning, "WARNING"),
                (th.critical, "CRITICAL"),
                (th.emergency, "EMERGENCY"),
                (th.shutdown, "SHUTDOWN"),
            ]
        else:
            marks = [(0.80, "WARNING"), (0.90, "CRITICAL"), (0.95, "EMERGENCY"), (0.98, "SHUTDOWN")]
        heights = spread([value * 100 for value, _ in marks], gap=4.5)
        for (value, name), height in zip(marks, heights, strict=True):
            ax.axhline(value * 100, color="#757575", lw=0.6, ls="--")
            # Outside the plot on the right, nudged apart where thresholds lie close.
            ax.annotate(
                f"{name} {value:.0%}",
                xy=(1.0, value * 100),
                xycoords=("axes fraction", "data"),
                xytext=(1.005, height),
                textcoords=("axes fraction", "data"),
                va="center",
                fontsize=7,
                annotation_clip=False,
            )
        for kind, style in (
            ("offload", ("v", "#c62828")),
            ("restore", ("^", "#2e7d32")),
            ("oom", ("x", "#000000")),
        ):
            pts = [m[0] / scale for m in report.marks if m[1] == kind]
            if pts:
                ax.scatter(
                    pts,
                    [101.5] * len(pts),
                    marker=style[0],
                    color=style[1],
                    s=28,
                    label=f"{kind} ({len(pts)})",
                    zorder=3,
                )
        ax.set_ylim(0, 105)
        ax.set_ylabel("GPU memory used (%)")
        ax.set_title(
            f"{report.policy} policy: {report.offloads} offloads, {report.restores} restores, "
            f"{report.oom_events} would-be OOMs, peak {report.peak_usage:.1%}",
            fontsize=10,
        )
        bands = [Patch(color=COLOURS[level], label=level.name) for level in Level]
        handles, _labels = ax.get_legend_handles_labels()
        ax.legend(
            handles=[*handles, *bands],
            loc="upper left",
            bbox_to_anchor=(1.15, 1.0),
            fontsize=7,
            title="usage, moves and levels",
            title_fontsize=7,
        )
    axes[-1, 0].set_xlabel(f"{unit} since the start of {trace.path}")
    fig.tight_layout()
    return fig
