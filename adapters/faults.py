"""Fault injection for rehearsals and tests (`swictationd --inject-fault stt:oom:5`): CUDA
errors raised by a model's inference. Where the model can be on a GPU (a real one, or one
simulated under `--probe trace`) they fire while it is there; on a machine without any GPU
they fire whatever the device, so a rehearsal does something everywhere."""

from __future__ import annotations

import threading
from typing import Any

from swictation.domain.model import Placement
from swictation.ports import AudioBlock, SpeechRecognizer, VoiceDetector

MODELS = ("stt", "vad")


def make_error(kind: str) -> Exception:
    import torch

    if kind == "oom":
        return torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 512.00 MiB (injected)"
        )
    return RuntimeError("CUDA error: an illegal memory access was encountered (injected)")


class _Faults:
    """The next `count` inferences of `model` fail with `kind`."""

    def __init__(self, host: Any, model: str, kind: str, count: int, anywhere: bool) -> None:
        self._host = host
        self._model = model
        self._kind = kind
        self._left = count
        self._anywhere = anywhere
        self._lock = threading.Lock()
        self.injected = 0

    def _on_gpu(self) -> bool:
        for state in self._host.models():
            if state.name == self._model:
                return bool(state.placement in (Placement.GPU, Placement.TO_GPU))
        return False

    def maybe_raise(self) -> None:
        with self._lock:
            fire = self._left > 0 and (self._anywhere or self._on_gpu())
            if fire:
                self._left -= 1
                self.injected += 1
        if fire:
            raise make_error(self._kind)


class FaultyRecognizer(SpeechRecognizer):
    def __init__(
        self,
        inner: SpeechRecognizer,
        host: Any,
        model: str,
        kind: str,
        count: int,
        anywhere: bool = False,
    ):
        self.name = inner.name
        self._inner = inner
        self._faults = _Faults(host, model, kind, count, anywhere)

    @property
    def injected(self) -> int:
        return self._faults.injected

    def warm_up(self) -> None:
        """The model's warm-up is not an inference to fail: the rehearsal's faults wait."""
        warm = getattr(self._inner, "warm_up", None)
        if warm is not None:
            warm()

    def transcribe(self, block: AudioBlock) -> str:
        self._faults.maybe_raise()
        return self._inner.transcribe(block)


class FaultyVoiceDetector(VoiceDetector):
    def __init__(
        self, inner: VoiceDetector, host: Any, kind: str, count: int, anywhere: bool = False
    ) -> None:
        self._inner = inner
        self._faults = _Faults(host, "vad", kind, count, anywhere)

    @property
    def injected(self) -> int:
        return self._faults.injected

    def speech_probability(self, block: AudioBlock) -> float:
        self._faults.maybe_raise()
        return self._inner.speech_probability(block)

    def reset(self) -> None:
        self._inner.reset()
