"""CTranslate2 Whisper models (faster-whisper), moved with `unload_model`/`load_model`.

A CTranslate2 model's device is fixed when it is built: offloading a GPU model unloads it to
host RAM (`unload_model(to_cpu=True)`, so the restore is a fast `load_model()`), and
inference meanwhile runs on a CPU instance built on demand. On the CPU,
`unload_model(to_cpu=True)` frees nothing; `release()` uses `to_cpu=False`, which does.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from collections.abc import Callable
from typing import Any

from swictation.domain.model import MIB


def _rss_mib() -> float:
    """The resident set, after giving back to the system the memory that malloc holds free:
    a load that reuses memory freed earlier (another model, large arrays) grows the resident
    set by what it uses, not by what it could not find free, whatever ran before it."""
    import psutil

    _trim_free_memory()
    return float(psutil.Process(os.getpid()).memory_info().rss) / MIB


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    except (OSError, AttributeError):
        return None  # not glibc: the resident set is measured as it is


def _trim_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _device_used_mib() -> float:
    import torch

    free, total = torch.cuda.mem_get_info()
    return float(total - free) / MIB


class CTranslate2Residency:
    """`factory(device)` builds the model (e.g. `lambda d: WhisperModel(path, device=d)`)."""

    def __init__(self, factory: Callable[[str], Any], device: str = "cpu") -> None:
        self._factory = factory
        self._instances: dict[str, Any] = {}
        self._sizes: dict[str, float] = {}
        self._active = device
        self._load(device)

    def _meter(self, device: str) -> Callable[[], float]:
        return _device_used_mib if device == "cuda" else _rss_mib

    def _load(self, device: str) -> Any:
        meter = self._meter(device)
        before = meter()
        instance = self._instances.get(device)
        if instance is None:
            instance = self._factory(device)
            self._instances[device] = instance
        elif not instance.model.model_is_loaded:
            instance.model.load_model()
        # The loaded size, measured: device memory on the GPU, resident set on the CPU.
        grown = meter() - before
        if grown > 0 or device not in self._sizes:
            self._sizes[device] = max(grown, 0.0)
        return instance

    def device(self) -> str:
        return self._active

    def footprint_mib(self) -> float:
        return self._sizes.get(self._active, 0.0)

    def model(self) -> Any:
        instance = self._instances.get(self._active)
        if instance is None or not instance.model.model_is_loaded:
            instance = self._load(self._active)
        return instance

    def to(self, device: str) -> None:
        if device == self._active:
            return
        if self._active == "cuda":
            _unload(self._instances["cuda"], to_cpu=True)
        self._load(device)
        self._active = device

    @property
    def loaded(self) -> bool:
        instance = self._instances.get(self._active)
        return instance is not None and bool(instance.model.model_is_loaded)

    def unload(self) -> None:
        """Free the active instance's memory (CPU: `to_cpu=False`, the call that frees)."""
        instance = self._instances.get(self._active)
        if instance is not None and instance.model.model_is_loaded:
            _unload(instance, to_cpu=self._active == "cuda")

    def release(self) -> None:
        for instance in self._instances.values():
            if instance.model.model_is_loaded:
                _unload(instance, to_cpu=False)


def _unload(instance: Any, to_cpu: bool, timeout_s: float = 5.0) -> None:
    """CTranslate2 skips an unload, silently, while the model's lock is held by work still
    finishing inside it; ask again until it is done."""
    deadline = time.monotonic() + timeout_s
    while True:
        instance.model.unload_model(to_cpu=to_cpu)
        if not instance.model.model_is_loaded:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"CTranslate2 did not unload the model within {timeout_s:g}s")
        time.sleep(0.01)
