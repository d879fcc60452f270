"""The daemon's workers and their health: each runs on its own thread, owns its failures
(counted, logged), is restarted in place when one escapes, and when it cannot be restarted
the daemon is told to stop in order."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import attrs

from swictation.ports import FailureReport

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
    """Threads that are restarted when they fail (an exception escapes, or `SystemExit`: a
    library's `sys.exit()` would end only the thread): up to `max_restarts` within `window_s`,
    `backoff_s` apart; beyond that the worker is failed and, for a worker the daemon cannot
    do without (`fatal`), `on_fatal` is called once."""

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

    def error(self, name: str, error: BaseException | str, where: str | None = None) -> None:
        """A failure the worker handled itself (it goes on): counted, the first of each
        kind logged by the worker; `where` names the part of it that failed."""
        health = self.health(name)
        with self._lock:
            health.errors += 1
            health.last_error = (
                _describe(error) if where is None else f"{where}: {_describe(error)}"
            )

    def spawn(
        self, name: str, target: Callable[[], None], restart: bool = True, fatal: bool = True
    ) -> None:
        """`fatal` False: a worker the daemon can go on without (the control socket); once it
        cannot be restarted it is reported failed (and the watchdog starves), the daemon is
        not stopped."""
        health = self.health(name)
        thread = threading.Thread(
            target=self._run,
            args=(health, target, restart, fatal),
            name=f"swictation-{name}",
            daemon=True,
        )
        self._threads[name] = thread
        thread.start()

    def run_here(self, name: str, target: Callable[[], None], restart: bool = True) -> None:
        """Runs a worker on the calling thread, with the same restarts."""
        self._run(self.health(name), target, restart, fatal=True)

    def reporter(self, name: str) -> WorkerFailures:
        """How the worker `name` reports the failures it survives itself."""
        return WorkerFailures(self, name)

    def _run(
        self, health: WorkerHealth, target: Callable[[], None], restart: bool, fatal: bool
    ) -> None:
        failures: list[float] = []
        said: str | None = None  # a failure that repeats is worth one traceback
        while True:
            health.state = "running"
            try:
                target()
            except (Exception, SystemExit) as error:
                now = time.monotonic()
                failures = [t for t in failures if now - t < self._window] + [now]
                with self._lock:
                    health.errors += 1
                    health.last_error = _describe(error)
                again = health.last_error == said and len(failures) > 1
                said = health.last_error
                log.error(
                    "worker %s failed%s: %s",
                    health.name,
                    " again" if again else "",
                    health.last_error,
                    exc_info=not again,
                )
                if not restart or len(failures) > self._max or self._stopping.is_set():
                    health.state = "failed"
                    reason = f"worker {health.name} failed and cannot be restarted"
                    if fatal:
                        self._fail(f"{reason}: {health.last_error}")
                    else:
                        log.critical("%s: %s; the daemon goes on without it", reason,
                                     health.last_error)  # fmt: skip
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


class WorkerFailures(FailureReport):
    """A worker's own report of the failures it survives: each counted in its health, each
    part's (`where`) logged once per streak, with the count when that part works again."""

    def __init__(self, workers: Workers, name: str) -> None:
        self._workers = workers
        self._name = name
        self._streaks: dict[str, FailureStreak] = {}
        self._lock = threading.Lock()

    def _streak(self, where: str) -> FailureStreak:
        with self._lock:
            streak = self._streaks.get(where)
            if streak is None:
                streak = self._streaks[where] = FailureStreak(log, f"{self._name}: {where}")
            return streak

    def failed(self, where: str, error: BaseException) -> None:
        self._workers.error(self._name, error, where)
        self._streak(where).failed(error)

    def succeeded(self, where: str) -> None:
        self._streak(where).succeeded()


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
            self._log.exception(
                "%s failed (%s); carrying on (said once while it repeats)", self._what, kind
            )

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
