"""torch's view of the GPU: a probe for machines without NVML access, and allocator cleanup."""

from __future__ import annotations

import gc
from typing import Any

from swictation.domain.model import MIB, MemorySample, ProbeUnavailable
from swictation.ports import CleanupResult, Clock, GpuProbe


def _torch() -> Any:
    import torch

    return torch


def cuda_available() -> bool:
    try:
        return bool(_torch().cuda.is_available())
    except ImportError:
        return False


class TorchCudaProbe(GpuProbe):
    """Device used/total from `torch.cuda.mem_get_info`; this process's share is what its
    caching allocator holds (`memory_reserved`)."""

    def __init__(self, clock: Clock, device: int = 0) -> None:
        self._clock = clock
        self._device = device

    def sample(self) -> MemorySample | ProbeUnavailable:
        t = self._clock.now()
        try:
            torch = _torch()
        except ImportError:
            return ProbeUnavailable(t, "torch is not installed")
        if not torch.cuda.is_available():
            return ProbeUnavailable(t, "CUDA is not available to torch (no GPU or no driver)")
        try:
            free, total = torch.cuda.mem_get_info(self._device)
            own = torch.cuda.memory_reserved(self._device)
        except (RuntimeError, AssertionError) as error:
            return ProbeUnavailable(t, f"torch could not read GPU {self._device}: {error}")
        return MemorySample(t, (total - free) / MIB, total / MIB, own / MIB)

    def describe(self) -> str:
        return f"torch.cuda, GPU {self._device}"

    def close(self) -> None:
        return None


def release_memory(aggressive: bool = False) -> CleanupResult:
    """Garbage collection and cached-block release; returns what the allocator gave back.

    WARNING: a collection of the young generations (a full one takes ~0.1 s of CPU with the
    models loaded, and WARNING repeats it for as long as it lasts) and `empty_cache`.
    CRITICAL (aggressive): full passes until one finds nothing (what finalizers let go is
    found by the next; at most three), `empty_cache`, `ipc_collect` and a peak-statistics
    reset.
    """
    collected = gc.collect(1) if not aggressive else _full_collections(3)
    try:
        torch = _torch()
    except ImportError:
        return CleanupResult(0.0, f"gc: {collected} objects; torch not installed", collected)
    if not torch.cuda.is_available():
        return CleanupResult(0.0, f"gc: {collected} objects; no CUDA cache to release", collected)
    if not torch.cuda.is_initialized():
        # CPU mode on a GPU machine: `ipc_collect` and the peak reset would create the very
        # context that was given up (hundreds of MiB on the card) to release nothing.
        return CleanupResult(
            0.0,
            f"gc: {collected} objects; no CUDA context in this process, no cache to release",
            collected,
        )
    before = torch.cuda.memory_reserved()
    torch.cuda.empty_cache()
    if aggressive:
        torch.cuda.ipc_collect()
        torch.cuda.reset_peak_memory_stats()
    freed = max(0, before - torch.cuda.memory_reserved()) / MIB
    return CleanupResult(
        freed, f"gc: {collected} objects; released {freed:.1f} MiB of cache", collected
    )


def _full_collections(most: int) -> int:
    found = 0
    for _ in range(most):
        this = gc.collect()
        found += this
        if this == 0:
            break
    return found
