"""Real speech models on this machine's CPU: a tiny NeMo model built from a config, and
faster-whisper's CTranslate2 engine with the packaged tiny.en model."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from swictation.adapters.ctranslate2_models import CTranslate2Residency
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.torch_models import TorchResidency, module_footprint_mib
from swictation.domain.model import Placement
from tests.conftest import has_cuda
from tests.integration.conftest import AUDIO


def speech(name: str = "voice-us.wav") -> np.ndarray:
    samples, rate = soundfile.read(AUDIO / name, dtype="float32")
    assert rate == 16000
    return samples


@pytest.fixture(scope="module")
def nemo_model(tiny_nemo_path):
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(tiny_nemo_path), map_location="cpu")
    model.eval()
    return model


def transcribe_nemo(model, audio: np.ndarray) -> str:
    (result,) = model.transcribe([audio], batch_size=1, verbose=False)
    return getattr(result, "text", result)


def test_a_nemo_archive_restores_and_transcribes(nemo_model):
    text = transcribe_nemo(nemo_model, speech())
    assert isinstance(text, str)
    # Random weights: the text is noise, but from the model's own vocabulary.
    assert set(text) <= set(" abcdefghijklmnopqrstuvwxyz'")


def test_a_nemo_model_is_hosted_measured_and_locked(nemo_model):
    host = RealModelHost(move_wait_s=0.1)
    host.register("stt", TorchResidency(nemo_model))
    (state,) = host.models()
    assert state.placement is Placement.CPU
    assert state.size_mib == pytest.approx(module_footprint_mib(nemo_model))
    assert state.size_mib > 0.01
    with host.use("stt") as device:
        assert device == "cpu"
        assert not host.move("stt", "cpu").done  # locked while in use
        first = transcribe_nemo(host.model("stt"), speech())
    assert host.move("stt", "cpu").done
    if not has_cuda():
        assert not host.move("stt", "cuda").done
    with host.use("stt"):
        assert transcribe_nemo(host.model("stt"), speech()) == first


def whisper_text(model, audio: np.ndarray) -> str:
    segments, _ = model.transcribe(audio, beam_size=1, language="en")
    return " ".join(s.text.strip() for s in segments)


@pytest.fixture(scope="module")
def whisper(whisper_dir):
    from faster_whisper import WhisperModel

    return CTranslate2Residency(
        lambda device: WhisperModel(whisper_dir, device=device, compute_type="int8")
    )


def test_whisper_unload_load_and_transcribe_after_reload(whisper):
    audio = speech("voice-gb.wav")
    before = whisper_text(whisper.model(), audio)
    assert "report" in before.lower()
    assert whisper.loaded
    whisper.unload()
    assert not whisper.loaded
    after = whisper_text(whisper.model(), audio)  # reloads on demand
    assert after == before
    assert whisper.footprint_mib() > 10  # the loaded size, measured


def test_whisper_is_hosted_and_refuses_the_gpu_here(whisper):
    host = RealModelHost()
    host.register("whisper", whisper)
    (state,) = host.models()
    assert state.placement is Placement.CPU
    assert state.size_mib > 10
    if not has_cuda():
        result = host.move("whisper", "cuda")
        assert not result.done
        assert "CUDA is not available" in result.reason


def test_whisper_size_does_not_depend_on_what_the_process_freed_before(whisper_dir):
    """Memory freed earlier in the process (a released model, large arrays) is reused by
    the next load without growing the resident set; the measured size must not shrink."""
    from faster_whisper import WhisperModel

    def build(device):
        return WhisperModel(whisper_dir, device=device, compute_type="int8")

    first = CTranslate2Residency(build)
    first_mib = first.footprint_mib()
    first.release()
    freed = [np.ones(4_000_000) for _ in range(20)]  # 640 MB allocated, then freed
    del freed
    second = CTranslate2Residency(build)
    try:
        # tiny.en holds 39 million weights: at least a byte each once loaded as int8.
        assert first_mib > 37
        assert second.footprint_mib() == pytest.approx(first_mib, rel=0.15)
    finally:
        second.release()


@pytest.mark.gpu
def test_whisper_offloads_to_host_ram_and_restores(whisper_dir):
    from faster_whisper import WhisperModel

    residency = CTranslate2Residency(
        lambda device: WhisperModel(whisper_dir, device=device, compute_type="int8"), "cuda"
    )
    host = RealModelHost()
    host.register("whisper", residency)
    audio = speech()
    before = whisper_text(host.model("whisper"), audio)
    assert host.move("whisper", "cpu").done
    assert whisper_text(host.model("whisper"), audio) == before
    assert host.move("whisper", "cuda").done
    assert whisper_text(host.model("whisper"), audio) == before
