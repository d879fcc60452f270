"""One stop for the whole daemon, shared by whoever can ask for it (a signal, a quit over the
control socket, the guard's memory SHUTDOWN, a worker that cannot be restarted) and whoever
must react (capture, the reporter)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("swictation")


class StopSignal:
    """`request` is safe to call any number of times from any thread; the first reason is
    kept. A memory SHUTDOWN and a failed worker are remembered: they decide the exit status."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self.reason: str | None = None
        self.shutdown_reason: str | None = None
        self.failure_reason: str | None = None

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """`listener(why)` is called at every request, in the requesting thread."""
        self._listeners.append(listener)

    def request(self, why: str) -> bool:
        """Asks everything to stop; True the first time."""
        with self._lock:
            first = not self._event.is_set()
            if first:
                self.reason = why
                self._event.set()
        if first:
            log.info("stopping: %s", why)
        for listener in list(self._listeners):
            listener(why)
        return first

    def shutdown(self, reason: str) -> None:
        """The guard's memory SHUTDOWN: the card stayed full with nothing left to offload."""
        self.shutdown_reason = reason
        log.critical("memory SHUTDOWN: %s", reason)
        self.request(reason)

    def fail(self, reason: str) -> None:
        """A worker that cannot be restarted (the workers' `on_fatal`): an orderly stop, the
        queue spooled, and a non-zero exit status, so that a supervisor restarts the daemon."""
        self.failure_reason = reason
        log.critical("%s; stopping", reason)
        self.request(reason)

    def settle(self) -> None:
        """Marks the run as over without a request (the audio ended by itself)."""
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
