"""Probes against the real libraries: NVML, torch and psutil."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pynvml
import pytest

from swictation.adapters.clock import SystemClock
from swictation.adapters.host_memory import HostMemoryProbe
from swictation.adapters.memory import FakeClock
from swictation.adapters.nvml import NvmlProbe
from swictation.adapters.torch_cuda import TorchCudaProbe, release_memory
from swictation.domain.model import MemorySample, ProbeUnavailable
from tests.conftest import has_cuda


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU; see the gpu tests")
def test_nvml_without_a_driver_is_a_value_saying_so():
    reading = NvmlProbe(SystemClock()).sample()
    assert isinstance(reading, ProbeUnavailable)
    assert "NVIDIA driver" in reading.reason


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU; see the gpu tests")
def test_torch_probe_without_cuda_is_a_value_saying_so():
    reading = TorchCudaProbe(SystemClock()).sample()
    assert isinstance(reading, ProbeUnavailable)
    assert "CUDA is not available" in reading.reason


def fake_nvml(monkeypatch, memory, compute=(), graphics=(), names=None):
    """Stands NVML's device calls in for a GPU this machine lacks; the errors raised are
    pynvml's own exception classes."""
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 1)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: f"gpu{i}")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", memory)

    def listing(entries):
        def query(handle):
            if isinstance(entries, Exception):
                raise entries
            return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in entries]

        return query

    monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses", listing(compute))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetGraphicsRunningProcesses", listing(graphics))
    monkeypatch.setattr(
        pynvml, "nvmlSystemGetProcessName", lambda pid: (names or {}).get(pid, f"/usr/bin/p{pid}")
    )


MiB = 1024 * 1024


def test_nvml_reports_the_device_and_who_uses_it_simulated(monkeypatch):
    me = os.getpid()
    fake_nvml(
        monkeypatch,
        lambda h: SimpleNamespace(total=8192 * MiB, used=6000 * MiB, free=2192 * MiB),
        compute=[(me, 3600 * MiB), (4242, 1900 * MiB)],
        graphics=[(77, 300 * MiB), (4242, 1900 * MiB)],
        names={4242: "/opt/llm/server"},
    )
    reading = NvmlProbe(FakeClock(5.0)).sample()
    assert isinstance(reading, MemorySample)
    assert (reading.used_mib, reading.total_mib, reading.own_mib) == (6000, 8192, 3600)
    assert [(p.pid, p.name) for p in reading.processes] == [
        (me, f"p{me}"),
        (4242, "server"),
        (77, "p77"),
    ]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "no permission"),
    ],
)
def test_nvml_errors_become_values_simulated(monkeypatch, code, words):
    def broken(handle):
        raise pynvml.NVMLError(code)

    fake_nvml(monkeypatch, broken)
    probe = NvmlProbe(FakeClock())
    reading = probe.sample()
    assert isinstance(reading, ProbeUnavailable)
    assert words in reading.reason


def test_no_permission_for_the_process_list_still_reads_the_device_simulated(monkeypatch):
    fake_nvml(
        monkeypatch,
        lambda h: SimpleNamespace(total=8192 * MiB, used=1000 * MiB, free=7192 * MiB),
        compute=pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION),
        graphics=pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION),
    )
    probe = NvmlProbe(FakeClock())
    reading = probe.sample()
    assert isinstance(reading, MemorySample)
    assert reading.processes == ()
    assert reading.own_mib is None
    assert probe.process_note is not None


def test_unknown_gpu_index_simulated(monkeypatch):
    fake_nvml(monkeypatch, lambda h: None)
    reading = NvmlProbe(FakeClock(), device=3).sample()
    assert isinstance(reading, ProbeUnavailable)
    assert reading.reason == "no GPU 3: this machine has 1"


def test_host_memory_probe_reads_this_machine():
    reading = HostMemoryProbe(SystemClock()).sample()
    assert isinstance(reading, MemorySample)
    assert 0 < reading.used_mib < reading.total_mib
    assert reading.own_mib and reading.own_mib > 10


def test_cleanup_without_cuda_still_collects_garbage():
    result = release_memory(aggressive=True)
    assert result.freed_mib == 0
    assert "gc:" in result.detail


@pytest.mark.gpu
def test_nvml_and_torch_agree_on_the_device():
    nvml = NvmlProbe(SystemClock()).sample()
    torch_reading = TorchCudaProbe(SystemClock()).sample()
    assert isinstance(nvml, MemorySample)
    assert isinstance(torch_reading, MemorySample)
    assert abs(nvml.total_mib - torch_reading.total_mib) < 64
    assert abs(nvml.used_mib - torch_reading.used_mib) < 512
