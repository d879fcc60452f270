"""A GPU rehearsed on a machine without one: inference runs on the real host (the CPU) while
placement, moves and their timing are simulated as in replay, so the guard's decisions are
taken, timed and recorded as they would be on a GPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from swictation.adapters.memory import InMemoryModelHost
from swictation.adapters.model_host import RealModelHost
from swictation.domain.model import ModelState, Placement, Tuning
from swictation.domain.recovery import ErrorKind
from swictation.ports import CleanupResult, Clock, ModelHost, MoveResult


class SimulatedGpuHost(ModelHost):
    def __init__(
        self,
        real: RealModelHost,
        clock: Clock,
        tuning: Tuning | None = None,
        on_gpu: bool = True,
    ) -> None:
        """`on_gpu` False: the daemon gave up the GPU; the models are (simulated) on the CPU,
        where the guard does not move them."""
        self._real = real
        where = Placement.GPU if on_gpu else Placement.CPU
        self.simulated = InMemoryModelHost(
            clock,
            (ModelState(m.name, m.size_mib, where, m.offloadable) for m in real.models()),
            tuning,
            cuda_available=on_gpu,
        )

    def models(self) -> tuple[ModelState, ...]:
        return self.simulated.models()

    def move(self, name: str, device: str) -> MoveResult:
        return self.simulated.move(name, device)

    def cleanup(self, aggressive: bool = False) -> CleanupResult:
        return self._real.cleanup(aggressive)

    @contextmanager
    def use(self, name: str) -> Iterator[str]:
        with self._real.use(name) as device:
            yield device

    def classify_error(self, error: BaseException) -> ErrorKind:
        return self._real.classify_error(error)

    def model(self, name: str) -> Any:
        return self._real.model(name)

    def device(self, name: str) -> str:
        return str(self._real.device(name))

    def release_all(self) -> None:
        self._real.release_all()
