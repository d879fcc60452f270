"""`swictationd`: the dictation daemon, guarded. Wiring comes from the container; this module
holds the daemon's life: start, run, report, stop in order, and the exit status."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from swictation.application.config import (
    ConfigError,
    GuardConfig,
    build_guard_config,
    check_sections,
    env_overrides,
    load_toml,
    merge,
)
from swictation.application.services.guard import GuardService
from swictation.application.services.pipeline import DictationPipeline
from swictation.domain.model import Event
from swictation.domain.segmenter import VadSettings

log = logging.getLogger("swictation")

EXIT_OK = 0
EXIT_FAILURE = 1  # could not start: no microphone, a model missing, an output missing
EXIT_USAGE = 2  # bad flags or configuration
EXIT_MEMORY_SHUTDOWN = 3  # the guard's SHUTDOWN: the card stayed full with nothing to offload


def parse_fault(spec: str) -> tuple[str, str, int]:
    """'stt:oom:5' -> ('stt', 'oom', 5); ConfigError otherwise."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[1] not in ("oom", "cuda") or not parts[2].isdigit():
        raise ConfigError(f"--inject-fault {spec}: expected MODEL:oom|cuda:COUNT, e.g. stt:oom:5")
    return parts[0], parts[1], int(parts[2])


def default_config_path(environ: Mapping[str, str]) -> str | None:
    home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    default = Path(home) / "swictation" / "config.toml"
    return str(default) if default.is_file() else None


