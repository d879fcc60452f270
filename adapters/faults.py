"""Fault injection for rehearsals and tests (`swictationd --inject-fault stt:oom:5`): CUDA
errors raised by a model's inference while the guard sees that model on the GPU."""

from __future__ import annotations

import threading
from typing import Any

from swictation.domain.model import Placement
from swictation.ports import AudioBlock, SpeechRecognizer


def make_error(kind: str) -> Exception:
    import torch

    if kind == "oom":
        return torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 512.00 MiB (injected)"
        )
    return RuntimeError("CUDA error: an illegal memory access was encountered (injected)")


class FaultyRecognizer(SpeechRecognizer):
    def __init__(self, inner: SpeechRecognizer, host: Any, model: str, kind: str, count: int):
        self.name = inner.name
        self._inner = inner
        self._host = host
        self._model = model
        self._kind = kind
        self._left = count
        self._lock = threading.Lock()
        self.injected = 0

    def _on_gpu(self) -> bool:
        for state in self._host.models():
            if state.name == self._model:
                return bool(state.placement in (Placement.GPU, Placement.TO_GPU))
        return False

    def warm_up(self) -> None:
        """The model's warm-up is not an inference to fail: the rehearsal's faults wait."""
        warm = getattr(self._inner, "warm_up", None)
        if warm is not None:
            warm()

    def transcribe(self, block: AudioBlock) -> str:
        with self._lock:
            fire = self._left > 0 and self._on_gpu()
            if fire:
                self._left -= 1
                self.injected += 1
        if fire:
            raise make_error(self._kind)
        return self._inner.transcribe(block)
