"""Silero VAD (the silero-vad package's bundled weights) as the voice detector."""

from __future__ import annotations

from typing import Any

from swictation.ports import AudioBlock, VoiceDetector


def load_silero() -> Any:
    """The TorchScript model; `import silero_vad` sets torch's thread count to 1, so the
    count is put back afterwards."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    model = silero_vad.load_silero_vad()
    torch.set_num_threads(threads)
    return model


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
            samples = torch.from_numpy(block.samples).to(device)
            return float(model(samples, block.rate).item())

    def reset(self) -> None:
        self._host.model(self._name).reset_states()
