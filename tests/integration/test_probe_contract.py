"""One contract for every probe: a reading stamped with the clock's time, or a value saying
why there is none; never an exception; close() safe to call twice."""

from __future__ import annotations

import pytest

from swictation.adapters.host_memory import HostMemoryProbe
from swictation.adapters.memory import FakeClock, NoProbe, ScriptedProbe
from swictation.adapters.nvml import NvmlProbe
from swictation.adapters.torch_cuda import TorchCudaProbe
from swictation.domain.model import MemorySample, ProbeUnavailable
from swictation.ports import GpuProbe

PROBES = {
    "scripted": lambda clock: ScriptedProbe(lambda t: 100.0, 1000.0, clock),
    "none": NoProbe,
    "nvml": NvmlProbe,
    "torch": TorchCudaProbe,
    "host": HostMemoryProbe,
}


@pytest.mark.parametrize("kind", list(PROBES))
def test_probe_contract(kind):
    clock = FakeClock(42.0)
    probe = PROBES[kind](clock)
    assert isinstance(probe, GpuProbe)
    for _ in range(2):
        reading = probe.sample()
        assert isinstance(reading, MemorySample | ProbeUnavailable)
        assert reading.t == 42.0
        if isinstance(reading, MemorySample):
            assert 0 <= reading.used_mib <= reading.total_mib
        else:
            assert reading.reason
    assert probe.describe()
    probe.close()
    probe.close()