def resolve_settings(
    command_line: Mapping[str, Mapping[str, Any]],
    config_path: str | None,
    environ: Mapping[str, str],
    audio_file: str | None = None,
    realtime: bool = False,
    faults: tuple[str, ...] = (),
) -> DaemonSettings:
    """The configuration file, then SWICTATION_* variables, then the flags; each checked.
    Raises ConfigError with one line naming what is wrong."""
    path = config_path if config_path is not None else default_config_path(environ)
    layers = []
    where = "configuration"
    if path is not None:
        layers.append(check_sections(load_toml(path), path))
        where = path
    layers.append(env_overrides(environ))
    layers.append(check_sections(command_line, "command line"))
    try:
        settings = DaemonSettings.from_sections(
            merge(*layers), where, audio_file=audio_file, realtime=realtime, faults=faults
        )
    except (ValueError, TypeError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{where}: {error}") from None
    if settings.probe == "trace" and not settings.trace:
        raise ConfigError("--probe trace needs --trace FILE")
    if realtime and not audio_file:
        raise ConfigError("--realtime needs --audio-file")
    for spec in faults:
        parse_fault(spec)
    return settings


@attrs.frozen
class DaemonSettings:
    audio_file: str | None = None
    realtime: bool = False
    probe: str = "nvml"
    gpu: str = "0"
    trace: str | None = None
    events: str | None = None
    spool_dir: str | None = None
    report_interval_s: float = 60.0
    drain_timeout_s: float = 10.0
    audio_device: str | None = None
    vad: VadSettings = attrs.field(factory=VadSettings)
    stt_engine: str = "whisper"
    stt_model: str | None = None
    stt_device: str = "auto"
    language: str = "en"
    beam_size: int = 1
    output: str = "stdout"
    output_file: str | None = None
    socket: str | None = None
    guard: GuardConfig = attrs.field(factory=GuardConfig)
    faults: tuple[str, ...] = ()

    @classmethod
    def from_sections(
        cls, sections: Mapping[str, Mapping[str, Any]], where: str, **extra: Any
    ) -> DaemonSettings:
        daemon = dict(sections.get("daemon", {}))
        stt = dict(sections.get("stt", {}))
        output = dict(sections.get("output", {}))
        vad = VadSettings(**sections.get("vad", {}))
        return cls(
            probe=daemon.get("probe", "nvml"),
            gpu=str(daemon.get("gpu", "0")),
            trace=daemon.get("trace"),
            events=daemon.get("events"),
            spool_dir=daemon.get("spool_dir"),
            report_interval_s=daemon.get("report_interval_s", 60.0),
            drain_timeout_s=daemon.get("drain_timeout_s", 10.0),
            audio_device=sections.get("audio", {}).get("device"),
            vad=vad,
            stt_engine=stt.get("engine", "whisper"),
            stt_model=stt.get("model"),
            stt_device=stt.get("device", "auto"),
            language=stt.get("language", "en"),
            beam_size=stt.get("beam_size", 1),
            output=output.get("kind", "stdout"),
            output_file=output.get("file"),
            socket=sections.get("control", {}).get("socket"),
            guard=build_guard_config(sections, where),
            **extra,
        )


class Daemon:
    """Owns the running parts and stops them in order, once."""

    def __init__(self, settings: DaemonSettings, parts: Any) -> None:
        self.settings = settings
        self.parts = parts
        self.pipeline: DictationPipeline = parts.pipeline
        self.guard: GuardService = parts.guard
        self._shutdown_reason: str | None = None
        self._stopping = threading.Event()
        self._signalled: str | None = None
        self._began = time.monotonic()

    # -- control -----------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request["cmd"]
        enabled = self.pipeline.enabled
        if command == "toggle":
            (enabled.clear if enabled.is_set() else enabled.set)()
            log.info("listening %s (control socket)", "on" if enabled.is_set() else "off")
            return {"ok": True, "listening": enabled.is_set()}
        if command == "start":
            enabled.set()
            return {"ok": True, "listening": True}
        if command == "stop":
            enabled.clear()
            return {"ok": True, "listening": False}
        if command == "status":
            return {"ok": True, **self.status()}
        if command == "quit":
            self.stop("quit requested over the control socket")
            return {"ok": True, "quitting": True}
        if command == "reset":
            model = request.get("model")
            if not isinstance(model, str) or not self.guard.reset(model):
                names = ", ".join(m.name for m in self.guard.host.models())
                return {"ok": False, "error": f"no model named {model!r} (models: {names})"}
            log.warning("%s: CPU pinning ended by the operator (control socket)", model)
            return {"ok": True, "model": model, "reset": True}
        known = "toggle, start, stop, status, quit, reset"
        return {"ok": False, "error": f"unknown command {command!r} (known: {known})"}

    def status(self) -> dict[str, Any]:
        sample = self.guard.last_sample
        stats = self.pipeline.stats
        latency = stats.percentiles()
        return {
            "listening": self.pipeline.enabled.is_set(),
            "level": self.guard.level.name,
            "usage": None if sample is None else round(sample.usage, 4),
            "used_mib": None if sample is None else round(sample.used_mib, 1),
            "total_mib": None if sample is None else round(sample.total_mib, 1),
            "top_processes": []
            if sample is None
            else [
                {"pid": p.pid, "name": p.name, "used_mib": round(p.used_mib, 1)}
                for p in sample.processes[:3]
            ],
            "models": {
                m.name: {
                    "placement": m.placement.value,
                    "size_mib": round(m.size_mib, 1),
                    "cpu_fallback": self.guard.pinned_to_cpu(m.name),
                }
                for m in self.guard.host.models()
            },
            "errors": self.guard.recovery.snapshot(),
            "utterances": stats.utterances,
            "queued": self.pipeline.queued,
            "spooled": stats.spooled,
            "latency_p50_s": None if latency is None else round(latency[0], 3),
            "latency_p95_s": None if latency is None else round(latency[1], 3),
            "uptime_s": round(time.monotonic() - self._began, 1),
        }

    # -- life -----------------------------------------------------------------------------------

    def on_shutdown(self, reason: str) -> None:
        """The guard's SHUTDOWN (from its own thread): stop capture; the main thread does
        the rest and exits non-zero."""
        self._shutdown_reason = reason
        log.critical("memory SHUTDOWN: %s", reason)
        self.stop(reason)

    def stop(self, why: str) -> None:
        if not self._stopping.is_set():
            log.info("stopping: %s", why)
        self._stopping.set()
        self.pipeline.stop_capture()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self._signalled = signal.Signals(signum).name
            self.stop(f"{self._signalled} received")

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, handler)

    def run(self) -> int:
        parts = self.parts
        parts.notify("STATUS=starting")
        self.guard.start()
        if parts.control is not None:
            parts.control.start()
        reporter = threading.Thread(target=self._report_loop, name="swictation-report", daemon=True)
        reporter.start()
        self.pipeline.start_worker()
        self.pipeline.replay_spool()
        parts.notify("READY=1")
        parts.notify("STATUS=listening")
        try:
            self.pipeline.capture()
        finally:
            parts.notify("STOPPING=1")
            shutdown = self._shutdown_reason is not None
            drain: float | None = 0.0 if shutdown else self.settings.drain_timeout_s
            if self._signalled is None and not shutdown:
                drain = None  # a file's end or a quit: transcribe everything
            self.pipeline.finish(drain, spool_now=shutdown)
            self._stopping.set()
            self.guard.stop()
            if parts.control is not None:
                parts.control.stop()
            parts.release()
            self.final_report()
            parts.close()
        return EXIT_MEMORY_SHUTDOWN if self._shutdown_reason is not None else EXIT_OK

    def _report_loop(self) -> None:
        every = self.settings.report_interval_s
        watchdog = self.parts.watchdog_s
        next_report = time.monotonic() + every
        while not self._stopping.wait(min(every, watchdog or every)):
            if watchdog:
                self.parts.notify("WATCHDOG=1")
            if time.monotonic() >= next_report:
                next_report += every
                self.report("status")

    def report(self, title: str) -> None:
        status = self.status()
        usage = status["usage"]
        device = (
            "unknown"
            if usage is None
            else f"{usage:.1%} ({status['used_mib']:,.0f} of {status['total_mib']:,.0f} MiB)"
        )
        top = ", ".join(f"{p['name']} {p['used_mib']:,.0f} MiB" for p in status["top_processes"])
        models = ", ".join(
            f"{name} {m['placement']} {m['size_mib']:,.0f} MiB"
            + (" (CPU fallback)" if m["cpu_fallback"] else "")
            for name, m in status["models"].items()
        )
        errors = ", ".join(
            f"{name} {e['failures']}" for name, e in status["errors"].items() if e["failures"]
        )
        latency = (
            "-"
            if status["latency_p50_s"] is None
            else f"p50 {status['latency_p50_s']:.2f}s p95 {status['latency_p95_s']:.2f}s"
        )
        log.info(
            "%s: level %s, GPU %s%s; models: %s; errors: %s; utterances %d (queued %d, "
            "spooled %d), latency %s",
            title,
            status["level"],
            device,
            f"; top: {top}" if top else "",
            models or "none",
            errors or "none",
            status["utterances"],
            status["queued"],
            status["spooled"],
            latency,
        )

    def final_report(self) -> None:
        stats = self.pipeline.stats
        self.report("final report")
        if stats.audio_s:
            log.info(
                "final report: %.1f s of speech transcribed in %.1f s (real-time factor "
                "%.3f) on %s",
                stats.audio_s,
                stats.stt_s,
                stats.stt_s / stats.audio_s,
                ", ".join(f"{d} x{n}" for d, n in stats.devices.items()),
            )
        if self._shutdown_reason is not None:
            log.critical(
                "exiting with status %d after memory SHUTDOWN: %s",
                EXIT_MEMORY_SHUTDOWN,
                self._shutdown_reason,
            )
        self.parts.events.emit(
            Event(
                time.monotonic() - self._began,
                "report",
                self.guard.level.name,
                detail={"final": True, "utterances": stats.utterances, "spooled": stats.spooled},
            )
        )
