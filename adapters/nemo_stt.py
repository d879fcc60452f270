"""NeMo speech-to-text: nvidia/canary-1b-flash by default (`from_pretrained`), or a local
`.nemo` archive (`restore_from`). fp16 autocast on a GPU only; fp32 on the CPU."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from swictation.ports import AudioBlock, SpeechRecognizer

DEFAULT_NEMO_MODEL = "nvidia/canary-1b-flash"


class NemoLoadError(RuntimeError):
    """A model that cannot be had, said in one line with what to do."""


def load_nemo(name_or_path: str | None, device: str) -> Any:
    source = name_or_path or DEFAULT_NEMO_MODEL
    local = source.endswith(".nemo") or Path(source).exists()
    if local and not Path(source).is_file():
        raise FileNotFoundError(f"{source}: no such .nemo file")
    for noisy in ("nv_one_logger", "nemo_logger", "lightning", "pytorch_lightning"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from nemo.collections.asr.models import ASRModel
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(logging.ERROR)
    if local:
        model = ASRModel.restore_from(source, map_location=device)
    else:
        from huggingface_hub import constants as hub
        from huggingface_hub import errors

        # The hub's transport error (a refused connection, a name that does not resolve) is
        # not an OSError; it is re-exported (not declared) by huggingface_hub.errors.
        transport: type[Exception] = getattr(errors, "HTTPError", OSError)
        try:
            model = ASRModel.from_pretrained(source, map_location=device)
        except (OSError, transport) as error:  # no network, hub offline, no such model
            raise NemoLoadError(_fetch_failed(source, error, offline=hub.HF_HUB_OFFLINE)) from None
    model.eval()
    return model


def _fetch_failed(source: str, error: Exception, offline: bool) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if offline:
        return (
            f"cannot fetch {source}: HF_HUB_OFFLINE is set and it is not in the model cache "
            f"({reason}); fetch it once with network access (docs/gpu.md), or pass "
            "--stt-model FILE.nemo"
        )
    return (
        f"cannot fetch {source} from the model hub ({reason}); without network, pass a local "
        "archive with --stt-model FILE.nemo, or set HF_HUB_OFFLINE=1 to use a copy already "
        "in the model cache (docs/gpu.md)"
    )


def is_multitask(model: Any) -> bool:
    """Canary and its kin: an encoder-decoder whose prompt carries the languages."""
    from nemo.collections.asr.models import EncDecMultiTaskModel

    return isinstance(model, EncDecMultiTaskModel)


class NemoRecognizer(SpeechRecognizer):
    name = "nemo"

    def __init__(self, host: Any, model: str = "stt", language: str = "en") -> None:
        self._host = host
        self._model = model
        self._language = language

    def transcribe(self, block: AudioBlock) -> str:
        import torch

        model = self._host.model(self._model)
        device = self._host.device(self._model)
        extra: dict[str, Any] = {}
        if is_multitask(model):  # Canary: speech recognition when source and target agree
            extra = {"source_lang": self._language, "target_lang": self._language}
        precision = (
            torch.autocast("cuda", dtype=torch.float16)
            if device == "cuda"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), precision:
            results = model.transcribe([block.samples], batch_size=1, verbose=False, **extra)
        first = results[0] if results else ""
        if isinstance(first, list):  # some models return one list per hypothesis
            first = first[0] if first else ""
        return str(getattr(first, "text", first)).strip()
