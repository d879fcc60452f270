"""The wall clock: monotonic seconds, and a sleep that a stop request cuts short."""

from __future__ import annotations

import threading
import time

from swictation.ports import Clock


class SystemClock(Clock):
    def now(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))
