"""`swictationd`: the dictation daemon, guarded. Wiring comes from the container; this module
holds the daemon's life: start, run, report, stop in order, and the exit status."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from swictation.application.config import DaemonSettings
from swictation.application.services.guard import GuardService
from swictation.application.services.handover import GapStop, Handover, Reexecution, wall_clock
from swictation.application.services.pipeline import DictationPipeline
from swictation.application.services.stop import StopSignal
from swictation.application.services.workers import Workers
from swictation.domain.gpu_mode import GpuMode, Tenure
from swictation.domain.model import Event
from swictation.ports import EventSink

log = logging.getLogger("swictation")

EXIT_OK = 0
EXIT_FAILURE = 1  # could not start: no microphone, a model missing, an output missing
EXIT_USAGE = 2  # bad flags or configuration
EXIT_MEMORY_SHUTDOWN = 3  # SHUTDOWN with guard.on_shutdown = "exit": the card stayed full
EXIT_WORKER_FAILED = 4  # a worker failed and could not be restarted (the queue was spooled)


@attrs.frozen(kw_only=True)
class DaemonParts:
    """What the daemon runs, built by the container: every part declared, none defaulted."""

    pipeline: DictationPipeline
    guard: GuardService
    events: EventSink
    stop: StopSignal  # shared with the guard (a memory SHUTDOWN) and the workers (a failure)
    gap: GapStop  # the capture that ends at a gap in speech, to re-execute
    reexec: Reexecution  # whether (and as what) the process re-executes itself once stopped
    watchdog_s: float | None  # systemd's watchdog period (None: no watchdog)
    present: Callable[[str, Mapping[str, Any]], str]  # the status formatter
    notify: Callable[[str], None]  # systemd's sd_notify
    start_time: float  # the flight recorder's t = 0
    listening: bool  # False: toggled off before this process's re-execution


class Daemon:
    """Owns the running parts and stops them in order, once."""

    def __init__(self, settings: DaemonSettings, parts: DaemonParts) -> None:
        self.settings = settings
        self.parts = parts
        self.pipeline: DictationPipeline = parts.pipeline
        self.guard: GuardService = parts.guard
        self.workers: Workers = self.pipeline.workers
        # Shared with the guard (a memory SHUTDOWN) and the workers (one that failed for good).
        self._stopping: StopSignal = parts.stop
        self._stopping.subscribe(self._on_stop)
        self._signalled: str | None = None
        if not parts.listening:
            self.pipeline.enabled.clear()  # toggled off before a re-execution: still off
            log.warning("not listening (toggled off before the re-execution)")
        self._began = time.monotonic()
        self._fed = True
        self.watch_ticks = 0
        self._said_unknown: str | None = None

    @property
    def reexec(self) -> Handover | None:
        """What the next process is handed when this one re-executes itself (a SIGHUP, the
        GPU given up or taken back); None: no re-execution."""
        return self.parts.reexec.handover

    @property
    def restart_requested(self) -> bool:
        return self.reexec is not None

    @property
    def tenure(self) -> Tenure:
        """How this process holds the GPU (from the process it replaced, if any)."""
        machine = self.guard.gpu_mode
        return machine.tenure if machine is not None else Tenure()

    # -- control -----------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0911 -- one per command
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
            return self.reset(request.get("model"))
        known = "toggle, start, stop, status, quit, reset"
        return {"ok": False, "error": f"unknown command {command!r} (known: {known})"}

    def health(self) -> dict[str, dict[str, object]]:
        """Each worker's state and error counts (the control socket's among them), and the
        guard's and the flight recorder's."""
        workers = self.workers.snapshot()
        guard_state = "running" if self.guard.running else "stopped"
        workers["guard"] = {
            "state": guard_state,
            "errors": self.guard.errors,
            "restarts": 0,
            "last_error": None,
        }
        sink = self.parts.events.health()
        workers["events"] = {
            "state": "failing" if sink.failing else "running",
            "errors": sink.dropped,
            "restarts": 0,
            "last_error": sink.last_error,
        }
        return workers

    def all_alive(self) -> bool:
        """The watchdog is fed only while this holds."""
        if not self.workers.all_alive():
            return False
        return self._stopping.is_set() or self.guard.running

    def reset(self, model: object) -> dict[str, Any]:
        """`swictation reset MODEL`: end that model's CPU fallback now."""
        if not isinstance(model, str) or not self.guard.reset(model):
            names = ", ".join(m.name for m in self.guard.host.models())
            return {"ok": False, "error": f"no model named {model!r} (models: {names})"}
        log.warning("%s: CPU fallback ended by the operator (control socket)", model)
        return {"ok": True, "model": model, "reset": True}

    def status(self) -> dict[str, Any]:
        sample = self.guard.last_sample
        stats = self.pipeline.stats
        # What a user waits: from the last voiced sample (the end-of-utterance pause
        # included); the VAD-end figure only when no utterance was heard live.
        latency = stats.percentiles(stats.speech_latencies or None)
        delivery = self.pipeline.delivery.state()
        capture = self.pipeline.capture_health()
        return {
            "listening": self.pipeline.enabled.is_set(),
            "level": self.guard.level.name,
            "memory_unknown": self._memory_unknown(),
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
            "cuda_errors": {m: dict(c) for m, c in self.pipeline.runner.totals.items()},
            "utterances": stats.utterances,
            "queued": self.pipeline.queued,
            "capture_lost_blocks": capture.lost_blocks,
            "capture_device_losses": capture.device_losses,
            "spooled": stats.spooled,
            "spool_written_bytes": self.pipeline.spool.written_bytes,
            "output": delivery.describe(),
            "output_waiting": delivery.waiting,
            "output_failing_since": delivery.failing_since,
            "workers": self.health(),
            "healthy": self.all_alive(),
            "undelivered": stats.undelivered,
            "undelivered_file": stats.undelivered_file,
            "latency_p50_s": None if latency is None else round(latency[0], 3),
            "latency_p95_s": None if latency is None else round(latency[1], 3),
            "speculation": {
                "asked": stats.speculations,
                "used": stats.speculations_used,
                "wasted": stats.speculations_wasted,
                "early_pieces": stats.early_pieces,
                "early_revised": stats.early_disagreed,
                "partial_passes": stats.partial_passes,
            },
            "uptime_s": round(time.monotonic() - self._began, 1),
            "tenants": [] if self.guard.tenants is None else self.guard.tenants.snapshot(),
            "gpu": self._gpu_status(),
        }

    def _gpu_status(self) -> dict[str, Any] | None:
        """Whether this daemon holds the GPU, since when and why (None: on it as started)."""
        machine = self.guard.gpu_mode
        if machine is None:
            return None
        tenure = machine.tenure
        changing = machine.change
        if machine.mode is GpuMode.ON_GPU and tenure.since_t is None:
            return None
        since = None if tenure.since_t is None else round(wall_clock(tenure.since_t), 3)
        room_since = machine.room_since
        return {
            "mode": machine.mode.value.lower(),
            "since": since,
            "reason": tenure.reason,
            "next_reason": None if changing is None else changing.tenure.reason,
            "return_after_s": round(machine.return_wait_s(), 1),
            "room_for_s": None
            if room_since is None or machine.on_gpu
            else round(max(0.0, self.guard.clock.now() - room_since), 1),
        }

    def _memory_unknown(self) -> str | None:
        """Why the guard cannot see the GPU, when it cannot."""
        return self.guard.unavailable_reason

    # -- life -----------------------------------------------------------------------------------

    def _on_stop(self, _why: str) -> None:
        if self._shutdown_reason is not None or self._failure is not None:
            self.pipeline.abandon()  # no waiting: what is queued or still open stays spooled
        self.pipeline.stop_capture()

    @property
    def _shutdown_reason(self) -> str | None:
        return self._stopping.shutdown_reason

    @property
    def _failure(self) -> str | None:
        """Why a worker that could not be restarted stopped the daemon (see StopSignal.fail)."""
        return self._stopping.failure_reason

    def stop(self, why: str) -> None:
        self._stopping.request(why)

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self._signalled = signal.Signals(signum).name
            self.stop(f"{self._signalled} received")

        def reload(_signum: int, _frame: Any) -> None:
            # A file run stops in order instead: a file is not a session to reconfigure.
            if not self.settings.audio_file:
                # A change of GPU mode already decided is carried out by this restart too.
                pending = self.guard.gpu_mode.change if self.guard.gpu_mode else None
                self.parts.reexec.request(self.tenure if pending is None else pending.tenure)
            self._signalled = "SIGHUP"
            self.stop(
                "SIGHUP received: restarting to reload the configuration"
                if self.restart_requested
                else "SIGHUP received"
            )

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, handler)
        signal.signal(signal.SIGHUP, reload)

    def run(self) -> int:
        parts = self.parts
        parts.notify("STATUS=starting")
        self.guard.start()
        self.pipeline.start_worker()
        parts.notify("READY=1")
        parts.notify("STATUS=listening")
        capture = threading.Thread(
            target=self.pipeline.capture, name="swictation-capture", daemon=True
        )
        capture.start()
        try:
            self._watch(capture)
        finally:
            parts.notify("STOPPING=1" if not self.restart_requested else "RELOADING=1")
            if self.restart_requested and parts.watchdog_s:
                parts.notify("WATCHDOG=1")  # a full watchdog period for the new image's start
            self.pipeline.stop_capture()
            capture.join()
            self._finish()
        if self._failure is not None:
            return EXIT_WORKER_FAILED
        return EXIT_MEMORY_SHUTDOWN if self._shutdown_reason is not None else EXIT_OK

    def _watch(self, capture: threading.Thread) -> None:
        """The main thread: feeds the watchdog while every worker lives, writes the periodic
        reports, and returns when capture ends (a stop, the end of a file)."""
        every = self.settings.config.daemon.report_interval_s
        watchdog = self.parts.watchdog_s
        tick = min(1.0, watchdog or 1.0, every)
        next_report = time.monotonic() + every
        while capture.is_alive():
            capture.join(tick)
            self.watch_ticks += 1
            alive = self.all_alive()
            if alive and watchdog:
                self.parts.notify("WATCHDOG=1")
            if alive != self._fed:
                self._fed = alive
                if not alive:
                    log.error("a worker is not running: the watchdog is no longer fed")
                else:
                    log.warning("every worker is running again")
            unknown = self._memory_unknown()
            if unknown != self._said_unknown:
                self._said_unknown = unknown
                if unknown is not None:
                    log.warning("memory: unknown (%s): the guard cannot see the GPU", unknown)
            if time.monotonic() >= next_report:
                next_report += every
                self.report("status")

    def _finish(self) -> None:
        shutdown = self._shutdown_reason is not None or self._failure is not None
        drain: float | None = 0.0 if shutdown else self.settings.config.daemon.drain_timeout_s
        if self._signalled is None and not shutdown and self.reexec is None:
            drain = None  # a file's end or a quit: transcribe everything
        self.pipeline.finish(drain, spool_now=shutdown)
        self._stopping.settle()
        self.guard.stop()
        self.final_report()  # the container stops the control server, models and recorder

    def report(self, title: str) -> None:
        log.info("%s", self.parts.present(title, self.status()))

    def final_report(self) -> None:
        stats = self.pipeline.stats
        self.report("final report" if self.reexec is None else "report before re-executing")
        if stats.audio_s:
            log.info(
                "final report: %.1f s of speech transcribed in %.1f s (real-time factor "
                "%.3f) on %s",
                stats.audio_s,
                stats.stt_s,
                stats.stt_s / stats.audio_s,
                ", ".join(f"{d} x{n}" for d, n in stats.devices.items()),
            )
        if stats.undelivered:
            where = stats.undelivered_file or "the log (the file could not be written)"
            log.error(
                "final report: %d utterance(s) could not be delivered; their text is in %s",
                stats.undelivered,
                where,
            )
        lost = self.pipeline.spool.lost_s
        if lost:
            log.error("final report: %.1f s of audio lost (it could be spooled nowhere)", lost)
        if self._shutdown_reason is not None:
            log.critical(
                "exiting with status %d after memory SHUTDOWN: %s",
                EXIT_MEMORY_SHUTDOWN,
                self._shutdown_reason,
            )
        if self._failure is not None:
            log.critical("exiting with status %d: %s", EXIT_WORKER_FAILED, self._failure)
        reexec = self.reexec
        if reexec is not None and reexec.tenure != self.tenure:
            where = "CPU" if reexec.tenure.mode is GpuMode.ON_CPU else "GPU"
            log.warning("re-executing on the %s: %s", where, reexec.tenure.reason)
        self.parts.events.emit(
            Event(
                time.monotonic() - self.parts.start_time,
                "report",
                self.guard.level.name,
                detail={
                    "final": True,
                    "utterances": stats.utterances,
                    "spooled": stats.spooled,
                    "undelivered": stats.undelivered,
                    "spool_written_bytes": self.pipeline.spool.written_bytes,
                    "workers": self.health(),
                    "reexec": None if reexec is None else reexec.tenure.mode.value.lower(),
                },
            )
        )
