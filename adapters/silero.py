"""Silero VAD (the silero-vad package's bundled weights) as the voice detector. The ONNX
build, run by onnxruntime on one thread, is the default: it costs a fraction of the
TorchScript model per 32 ms block and spins no thread pool between blocks, so listening to
a quiet room costs almost nothing. It stays on the CPU (2 MB: nothing worth moving)."""

from __future__ import annotations

import os
from typing import Any

from swictation.domain.model import MIB
from swictation.ports import AudioBlock, VoiceDetector


def load_silero(onnx: bool = False) -> Any:
    """The model; `import silero_vad` sets torch's thread count to 1, so the count is put
    back afterwards."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    model = silero_vad.load_silero_vad(onnx=onnx)
    torch.set_num_threads(threads)
    return model


class OnnxResidency:
    """The ONNX VAD's residency: always on the CPU; a move elsewhere is refused."""

    def __init__(self, model: Any | None = None) -> None:
        self._model = model if model is not None else load_silero(onnx=True)

    def device(self) -> str:
        return "cpu"

    def footprint_mib(self) -> float:
        session = getattr(self._model, "session", None)
        path = getattr(session, "_model_path", None)
        if isinstance(path, str) and os.path.exists(path):
            return os.path.getsize(path) / MIB
        return 2.0

    def model(self) -> Any:
        return self._model

    def to(self, device: str) -> None:
        if device != "cpu":
            raise RuntimeError("the ONNX VAD runs on the CPU (2 MB: nothing to gain on the GPU)")

    def release(self) -> None:
        return None


class SileroVoiceDetector(VoiceDetector):
    """Speech probability of one 32 ms block, on whatever device the host has the model."""

    def __init__(self, host: Any, name: str = "vad") -> None:
        import torch

        self._torch = torch
        self._host = host
        self._name = name

    def speech_probability(self, block: AudioBlock) -> float:
        torch = self._torch
        model = self._host.model(self._name)
        device = self._host.device(self._name)
        with torch.no_grad():
            samples = torch.from_numpy(block.samples)
            if device != "cpu":
                samples = samples.to(device)
            return float(model(samples, block.rate).item())

    def reset(self) -> None:
        self._host.model(self._name).reset_states()
