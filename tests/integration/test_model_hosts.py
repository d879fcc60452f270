"""One contract for every model host: the in-memory fake and the real host (torch modules
on this machine's CPU) must behave the same."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from swictation.adapters.memory import FakeClock, InMemoryModelHost, SimulatedCudaError
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.torch_models import TorchResidency, module_footprint_mib
from swictation.domain.model import ModelState, Placement
from swictation.domain.recovery import ErrorKind
from tests.conftest import has_cuda


def real_host():
    host = RealModelHost(move_wait_s=0.2)
    host.register("stt", TorchResidency(torch.nn.Linear(512, 512)))
    host.register("vad", TorchResidency(torch.nn.Linear(8, 8)))
    return host, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def fake_host():
    clock = FakeClock()
    host = InMemoryModelHost(
        clock,
        [ModelState("stt", 1.0, Placement.CPU), ModelState("vad", 0.01, Placement.CPU)],
        cuda_available=False,
        move_wait_s=0.2,
    )
    return host, SimulatedCudaError(ErrorKind.OUT_OF_MEMORY, "stt")


HOSTS = {"real-torch-cpu": real_host, "in-memory": fake_host}


@pytest.fixture(params=list(HOSTS))
def host_and_oom(request):
    if request.param == "real-torch-cpu" and has_cuda():
        pytest.skip("contract written for a CPU-only machine")
    return HOSTS[request.param]()


def test_lists_registered_models_with_their_placement(host_and_oom):
    host, _ = host_and_oom
    states = {m.name: m for m in host.models()}
    assert set(states) == {"stt", "vad"}
    assert all(m.placement is Placement.CPU for m in states.values())
    assert states["stt"].size_mib > states["vad"].size_mib > 0


def test_a_move_to_the_gpu_without_cuda_is_refused_with_a_reason(host_and_oom):
    host, _ = host_and_oom
    result = host.move("stt", "cuda")
    assert not result.done
    assert "CUDA is not available" in result.reason
    assert {m.name: m.placement for m in host.models()}["stt"] is Placement.CPU


def test_a_move_to_where_it_is_is_done_at_once(host_and_oom):
    host, _ = host_and_oom
    result = host.move("stt", "cpu")
    assert result.done
    assert result.reason == "already there"


def test_an_unknown_model_is_refused(host_and_oom):
    host, _ = host_and_oom
    assert not host.move("nope", "cpu").done


def test_no_move_starts_during_inference_and_the_wait_is_bounded(host_and_oom):
    host, _ = host_and_oom
    entered = threading.Event()
    release = threading.Event()

    def infer():
        with host.use("stt") as device:
            assert device == "cpu"
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=infer)
    worker.start()
    entered.wait(5)
    began = time.monotonic()
    result = host.move("stt", "cpu")
    waited = time.monotonic() - began
    release.set()
    worker.join()
    assert not result.done
    assert "still in use" in result.reason
    assert 0.15 < waited < 2
    assert host.move("stt", "cpu").done  # free again afterwards


def test_classifies_its_own_out_of_memory_errors(host_and_oom):
    host, oom = host_and_oom
    assert host.classify_error(oom) is ErrorKind.OUT_OF_MEMORY
    assert host.classify_error(ValueError("bad input")) is ErrorKind.OTHER


def test_footprints_are_measured_from_parameters_and_buffers():
    layer = torch.nn.Linear(1000, 1000)
    assert module_footprint_mib(layer) == pytest.approx((1000 * 1000 + 1000) * 4 / 2**20)
    norm = torch.nn.BatchNorm1d(100)  # 200 parameters, 201 buffer values (int64 counter)
    assert module_footprint_mib(norm) == pytest.approx((200 * 4 + 200 * 4 + 8) / 2**20)


def test_tied_weights_are_counted_once():
    embed = torch.nn.Embedding(1000, 64)
    head = torch.nn.Linear(64, 1000, bias=False)
    head.weight = embed.weight
    both = torch.nn.ModuleDict({"embed": embed, "head": head})
    assert module_footprint_mib(both) == pytest.approx(1000 * 64 * 4 / 2**20)


@pytest.mark.gpu
def test_a_torch_module_moves_to_the_gpu_and_back():
    host = RealModelHost()
    host.register("stt", TorchResidency(torch.nn.Linear(2048, 2048)))
    assert host.move("stt", "cuda").done
    assert {m.name: m.placement for m in host.models()}["stt"] is Placement.GPU
    with host.use("stt") as device:
        assert device == "cuda"
    assert host.move("stt", "cpu").done
    assert next(host.model("stt").parameters()).is_pinned()
