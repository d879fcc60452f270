"""`swictation replay`: what would the guard have done on a recorded trace?"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import os
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from swictation.adapters.events import JsonlEventSink
from swictation.adapters.tenants import SimulatedTenant
from swictation.adapters.traces import Trace, TraceError, parse_size_mib, read_trace
from swictation.application.config import (
    ENV_NOT_SETTINGS,
    ENV_PREFIX,
    ConfigError,
    GuardConfig,
    PolicyName,
    default_config_path,
    load_settings,
)
from swictation.application.container import simulate
from swictation.application.services.simulation import ModelSpec, SimulationReport
from swictation.domain.model import Event, Level
from swictation.domain.segmenter import VadSettings
from swictation.ports import EventSink, SinkHealth
from swictation.ports.tenants import TENANT_KINDS

PROGRESS_FROM_ROWS = 200_000


class UsageError(ValueError):
    """A bad argument, worded for the user in one line."""


@attrs.frozen
class ReplayOptions:
    trace: str
    format: str = "auto"
    gpu: str | None = None
    total_mib: str | float | None = None
    columns: tuple[str, ...] | None = None
    models: tuple[str, ...] = ()
    policy: str | None = None  # None: the configured guard.policy
    config: str | None = None
    events: str | None = None
    plot: str | None = None
    json: bool = False
    advise: bool = False
    tenants: tuple[str, ...] = ()


def parse_models(specs: Sequence[str]) -> list[ModelSpec]:
    """NAME=SIZE, or NAME=SIZE+WORKING with the working memory it needs while it runs."""
    models: list[ModelSpec] = []
    for spec in specs:
        name, sep, size = spec.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--model {spec}: expected NAME=SIZE, e.g. stt=3600MiB")
        weights, plus, working = size.partition("+")
        try:
            mib = parse_size_mib(weights)
            work = parse_size_mib(working) if plus else 0.0
        except ValueError as error:
            raise UsageError(f"--model {spec}: {error}") from None
        if not mib > 0 or not math.isfinite(mib) or not math.isfinite(work):
            raise UsageError(f"--model {spec}: size must be a finite number > 0")
        if any(m.name == name.strip() for m in models):
            raise UsageError(f"--model {spec}: {name.strip()!r} is given twice")
        models.append(ModelSpec(name.strip(), mib, working_mib=work))
    return models


def parse_tenants(specs: Sequence[str]) -> list[tuple[str, float]]:
    """`--tenant KIND=SIZE` -> (kind, MiB): a co-tenant that frees SIZE when asked."""
    tenants: list[tuple[str, float]] = []
    for spec in specs:
        kind, sep, size = spec.partition("=")
        kind = kind.strip()
        if not sep or kind not in TENANT_KINDS:
            raise UsageError(
                f"--tenant {spec}: expected KIND=SIZE with a KIND of {', '.join(TENANT_KINDS)}, "
                "e.g. ollama=6GiB"
            )
        try:
            mib = parse_size_mib(size)
        except ValueError as error:
            raise UsageError(f"--tenant {spec}: {error}") from None
        if not mib > 0:
            raise UsageError(f"--tenant {spec}: size must be > 0")
        tenants.append((kind, mib))
    return tenants


def parse_total(value: str | float | None) -> float | None:
    """--total-mib: a size with units as --model takes them (a bare number is MiB)."""
    if value is None:
        return None
    try:
        mib = parse_size_mib(value) if isinstance(value, str) else float(value)
    except ValueError as error:
        raise UsageError(f"--total-mib {value}: {error}") from None
    if not mib > 0 or not math.isfinite(mib):
        raise UsageError(f"--total-mib {value}: must be a finite size > 0")
    return mib


class _Tagged(EventSink):
    """Adds the policy's name to each event, so that `--policy both` writes one file."""

    def __init__(self, inner: EventSink, policy: str) -> None:
        self._inner = inner
        self._policy = policy

    def emit(self, event: Event) -> None:
        self._inner.emit(attrs.evolve(event, detail={**event.detail, "policy": self._policy}))

    def health(self) -> SinkHealth:
        return self._inner.health()

    def close(self) -> None:
        return None


@attrs.frozen
class Used:
    """The configuration replay ran with, and where it came from."""

    config: GuardConfig
    sources: tuple[str, ...]
    # How the daemon's VAD held utterances: an older recording's busy spans follow it.
    vad: VadSettings = attrs.field(factory=VadSettings)

    def describe(self, policies: Sequence[str]) -> str:
        th = self.config.thresholds
        return (
            f"settings: policy {' and '.join(policies)}; thresholds "
            f"{th.warning:.0%}/{th.critical:.0%}/{th.emergency:.0%}/{th.shutdown:.0%}, "
            f"margin {th.margin * 100:g} points, dwell {th.dwell_s:g}s "
            f"(from {', '.join(self.sources) or 'the defaults'})"
        )

    def to_json(self, policies: Sequence[str]) -> dict[str, Any]:
        th = self.config.thresholds
        return {
            "policy": list(policies),
            "thresholds": {
                "warning": th.warning,
                "critical": th.critical,
                "emergency": th.emergency,
                "shutdown": th.shutdown,
                "margin": th.margin,
                "dwell_s": th.dwell_s,
            },
            "sources": list(self.sources),
        }


