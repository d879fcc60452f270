"""System RAM as the guarded device (psutil): the same guard protects CPU-only machines."""

from __future__ import annotations

import os
from typing import Any

from swictation.domain.model import MIB, MemorySample, ProbeUnavailable
from swictation.ports import Clock, GpuProbe


class HostMemoryProbe(GpuProbe):
    """used = total - available (what the kernel could still hand out); own = this
    process's resident set."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._process: Any = None

    def sample(self) -> MemorySample | ProbeUnavailable:
        t = self._clock.now()
        try:
            import psutil
        except ImportError:
            return ProbeUnavailable(t, "psutil is not installed")
        if self._process is None:
            self._process = psutil.Process(os.getpid())
        memory = psutil.virtual_memory()
        own = self._process.memory_info().rss
        return MemorySample(
            t, (memory.total - memory.available) / MIB, memory.total / MIB, own / MIB
        )

    def describe(self) -> str:
        return "host memory (psutil)"

    def close(self) -> None:
        return None
