"""The real model host: where each model lives, one lock per model, moves that are timed and
measured. How a model moves is its residency's business (torch `.to()`, CTranslate2
unload/load); the host adds the locking, the refusals and the bookkeeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import attrs

from swictation.adapters.cuda_errors import classify_cuda_error
from swictation.adapters.torch_cuda import cuda_available, release_memory
from swictation.domain.model import ModelState, Placement
from swictation.domain.recovery import ErrorKind
from swictation.ports import CleanupResult, ModelHost, MoveResult


class Residency(Protocol):
    """How one kind of model is moved and measured."""

    def device(self) -> str:
        """'cuda' or 'cpu': where inference runs now."""
        ...

    def footprint_mib(self) -> float: ...

    def to(self, device: str) -> None: ...

    def model(self) -> Any:
        """The object inference is run on, as placed now."""
        ...

    def release(self) -> None:
        """Free everything the model holds (at shutdown)."""
        ...


@attrs.define
class _Entry:
    residency: Residency
    offloadable: bool
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    moving: str | None = None
    size_mib: float = 0.0


class RealModelHost(ModelHost):
    def __init__(
        self,
        has_cuda: Callable[[], bool] = cuda_available,
        cleanup: Callable[[bool], CleanupResult] = release_memory,
        move_wait_s: float = 5.0,
    ) -> None:
        self._has_cuda = has_cuda
        self._cleanup = cleanup
        self._move_wait_s = move_wait_s
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, residency: Residency, offloadable: bool = True) -> None:
        self._entries[name] = _Entry(residency, offloadable, size_mib=residency.footprint_mib())

    def model(self, name: str) -> Any:
        return self._entries[name].residency.model()

    def device(self, name: str) -> str:
        return self._entries[name].residency.device()

    def models(self) -> tuple[ModelState, ...]:
        states = []
        for name, entry in self._entries.items():
            if entry.moving == "cpu":
                placement = Placement.TO_CPU
            elif entry.moving is not None:
                placement = Placement.TO_GPU
            elif entry.residency.device() == "cpu":
                placement = Placement.CPU
            else:
                placement = Placement.GPU
            states.append(ModelState(name, entry.size_mib, placement, entry.offloadable))
        return tuple(states)

    def move(self, name: str, device: str) -> MoveResult:
        entry = self._entries.get(name)
        if entry is None:
            return MoveResult(name, device, False, reason=f"no model named {name!r}")
        if device != "cpu" and not self._has_cuda():
            return MoveResult(name, device, False, reason="CUDA is not available on this machine")
        # A move waits for the inference in progress to end, but not for ever: the guard
        # re-evaluates at its next poll.
        if not entry.lock.acquire(timeout=self._move_wait_s):
            return MoveResult(
                name, device, False, reason=f"still in use after {self._move_wait_s:g}s; will retry"
            )
        try:
            if entry.residency.device() == device:
                return MoveResult(name, device, True, reason="already there")
            entry.moving = device
            began = time.perf_counter()
            try:
                entry.residency.to(device)
            except Exception as error:  # a failed move is reported, never fatal
                kind = classify_cuda_error(error)
                return MoveResult(
                    name,
                    device,
                    False,
                    time.perf_counter() - began,
                    reason=f"{kind.value}: {error}",
                )
            finally:
                entry.moving = None
            entry.size_mib = entry.residency.footprint_mib()
            return MoveResult(name, device, True, time.perf_counter() - began)
        finally:
            entry.lock.release()

    def cleanup(self, aggressive: bool = False) -> CleanupResult:
        return self._cleanup(aggressive)

    @contextmanager
    def use(self, name: str) -> Iterator[str]:
        entry = self._entries[name]
        with entry.lock:
            yield entry.residency.device()

    def classify_error(self, error: BaseException) -> ErrorKind:
        return classify_cuda_error(error)

    def release_all(self) -> None:
        for entry in self._entries.values():
            with entry.lock:
                entry.residency.release()
