"""The daemon's workers and their health: each runs on its own thread, owns its failures
(counted, logged), is restarted in place when one escapes, and when it cannot be restarted
the daemon is told to stop in order."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import attrs

log = logging.getLogger("swictation.workers")


@attrs.define
class WorkerHealth:
    name: str
    state: str = "starting"  # running, restarting, done, failed
    errors: int = 0
    restarts: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("starting", "running", "restarting", "done")

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "errors": self.errors,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


class Workers:
    """Threads that are restarted when they fail: up to `max_restarts` within `window_s`,
    `backoff_s` apart; beyond that the worker is failed and `on_fatal` is called once."""

    def __init__(
        self,
        on_fatal: Callable[[str], None] | None = None,
        max_restarts: int = 5,
        window_s: float = 60.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.on_fatal = on_fatal
        self._max = max_restarts
        self._window = window_s
        self._backoff = backoff_s
        self._health: dict[str, WorkerHealth] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.fatal: str | None = None

    def health(self, name: str) -> WorkerHealth:
        with self._lock:
            if name not in self._health:
                self._health[name] = WorkerHealth(name)
            return self._health[name]

    def error(self, name: str, error: BaseException | str) -> None:
        """A failure the worker handled itself (it goes on): counted, the first of each
        kind logged by the worker."""
        health = self.health(name)
        with self._lock:
            health.errors += 1
            health.last_error = _describe(error)

    def spawn(self, name: str, target: Callable[[], None], restart: bool = True) -> None:
        health = self.health(name)
        thread = threading.Thread(
            target=self._run, args=(health, target, restart), name=f"swictation-{name}", daemon=True
        )
        self._threads[name] = thread
        thread.start()

    def run_here(self, name: str, target: Callable[[], None], restart: bool = True) -> None:
        """Runs a worker on the calling thread, with the same restarts."""
        self._run(self.health(name), target, restart)

    def _run(self, health: WorkerHealth, target: Callable[[], None], restart: bool) -> None:
        failures: list[float] = []
        while True:
            health.state = "running"
            try:
                target()
            except Exception as error:
                now = time.monotonic()
                failures = [t for t in failures if now - t < self._window] + [now]
                with self._lock:
                    health.errors += 1
                    health.last_error = _describe(error)
                log.error("worker %s failed: %s", health.name, health.last_error, exc_info=True)
                if not restart or len(failures) > self._max or self._stopping.is_set():
                    health.state = "failed"
                    self._fail(
                        f"worker {health.name} failed and cannot be restarted: {health.last_error}"
                    )
                    return
                health.state = "restarting"
                health.restarts += 1
                if self._stopping.wait(self._backoff * len(failures)):
                    health.state = "done"
                    return
                log.warning("worker %s restarted (%d)", health.name, health.restarts)
                continue
            health.state = "done"
            return

    def _fail(self, reason: str) -> None:
        with self._lock:
            first = self.fatal is None
            if first:
                self.fatal = reason
        if first and self.on_fatal is not None:
            self.on_fatal(reason)

    def all_alive(self) -> bool:
        """Every worker running (or finished its work): the watchdog may be fed."""
        with self._lock:
            healths = list(self._health.values())
        return all(h.ok for h in healths) and all(
            t.is_alive() or self._health[n].state == "done" for n, t in self._threads.items()
        )

    def join(self, name: str, timeout: float | None = None) -> bool:
        """Waits for a worker's thread; returns whether it has ended."""
        thread = self._threads.get(name)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def alive(self, name: str) -> bool:
        thread = self._threads.get(name)
        return thread is not None and thread.is_alive()

    def stopping(self) -> None:
        self._stopping.set()

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {name: h.to_dict() for name, h in self._health.items()}


class FailureStreak:
    """A loop's consecutive failures: the first of each kind is worth a traceback, the rest
    only a count, said when the loop works again (`log` names what failed)."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self._kind: str | None = None
        self.count = 0

    def failed(self, error: BaseException) -> None:
        """Called from the `except` block, so that a traceback can be logged."""
        kind = _describe(error)
        self.count += 1
        if kind != self._kind:
            self._kind = kind
            self._log.exception("%s failed; carrying on (said once while it repeats)", self._what)

    def succeeded(self) -> None:
        if self.count:
            self._log.warning("%s works again after %d failures", self._what, self.count)
        self._kind = None
        self.count = 0


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text and text[0] else type(error).__name__
