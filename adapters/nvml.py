"""The whole device through NVIDIA's own NVML bindings (nvidia-ml-py, imported as pynvml)."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from swictation.domain.model import MIB, MemorySample, ProbeUnavailable, ProcessUsage
from swictation.ports import Clock, GpuProbe


def describe_nvml_error(error: Exception) -> str:
    """A library error as words a user can act on."""
    name = type(error).__name__
    known = {
        "NVMLError_LibraryNotFound": "the NVIDIA driver's NVML library (libnvidia-ml.so.1) "
        "was not found: no NVIDIA driver is installed",
        "NVMLError_DriverNotLoaded": "the NVIDIA driver is not loaded",
        "NVMLError_GpuIsLost": "the GPU is lost (fell off the bus or hung); a reboot may help",
        "NVMLError_NoPermission": "no permission to query the GPU",
        "NVMLError_NotFound": "no such GPU",
        "NVMLError_InvalidArgument": "no such GPU",
        "NVMLError_Uninitialized": "NVML is not initialised",
        "NVMLError_Unknown": "NVML reported an unknown error",
    }
    return known.get(name, f"NVML error: {error}")


class NvmlProbe(GpuProbe):
    """Reads used/total of one device and every process's share. NVML starts on the first
    reading, not at construction; each failure becomes a `ProbeUnavailable` saying why."""

    def __init__(self, clock: Clock, device: str | int = 0, pid: int | None = None) -> None:
        self._clock = clock
        self._device = device
        self._pid = os.getpid() if pid is None else pid
        self._handle: Any = None
        self._nvml: Any = None
        self._lock = threading.Lock()
        self._names: dict[int, str] = {}
        self.process_note: str | None = None

    def _open(self) -> Any:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        device = str(self._device)
        if device.isdigit():
            count = pynvml.nvmlDeviceGetCount()
            if int(device) >= count:
                pynvml.nvmlShutdown()
                raise LookupError(f"no GPU {device}: this machine has {count}")
            return pynvml.nvmlDeviceGetHandleByIndex(int(device))
        return pynvml.nvmlDeviceGetHandleByUUID(device)

    def sample(self) -> MemorySample | ProbeUnavailable:
        t = self._clock.now()
        with self._lock:
            try:
                if self._handle is None:
                    self._handle = self._open()
                info = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
                processes = self._processes()
            except LookupError as error:
                return ProbeUnavailable(t, str(error))
            except ImportError:
                return ProbeUnavailable(
                    t, "nvidia-ml-py is not installed (pip install 'swictation[gpu]')"
                )
            except Exception as error:  # pynvml.NVMLError and its subclasses
                if type(error).__name__.startswith("NVMLError"):
                    if type(error).__name__ == "NVMLError_GpuIsLost":
                        self._handle = None
                    return ProbeUnavailable(t, describe_nvml_error(error))
                raise
        own = sum(p.used_mib for p in processes if p.pid == self._pid) if processes else None
        return MemorySample(t, info.used / MIB, info.total / MIB, own, processes)

    def _processes(self) -> tuple[ProcessUsage, ...]:
        nvml = self._nvml
        found: dict[int, float] = {}
        for query in (
            nvml.nvmlDeviceGetComputeRunningProcesses,
            nvml.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            try:
                entries = query(self._handle)
            except Exception as error:
                if type(error).__name__ in ("NVMLError_NoPermission", "NVMLError_NotSupported"):
                    self.process_note = describe_nvml_error(error)
                    continue
                raise
            for entry in entries:
                used = entry.usedGpuMemory
                # NVML reports None (or a sentinel) when it may not say, e.g. in containers.
                mib = used / MIB if isinstance(used, int) and used < 2**63 else 0.0
                found[entry.pid] = max(found.get(entry.pid, 0.0), mib)
        return tuple(
            ProcessUsage(pid, used, self._name(pid))
            for pid, used in sorted(found.items(), key=lambda item: -item[1])
        )

    def _name(self, pid: int) -> str:
        if pid not in self._names:
            name = ""
            try:
                raw = self._nvml.nvmlSystemGetProcessName(pid)
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
            except Exception:
                name = _proc_name(pid)
            self._names[pid] = os.path.basename(name) or f"pid {pid}"
        return self._names[pid]

    def describe(self) -> str:
        return f"NVML, GPU {self._device}"

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and self._nvml is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlShutdown()
            self._handle = None


def _proc_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""