def load_used(config: str | None, environ: Mapping[str, str]) -> Used:
    """The daemon's configuration as the daemon reads it: the XDG file (or --config), then
    SWICTATION_* variables."""
    path = config if config is not None else default_config_path(environ)
    settings = load_settings(config, environ)
    sources = [path] if path else []
    names = sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in ENV_NOT_SETTINGS)
    sources += names
    return Used(settings.guard_config, tuple(sources), settings.vad)


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


@contextlib.contextmanager
def _quiet_live_logs() -> Iterator[None]:
    """The events file and the summary tell what the guard did; its live log would repeat it.
    The levels are the process's: they are put back when replay ends, however it ends."""
    quieted: list[tuple[logging.Logger, int]] = []
    try:
        for name in ("swictation.guard", "swictation.tenants"):
            live = logging.getLogger(name)
            if live.getEffectiveLevel() >= logging.WARNING:
                quieted.append((live, live.level))
                live.setLevel(logging.ERROR)
        yield
    finally:
        for live, level in quieted:
            live.setLevel(level)


def replay(
    options: ReplayOptions,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    environ: Mapping[str, str] | None = None,
) -> int:
    with _quiet_live_logs():
        return _replay(options, out, err, environ)


def _replay(
    options: ReplayOptions, out: TextIO, err: TextIO, environ: Mapping[str, str] | None
) -> int:
    used = load_used(options.config, os.environ if environ is None else environ)
    config = used.config
    models = parse_models(options.models)
    tenants = parse_tenants(options.tenants)
    trace = read_trace(
        options.trace,
        options.format,
        options.gpu,
        parse_total(options.total_mib),
        options.columns,
        notice=lambda text: print(f"swictation replay: note: {text}", file=err),
        vad=used.vad,
        warn=lambda text: print(f"swictation replay: warning: {text}", file=err),
    )
    if not models and trace.models:
        models = [ModelSpec(name, size) for name, size in trace.models]
    base: Sequence[float] = trace.used_mib
    if trace.own_mib is not None and models:
        # The recording holds our own models already; replay moves them itself.
        base = array(
            "f", (max(0.0, u - o) for u, o in zip(trace.used_mib, trace.own_mib, strict=True))
        )
    busy = busy_at(trace.busy) if trace.busy else None
    if options.advise:
        return _advise(options, trace, base, models, used, busy, out)
    chosen = options.policy or str(config.policy)
    names = ["default", "legacy"] if chosen == "both" else [chosen]
    reports: list[SimulationReport] = []
    sink = _events_file(options.events)
    try:
        for name in names:
            advance, close = _progress(len(trace), f"replay ({name})", err)
            try:
                reports.append(
                    simulate(
                        trace.times,
                        base,
                        trace.total_mib,
                        attrs.evolve(config, policy=PolicyName(name)),
                        models,
                        busy=busy,
                        events=None if sink is None else _Tagged(sink, name),
                        progress=advance,
                        series_points=4000 if options.plot else 0,
                        tenants=[SimulatedTenant(kind, mib) for kind, mib in tenants],
                    )
                )
            finally:
                close()
    finally:
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
            settings=used.to_json(names),
        )
        if tenants:
            body["tenants_given"] = [{"kind": k, "size_mib": round(m, 1)} for k, m in tenants]
        if len(reports) > 1:
            body["compare"] = {r.policy: r.to_json() for r in reports[1:]}
        _json(body, out)
    else:
        out.write(summary(trace, models, reports, used.describe(names), tenants))
    return _events_lost(sink, err)


def _events_file(path: str | None) -> JsonlEventSink | None:
    """The requested events file, opened now: one that cannot be written fails before the
    replay (an OSError, one line and exit 2), not silently after it."""
    if not path:
        return None
    sink = JsonlEventSink(path)
    sink.open()
    return sink


def _events_lost(sink: JsonlEventSink | None, err: TextIO) -> int:
    """Exit status 1 when events were dropped (a disk filling): the file is incomplete."""
    if sink is None or not sink.dropped:
        return 0
    print(
        f"swictation replay: error: {sink.path}: {sink.dropped} events could not be written "
        f"({sink.last_error})",
        file=err,
    )
    return 1


