"""`swictation replay`: what would the guard have done on a recorded trace?"""

from __future__ import annotations

import bisect
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from swictation.adapters.events import JsonlEventSink
from swictation.adapters.traces import Trace, TraceError, parse_size_mib, read_trace
from swictation.application.config import ConfigError, load_guard_config
from swictation.application.container import simulate
from swictation.application.services.simulation import ModelSpec, SimulationReport
from swictation.domain.model import Level

PROGRESS_FROM_ROWS = 200_000


class UsageError(ValueError):
    """A bad argument, worded for the user in one line."""


@attrs.frozen
class ReplayOptions:
    trace: str
    format: str = "auto"
    gpu: str | None = None
    total_mib: float | None = None
    columns: tuple[str, ...] | None = None
    models: tuple[str, ...] = ()
    policy: str = "default"
    config: str | None = None
    events: str | None = None
    plot: str | None = None
    json: bool = False


def parse_models(specs: Sequence[str]) -> list[ModelSpec]:
    models: list[ModelSpec] = []
    for spec in specs:
        name, sep, size = spec.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--model {spec}: expected NAME=SIZE, e.g. stt=3600MiB")
        try:
            mib = parse_size_mib(size)
        except ValueError as error:
            raise UsageError(f"--model {spec}: {error}") from None
        if not mib > 0:
            raise UsageError(f"--model {spec}: size must be > 0")
        if any(m.name == name.strip() for m in models):
            raise UsageError(f"--model {spec}: {name.strip()!r} is given twice")
        models.append(ModelSpec(name.strip(), mib))
    return models


def busy_at(spans: Sequence[tuple[float, float]]) -> Callable[[float], bool]:
    """Whether speech was in flight at `t`, from merged, ordered (start, end) spans."""
    starts = [start for start, _ in spans]

    def busy(t: float) -> bool:
        i = bisect.bisect_right(starts, t) - 1
        return i >= 0 and t < spans[i][1]

    return busy


def _progress(
    rows: int, label: str, err: TextIO
) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """A one-line progress bar on a terminal (never when stderr is piped)."""
    if rows < PROGRESS_FROM_ROWS or not err.isatty():
        return None, lambda: None
    shown = [-1.0]

    def advance(i: int) -> None:
        now = time.monotonic()
        if now - shown[0] < 0.2:
            return
        shown[0] = now
        filled = int(30 * i / rows)
        err.write(
            f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {i / rows:4.0%} "
            f"({i:,} of {rows:,} rows)"
        )
        err.flush()

    def close() -> None:
        if shown[0] >= 0:
            err.write("\r\x1b[2K")
            err.flush()

    advance(0)
    return advance, close


def replay(options: ReplayOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    # The events file and the summary tell what the guard did; its live log would repeat it.
    guard_log = logging.getLogger("swictation.guard")
    if guard_log.getEffectiveLevel() >= logging.WARNING:
        guard_log.setLevel(logging.ERROR)
    config = load_guard_config(options.config)
    models = parse_models(options.models)
    trace = read_trace(
        options.trace,
        options.format,
        options.gpu,
        options.total_mib,
        options.columns,
        notice=lambda text: print(f"swictation replay: note: {text}", file=err),
    )
    if not models and trace.models:
        models = [ModelSpec(name, size) for name, size in trace.models]
    base = trace.used_mib
    if trace.own_mib is not None and models:
        # The recording holds our own models already; replay moves them itself.
        base = [max(0.0, u - o) for u, o in zip(trace.used_mib, trace.own_mib, strict=True)]
    names = ["default", "legacy"] if options.policy == "both" else [options.policy]
    reports: list[SimulationReport] = []
    for index, name in enumerate(names):
        sink = JsonlEventSink(options.events) if options.events and index == 0 else None
        advance, close = _progress(len(trace), f"replay ({name})", err)
        try:
            reports.append(
                simulate(
                    trace.times,
                    base,
                    trace.total_mib,
                    config.make_policy(name),
                    models,
                    tuning=config.tuning,
                    busy=busy_at(trace.busy) if trace.busy else None,
                    events=sink,
                    progress=advance,
                    series_points=4000 if options.plot else 0,
                )
            )
        finally:
            close()
            if sink is not None:
                sink.close()
    if options.plot:
        from swictation.application.entrypoints.plot import plot_replay

        plot_replay(options.plot, trace, reports, config)
    if options.json:
        body: dict[str, Any] = dict(reports[0].to_json())
        body.update(
            trace=trace.path,
            gpu=trace.gpu,
            total_mib=trace.total_mib[0],
            models={m.name: round(m.size_mib, 1) for m in models},
        )
        if len(reports) > 1:
            body["compare"] = {r.policy: r.to_json() for r in reports[1:]}
        json.dump(body, out, sort_keys=False)
        out.write("\n")
    else:
        out.write(summary(trace, models, reports))
    return 0


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def summary(trace: Trace, models: Sequence[ModelSpec], reports: Sequence[SimulationReport]) -> str:
    lines = [
        f"{trace.path}: GPU {trace.gpu}, {trace.total_mib[0]:,.0f} MiB, "
        f"{len(trace):,} samples over {_duration(trace.duration_s)}",
        "models: " + (", ".join(f"{m.name} {m.size_mib:,.0f} MiB" for m in models) or "none"),
        "",
    ]
    width = 17
    header = f"{'':<22}" + "".join(f"{r.policy:>{width}}" for r in reports)
    lines.append(header)
    for level in Level:
        cells = []
        for r in reports:
            seconds = r.levels[level.name]
            share = seconds / r.duration_s if r.duration_s else 0.0
            cells.append(f"{_duration(seconds)} {share:6.1%}")
        lines.append(f"  time in {level.name:<13}" + "".join(f"{c:>{width}}" for c in cells))
    rows: list[tuple[str, Callable[[SimulationReport], str]]] = [
        ("level changes", lambda r: str(r.transitions)),
        ("offloads", lambda r: str(r.offloads)),
        ("restores", lambda r: str(r.restores)),
        ("would-be OOMs", lambda r: str(r.oom_events)),
        ("first OOM at", lambda r: "-" if r.first_oom_s is None else _duration(r.first_oom_s)),
        ("peak usage", lambda r: f"{r.peak_usage:.1%}"),
        ("shut down", lambda r: "yes" if r.shutdown else "no"),
    ]
    for label, cell in rows:
        lines.append(f"  {label:<20}" + "".join(f"{cell(r):>{width}}" for r in reports))
    return "\n".join(lines) + "\n"


def replay_main(options: ReplayOptions, out: TextIO, err: TextIO) -> int:
    """Runs replay, turning every user-facing problem into one line and exit status 2."""
    try:
        return replay(options, out, err)
    except (TraceError, ConfigError, UsageError) as error:
        print(f"swictation replay: error: {error}", file=err)
        return 2
    except ImportError as error:
        if options.plot and "matplotlib" in str(error):
            print(
                "swictation replay: error: --plot needs matplotlib: pip install 'swictation[plot]'",
                file=err,
            )
            return 2
        raise
    except OSError as error:
        print(
            f"swictation replay: error: {error.filename or Path(options.trace)}: "
            f"{error.strerror or error}",
            file=err,
        )
        return 2
