"""The recovery wrapper on real torch models (on the CPU), with CUDA errors injected into the
operation: real `torch.cuda.OutOfMemoryError` instances, which this machine cannot provoke."""

from __future__ import annotations

import pytest
import torch

from swictation.adapters.clock import SystemClock
from swictation.adapters.cuda_errors import classify_cuda_error
from swictation.adapters.memory import EventList
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.torch_models import TorchResidency
from swictation.application.services.recovery import RecoveringRunner
from swictation.domain.recovery import ErrorKind, RecoveryTracker


def world():
    torch.manual_seed(0)
    host = RealModelHost()
    stt, vad = torch.nn.Linear(64, 16), torch.nn.Linear(16, 1)
    host.register("stt", TorchResidency(stt))
    host.register("vad", TorchResidency(vad))
    tracker = RecoveryTracker()
    events = EventList()
    return host, tracker, events, RecoveringRunner(host, tracker, events, SystemClock())


def flaky(model, failures: int, error_factory):
    """Runs `model` on the input it is given, failing the first `failures` calls."""
    seen = []

    def operation(x):
        def run(device: str):
            seen.append(x)
            if len(seen) <= failures:
                raise error_factory()
            with torch.no_grad():
                return model(x.to(device))

        return run

    return operation, seen


def oom():
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")


def test_an_oom_is_cleaned_up_and_the_same_input_retried():
    host, tracker, events, runner = world()
    x = torch.randn(4, 64)
    operation, seen = flaky(host.model("stt"), 2, oom)
    result = runner.run("stt", operation(x))
    with torch.no_grad():
        assert torch.equal(result, host.model("stt")(x))
    assert len(seen) == 3
    assert all(s is x for s in seen)  # the same input every time
    assert [e.detail["verdict"] for e in events.of_type("error")] == ["retry", "retry"]
    assert [e.action for e in events.of_type("action")] == ["aggressive_cleanup"] * 2
    assert tracker.failures("stt") == 0


def test_three_failures_fall_back_for_that_model_only():
    host, tracker, events, runner = world()
    vad_before = next(host.model("vad").parameters()).clone()
    x = torch.randn(2, 64)
    operation, _ = flaky(host.model("stt"), 3, oom)
    runner.run("stt", operation(x))
    assert [e.detail["verdict"] for e in events.of_type("error")] == ["retry", "retry", "fallback"]
    fallback = [e for e in events.of_type("action") if e.action == "fallback_to_cpu"]
    assert [e.model for e in fallback] == ["stt"]
    # The fallback is posted for the guard, whose residency machine pins the STT alone.
    assert tracker.take_notices() == (("stt",), ())
    assert host.device("stt") == "cpu"
    assert torch.equal(next(host.model("vad").parameters()), vad_before)
    # The VAD keeps working normally, untouched by the STT's troubles.
    assert runner.run("vad", lambda device: "ok") == "ok"


def test_a_bug_is_not_retried():
    _, _, events, runner = world()
    calls = []

    def broken(device):
        calls.append(device)
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        runner.run("stt", broken)
    assert len(calls) == 1
    assert events.of_type("error")[0].detail["verdict"] == "give_up"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), ErrorKind.OUT_OF_MEMORY),
        (RuntimeError("CUDA error: out of memory"), ErrorKind.OUT_OF_MEMORY),
        (RuntimeError("CUDA failed with error out of memory"), ErrorKind.OUT_OF_MEMORY),
        (
            RuntimeError("cuBLAS error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"),
            ErrorKind.OUT_OF_MEMORY,
        ),
        (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE"), ErrorKind.OUT_OF_MEMORY),
        (RuntimeError("CUDA error: device-side assert triggered"), ErrorKind.CUDA),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), ErrorKind.CUDA),
        (ValueError("bad audio"), ErrorKind.OTHER),
        (RuntimeError("expected scalar type Float"), ErrorKind.OTHER),
    ],
)
def test_error_classification(error, kind):
    assert classify_cuda_error(error) is kind


@pytest.mark.gpu
def test_a_real_oom_during_inference_is_recovered_with_the_same_input():
    host = RealModelHost()
    model = torch.nn.Linear(1024, 1024)
    host.register("stt", TorchResidency(model))
    assert host.move("stt", "cuda").done
    tracker, events = RecoveryTracker(), EventList()
    runner = RecoveringRunner(host, tracker, events, SystemClock())
    free, _ = torch.cuda.mem_get_info()
    hog = [torch.empty(int(free * 0.95), dtype=torch.uint8, device="cuda")]
    x = torch.randn(8, 1024)

    attempts = []

    def infer(device):
        attempts.append(x)
        if len(attempts) == 2:
            hog.clear()  # the other program lets go before the retry
            torch.cuda.empty_cache()
        torch.empty(int(free * 0.2), dtype=torch.uint8, device=device)  # the activations
        with torch.no_grad():
            return model(x.to(device)).cpu()

    result = runner.run("stt", infer)
    assert result.shape == (8, 1024)
    assert len(attempts) == 2 and attempts[0] is attempts[1]
    assert events.of_type("error")[0].detail["kind"] == "out_of_memory"
