"""Delivering text: in order, and when the output fails (a typing tool that errors, a closed
stdout, a full disk) the text waits and is retried with back-off instead of being lost or
taking the worker down. At a stop, what was never delivered is handed back to be kept."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from swictation.ports import TextOutput

log = logging.getLogger("swictation.output")


@attrs.frozen
class Pending:
    id: int
    text: str
    spooled: Path | None = None
    ends: bool = True  # False: words typed early, more of the same line follows


@attrs.frozen
class DeliveryState:
    waiting: int
    failing_since: float | None  # wall-clock time of the first failure in the current streak
    error: str | None
    delivered: int
    failures: int

    def describe(self) -> str:
        if self.failing_since is None:
            return f"ok, {self.waiting} waiting" if self.waiting else "ok"
        since = time.strftime("%H:%M:%S", time.localtime(self.failing_since))
        return f"failing since {since}, {self.waiting} waiting: {self.error}"


class Delivery:
    """A queue of texts in front of one output, emptied in order by `run()` on a worker
    thread. Retries wait `first_retry_s`, then twice as long each time, at most `max_retry_s`."""

    def __init__(
        self,
        output: TextOutput,
        on_delivered: Callable[[Pending], None] = lambda item: None,
        on_error: Callable[[BaseException], None] = lambda error: None,
        first_retry_s: float = 0.5,
        max_retry_s: float = 30.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._output = output
        self._on_delivered = on_delivered
        self._on_error = on_error
        self._first = first_retry_s
        self._max = max_retry_s
        self._wall = wall
        self._items: collections.deque[Pending] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._failing_since: float | None = None
        self._error: str | None = None
        self._attempt = 0
        self.delivered = 0
        self.failures = 0
        self.retry_delays: list[float] = []

    def put(self, item: Pending) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify_all()

    @property
    def waiting(self) -> int:
        with self._ready:
            return len(self._items)

    def state(self) -> DeliveryState:
        with self._ready:
            return DeliveryState(
                len(self._items), self._failing_since, self._error, self.delivered, self.failures
            )

    def close(self, within_s: float | None = None) -> None:
        """No more text will come: `run()` delivers what waits and returns. A failing output
        is retried for up to `within_s` more (None: one more attempt); what is left then is
        for the caller to keep."""
        with self._ready:
            self._closing = True
            self._deadline = time.monotonic() + (within_s or 0.0)
            self._ready.notify_all()

    def undelivered(self) -> list[Pending]:
        """What is left after `run()` returned: the caller keeps it somewhere."""
        with self._ready:
            left = list(self._items)
            self._items.clear()
            return left

    def run(self) -> None:
        while True:
            with self._ready:
                while not self._items and not self._closing:
                    self._ready.wait()
                if not self._items:
                    return
                item = self._items[0]
            if self._deliver(item):
                continue
            with self._ready:
                delay = min(self._max, self._first * 2 ** min(self._attempt - 1, 30))
                closing = self._closing
                if closing and self._deadline is not None:
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        return  # what is left is kept by the caller
                    delay = min(delay, left)
                self.retry_delays.append(delay)
                if closing:
                    self._ready.wait(delay)
                else:  # a stop cuts the wait short
                    self._ready.wait_for(lambda: self._closing, timeout=delay)

    def _deliver(self, item: Pending) -> bool:
        try:
            self._output.emit(item.text, ends=item.ends)
        except Exception as error:  # any output failure: the text waits, the worker goes on
            self._failed(error)
            return False
        with self._ready:
            self._items.popleft()
            self.delivered += 1
            recovered = self._failing_since is not None
            if recovered:
                log.warning(
                    "output recovered after %.1f s; %d waiting",
                    self._wall() - (self._failing_since or 0.0),
                    len(self._items),
                )
            self._failing_since = None
            self._error = None
            self._attempt = 0
        try:
            self._on_delivered(item)
        except Exception as error:
            log.error("after delivering utterance %d: %s", item.id, error)
        return True

    def _failed(self, error: BaseException) -> None:
        text = _one_line(error)
        with self._ready:
            self.failures += 1
            self._attempt += 1
            changed = text != self._error
            if self._failing_since is None:
                self._failing_since = self._wall()
            self._error = text
            waiting = len(self._items)
        if changed:
            log.error("output failing: %s; %d waiting, retrying", text, waiting)
        self._on_error(error)


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines and lines[0] else type(error).__name__
