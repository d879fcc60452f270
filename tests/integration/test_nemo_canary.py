"""The seed's NeMo path with a Canary-class model: a tiny `EncDecMultiTaskModel` built from a
configuration (tests/nemo_canary.py) and driven through exactly the calls the daemon makes
for nvidia/canary-1b-flash: restore, transcribe with the source and target language, moves
between devices through the model host, and the model's lock held during inference."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from swictation.adapters.audio_file import load_mono_16k
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.nemo_stt import NemoRecognizer, is_multitask, load_nemo
from swictation.adapters.torch_models import TorchResidency, module_footprint_mib
from swictation.ports import AudioBlock
from tests.conftest import has_cuda
from tests.nemo_canary import build_tiny_canary

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["canary2", "canary"])
def canary_path(request, tmp_path_factory) -> Path:
    """Both prompt formats NeMo ships for Canary: canary (canary-1b) and canary2 (with the
    timestamp slot that canary-1b-flash's timestamps use)."""
    return build_tiny_canary(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture
def block() -> AudioBlock:
    return AudioBlock(0.0, load_mono_16k(AUDIO / "voice-us.wav"), 16000)


class PromptSpy:
    """Records the token ids the decoder is started with: the prompt (observes, changes
    nothing)."""

    def __init__(self, model) -> None:
        import torch

        self.prompts: list[list[int]] = []
        tokens = next(
            m for m in model.transf_decoder.modules() if isinstance(m, torch.nn.Embedding)
        )
        self._handle = tokens.register_forward_pre_hook(self._seen)

    def _seen(self, module, args) -> None:
        if not self.prompts:  # the first call embeds the whole prompt; then one token a step
            self.prompts.append(args[0][0].tolist())

    def close(self) -> None:
        self._handle.remove()


def hosted(path: Path) -> tuple[RealModelHost, object]:
    model = load_nemo(str(path), "cpu")  # the daemon's own loader: restore_from, eval mode
    host = RealModelHost(move_wait_s=0.2)
    host.register("stt", TorchResidency(model))
    return host, model


def test_the_archive_restores_as_a_multitask_model(canary_path):
    model = load_nemo(str(canary_path), "cpu")
    assert type(model).__name__ == "EncDecMultiTaskModel"
    assert is_multitask(model)
    assert not model.training
    assert model.prompt_format == canary_path.stem.removeprefix("tiny-")
    assert canary_path.stat().st_size < 5 * 1024 * 1024


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_recognizer_puts_its_language_in_the_prompt(canary_path, block, language):
    host, model = hosted(canary_path)
    spy = PromptSpy(model)
    try:
        with host.use("stt"):
            text = NemoRecognizer(host, "stt", language).transcribe(block)
    finally:
        spy.close()
    assert isinstance(text, str)
    (prompt,) = spy.prompts
    tokens = model.tokenizer.ids_to_tokens(prompt)
    assert "<|startoftranscript|>" in tokens
    other = {"en": "de", "de": "en"}[language]
    # Source and target language both the recognizer's: transcription, not translation.
    assert tokens.count(f"<|{language}|>") == 2, tokens
    assert f"<|{other}|>" not in tokens
    if model.prompt_format == "canary":  # canary2 has no task token: same languages, asr
        assert "<|transcribe|>" in tokens


def test_the_recognizer_returns_the_models_own_text(canary_path, block):
    host, model = hosted(canary_path)
    with host.use("stt"):
        text = NemoRecognizer(host, "stt", "en").transcribe(block)
        (direct,) = model.transcribe(
            [block.samples], batch_size=1, verbose=False, source_lang="en", target_lang="en"
        )
    assert text == direct.text.strip()


def test_a_move_waits_for_the_transcription_in_progress(canary_path, block):
    host, model = hosted(canary_path)
    recognizer = NemoRecognizer(host, "stt", "en")
    inside = threading.Event()
    release = threading.Event()

    def hold(*_args, **_kwargs) -> None:  # pauses the real forward pass mid-inference
        inside.set()
        release.wait(60)

    handle = model.encoder.register_forward_pre_hook(hold, with_kwargs=True)
    texts: list[str] = []

    def transcribe() -> None:
        with host.use("stt"):  # what the recovery runner does around every utterance
            texts.append(recognizer.transcribe(block))

    worker = threading.Thread(target=transcribe)
    worker.start()
    try:
        assert inside.wait(120)
        busy = host.move("stt", "cpu")
        assert not busy.done
        assert "still in use" in busy.reason
    finally:
        release.set()
        worker.join(120)
        handle.remove()
    assert len(texts) == 1
    assert host.move("stt", "cpu").done


def test_moves_between_devices_are_measured_and_refused_without_cuda(canary_path, block):
    host, model = hosted(canary_path)
    (state,) = host.models()
    assert state.size_mib == pytest.approx(module_footprint_mib(model))
    if has_cuda():
        pytest.skip("this machine has CUDA: test_canary_on_the_gpu covers the move")
    refused = host.move("stt", "cuda")
    assert not refused.done
    assert refused.reason == "CUDA is not available on this machine"
    with host.use("stt") as device:
        assert device == "cpu"
        assert isinstance(NemoRecognizer(host, "stt", "en").transcribe(block), str)


@pytest.mark.gpu
def test_canary_on_the_gpu_moves_there_and_back_and_transcribes_on_both(canary_path, block):
    host, model = hosted(canary_path)
    recognizer = NemoRecognizer(host, "stt", "en")
    with host.use("stt"):
        on_cpu = recognizer.transcribe(block)
    assert host.move("stt", "cuda").done
    with host.use("stt") as device:
        assert device == "cuda"
        assert next(model.parameters()).is_cuda
        on_gpu = recognizer.transcribe(block)  # fp16 autocast
    assert host.move("stt", "cpu").done
    with host.use("stt") as device:
        assert device == "cpu"
        assert recognizer.transcribe(block) == on_cpu
    assert isinstance(on_gpu, str)
