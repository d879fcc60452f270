"""The probe behind replay: the trace row the simulator has reached, read at the clock's time."""

from __future__ import annotations

from swictation.domain.model import MemorySample, ProbeUnavailable
from swictation.ports import Clock, GpuProbe


class TraceRowProbe(GpuProbe):
    """The latest trace row at or before the clock (the simulator moves it along); our own
    resident models are added by `ResidentModelsProbe`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.used = 0.0
        self.total = 1.0
        self.own: float | None = None

    def sample(self) -> MemorySample | ProbeUnavailable:
        return MemorySample(self._clock.now(), self.used, self.total, self.own)

    def describe(self) -> str:
        return "trace replay"

    def close(self) -> None:
        return None
