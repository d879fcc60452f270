"""torch `nn.Module`s (NeMo models and Silero's TorchScript VAD among them), moved with `.to()`."""

from __future__ import annotations

import itertools
from typing import Any

from swictation.adapters.torch_cuda import cuda_available
from swictation.domain.model import MIB


def module_footprint_mib(module: Any) -> float:
    """Bytes of parameters and buffers, each storage counted once (tied weights share)."""
    seen: set[int] = set()
    total = 0
    tensors = [*module.parameters(), *module.buffers()]
    for tensor in tensors:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in seen and key != 0:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total / MIB


def module_device(module: Any) -> str:
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return "cpu" if first is None else str(first.device.type)


class TorchResidency:
    """Moves a module between the GPU and pinned host memory; pinning (page-locked RAM) lets
    the copy back to the GPU run at full PCIe speed, so it is used wherever CUDA exists."""

    def __init__(self, module: Any, pin_memory: bool = True) -> None:
        self._module = module
        self._pin = pin_memory

    def device(self) -> str:
        return module_device(self._module)

    def footprint_mib(self) -> float:
        return module_footprint_mib(self._module)

    def model(self) -> Any:
        return self._module

    def to(self, device: str) -> None:
        import torch

        if device == "cpu":
            self._module.to("cpu")
            if self._pin and cuda_available():
                with torch.no_grad():
                    for tensor in (*self._module.parameters(), *self._module.buffers()):
                        tensor.data = tensor.data.pin_memory()
        else:
            self._module.to(device, non_blocking=True)
            torch.cuda.synchronize()

    def release(self) -> None:
        if self.device() != "cpu":
            self._module.to("cpu")
