"""A tiny Canary: NeMo's multitask encoder-decoder (`EncDecMultiTaskModel`, the class of
nvidia/canary-1b-flash) built from a configuration with random weights, its tokenizers
trained here on a few lines, saved as a real `.nemo` archive (about 1 MB).

Same class, same prompt formatter, same aggregate tokenizer (special tokens plus one
tokenizer per language) and the same `transcribe(..., source_lang=, target_lang=)` as the
real model; only the sizes differ (one FastConformer layer of width 32 instead of 32 layers
of 1024, one decoder layer instead of 4, vocabularies of 40 instead of thousands).
"""

from __future__ import annotations

from pathlib import Path

LANGUAGES = ("en", "de")
# The special tokens Canary's prompt formats use (canary: task, pnc; canary2 also itn,
# timestamps, diarization, emotion and a decoder context).
SPECIAL = [
    *LANGUAGES,
    "transcribe",
    "translate",
    "pnc",
    "nopnc",
    "itn",
    "noitn",
    "timestamp",
    "notimestamp",
    "diarize",
    "nodiarize",
    "emo:undefined",
    "startofcontext",
    "nospeech",
]
TEXT = [
    "the weather today is cold and windy with some rain",
    "please send the report to the team before lunch",
    "open the window and close the door behind you",
]
WIDTH = 32
# The front end of every tiny model here: 16 mel features of 16 kHz audio, no dither.
MEL_PREPROCESSOR = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "features": 16,
    "n_fft": 512,
    "window_size": 0.02,
    "window_stride": 0.01,
    "dither": 0.0,
}


def _tokenizers(where: Path) -> dict:
    from nemo.collections.common.tokenizers import CanaryTokenizer
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    special = where / "special"
    CanaryTokenizer.build_special_tokenizer(SPECIAL, special)
    langs: dict = {"spl_tokens": {"dir": str(special), "type": "bpe"}}
    for language in LANGUAGES:
        directory = where / language
        directory.mkdir(parents=True, exist_ok=True)
        corpus = directory / "text.txt"
        corpus.write_text("\n".join(TEXT * 10) + "\n")
        create_spt_model(
            str(corpus),
            vocab_size=40,
            sample_size=-1,
            do_lower_case=True,
            output_dir=str(directory),
            tokenizer_type="bpe",
        )
        langs[language] = {"dir": str(directory), "type": "bpe"}
    return {
        "dir": None,
        "type": "agg",
        "langs": langs,
        "custom_tokenizer": {
            "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer",
            "tokenizers": None,
        },
    }


def _prompt_defaults(prompt_format: str) -> list[dict]:
    slots: dict = {"source_lang": "en", "target_lang": "en", "pnc": "yes"}
    if prompt_format == "canary":
        slots["task"] = "asr"
    else:
        slots.update(itn="no", timestamp="no", diarize="no", emotion="<|emo:undefined|>")
        slots["decodercontext"] = ""
    return [{"role": "user", "slots": slots}]


def tiny_canary_config(where: Path, prompt_format: str = "canary2"):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "prompt_format": prompt_format,
            "prompt_defaults": _prompt_defaults(prompt_format),
            # No word-timestamps companion model: once any .nemo has been restored in the
            # process, NeMo would look for one inside that archive while building this model.
            "restore_timestamps_model": False,
            "sample_rate": 16000,
            "preprocessor": MEL_PREPROCESSOR,
            "model_defaults": {
                "asr_enc_hidden": WIDTH,
                "lm_enc_hidden": WIDTH,
                "lm_dec_hidden": WIDTH,
            },
            "encoder": {
                "_target_": "nemo.collections.asr.modules.ConformerEncoder",
                "feat_in": 16,
                "n_layers": 1,
                "d_model": WIDTH,
                "subsampling": "dw_striding",
                "subsampling_factor": 8,
                "subsampling_conv_channels": 16,
                "ff_expansion_factor": 2,
                "self_attention_model": "rel_pos",
                "n_heads": 2,
                "conv_kernel_size": 9,
            },
            "transf_decoder": {
                "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
                "model_name": None,
                "pretrained": False,
                "encoder": None,
                "pre_ln_final_layer_norm": True,
                "config_dict": {
                    "max_sequence_length": 128,
                    "num_token_types": 0,
                    "hidden_size": WIDTH,
                    "inner_size": 2 * WIDTH,
                    "num_layers": 1,
                    "num_attention_heads": 2,
                    "pre_ln": True,
                    "vocab_size": None,
                },
            },
            "head": {
                "_target_": "nemo.collections.asr.parts.submodules.token_classifier."
                "TokenClassifier",
                "num_layers": 1,
                "activation": "relu",
                "log_softmax": True,
                "hidden_size": WIDTH,
                "num_classes": None,
            },
            "tokenizer": _tokenizers(where / "tokenizers"),
            # Greedy, and short: random weights never say end-of-text on their own.
            "decoding": {"strategy": "beam", "beam": {"beam_size": 1, "max_generation_delta": 8}},
            "loss": {
                "_target_": "nemo.collections.common.losses.smoothed_cross_entropy."
                "SmoothedCrossEntropyLoss",
                "label_smoothing": 0.0,
            },
        }
    )


def build_tiny_canary(where: Path, prompt_format: str = "canary2") -> Path:
    """Builds, saves and returns the path of a tiny Canary `.nemo` archive."""
    import torch
    from nemo.collections.asr.models import EncDecMultiTaskModel

    where.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = EncDecMultiTaskModel(cfg=tiny_canary_config(where, prompt_format))
    path = where / f"tiny-{prompt_format}.nemo"
    model.save_to(str(path))
    return path