def _json(body: Mapping[str, Any], out: TextIO) -> None:
    out.write(json.dumps(body, allow_nan=False) + "\n")


def _advise(
    options: ReplayOptions,
    trace: Trace,
    base: Sequence[float],
    models: Sequence[ModelSpec],
    used: Used,
    busy: Callable[[float], bool] | None,
    out: TextIO,
) -> int:
    from swictation.application.services.advise import advise, largest_model_mib

    def run(config: GuardConfig) -> SimulationReport:
        return simulate(
            trace.times,
            base,
            trace.total_mib,
            config,
            models,
            busy=busy,
        )

    ranked = advise(run, used.config)
    largest = largest_model_mib(base, trace.total_mib, used.config.thresholds)
    best = ranked[:3]
    if options.json:
        _json(
            {
                "trace": trace.path,
                "models": {m.name: round(m.size_mib, 1) for m in models},
                "advice": [
                    {
                        "label": a.candidate.label,
                        "config": a.candidate.snippet(),
                        "oom_events": a.report.oom_events,
                        "shutdown": a.report.shutdown,
                        "seconds_off_gpu": round(a.seconds_off_gpu, 3),
                        "moves": a.moves,
                    }
                    for a in best
                ],
                "tried": len(ranked),
                "largest_model_mib": round(largest, 1),
            },
            out,
        )
        return 0
    lines = [
        f"{trace.path}: {len(trace):,} samples over {_duration(trace.duration_s)}; "
        + "models: "
        + (", ".join(f"{m.name} {m.size_mib:,.0f} MiB" for m in models) or "none"),
        f"tried {len(ranked)} settings; the best, by no would-be OOM, then least time off "
        "the GPU, then fewest moves:",
        "",
    ]
    for place, advice in enumerate(best, 1):
        r = advice.report
        oom = "no would-be OOM" if r.oom_events == 0 else f"{r.oom_events} would-be OOMs"
        lines.append(
            f"{place}. {advice.candidate.label}: {oom}, {_duration(advice.seconds_off_gpu)} "
            f"off the GPU, {advice.moves} moves" + (", shuts down" if r.shutdown else "")
        )
        lines += ["   " + line for line in advice.candidate.snippet().splitlines()]
        lines.append("")
    lines.append(
        f"largest model that would have fit without any offload: {largest:,.0f} MiB "
        f"(on the card's other usage, below the offload point)"
    )
    out.write("\n".join(lines) + "\n")
    return 0


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def summary(
    trace: Trace,
    models: Sequence[ModelSpec],
    reports: Sequence[SimulationReport],
    settings: str = "",
    tenants: Sequence[tuple[str, float]] = (),
) -> str:
    lines = [
        f"{trace.path}: GPU {trace.gpu}, {trace.total_mib[0]:,.0f} MiB, "
        f"{len(trace):,} samples over {_duration(trace.duration_s)}",
        "models: " + (", ".join(f"{m.name} {m.size_mib:,.0f} MiB" for m in models) or "none"),
    ]
    if settings:
        lines.append(settings)
    if tenants:
        lines.append(
            "co-tenants (free what they hold when asked): "
            + ", ".join(f"{kind} {mib:,.0f} MiB" for kind, mib in tenants)
        )
    lines.append("")
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
        ("least free", lambda r: _mib(r.min_free_mib)),
        ("shut down", lambda r: "yes" if r.shutdown else "no"),
    ]
    if tenants:
        rows += [
            ("co-tenants asked", lambda r: str(r.asks)),
            (
                "freed by co-tenants",
                lambda r: f"{sum(t['freed_mib'] for t in r.tenants.values()):,.0f} MiB",
            ),
        ]
    for label, cell in rows:
        lines.append(f"  {label:<20}" + "".join(f"{cell(r):>{width}}" for r in reports))
    for r in reports:
        lines.append("")
        lines.append(f"{r.policy}:")
        for name, m in r.per_model.items():
            lines.append(
                f"  {name} spent {_duration(m.seconds_off_gpu)} on the CPU in "
                f"{_duration(r.duration_s)} ({m.offloads} offloads, {m.restores} restores, "
                f"longest {_duration(m.longest_off_gpu_s)})"
            )
        if not r.per_model:
            lines.append("  no models")
    return "\n".join(lines) + "\n"


def _mib(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:,.0f} MiB"


def replay_main(options: ReplayOptions, out: TextIO, err: TextIO) -> int:
    """Runs replay, turning every user-facing problem into one line and exit status 2 (and,
    with --json, a JSON object naming the error on stdout)."""
    try:
        return replay(options, out, err)
    except (TraceError, ConfigError, UsageError) as error:
        print(f"swictation replay: error: {error}", file=err)
        if options.json:
            _json({"error": str(error)}, out)
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
