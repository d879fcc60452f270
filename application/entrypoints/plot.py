"""The replay plot: usage over time, thresholds, level bands and markers, one panel a policy."""

from __future__ import annotations

from collections.abc import Sequence

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


def plot_replay(
    path: str, trace: Trace, reports: Sequence[SimulationReport], config: GuardConfig
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(reports), 1, figsize=(11, 3.6 * len(reports)), sharex=True, squeeze=False
    )
    th = config.thresholds
    for ax, report in zip(axes[:, 0], reports, strict=True):
        xs = [p[0] for p in report.series]
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
        for value, name in marks:
            ax.axhline(value * 100, color="#757575", lw=0.6, ls="--")
            ax.text(xs[-1] if xs else 0, value * 100, f" {name}", va="center", fontsize=7)
        for kind, style in (
            ("offload", ("v", "#c62828")),
            ("restore", ("^", "#2e7d32")),
            ("oom", ("x", "#000000")),
        ):
            pts = [m[0] for m in report.marks if m[1] == kind]
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
        ax.legend(loc="lower left", fontsize=8)
    axes[-1, 0].set_xlabel(f"seconds since the start of {trace.path}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
