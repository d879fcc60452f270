"""The keys of issue 11: speculative endpointing in [vad], the compute type in [stt]; each
checked where it is read, with one line naming the problem."""

from __future__ import annotations

import pytest

from swictation.adapters.whisper_stt import compute_type_on
from swictation.application.config import load_settings
from tests.unit.test_config import refusal, write


def test_the_defaults_speculate_at_a_quarter_second_and_never_cut_at_a_sentence_end(tmp_path):
    settings = load_settings(str(write(tmp_path, "")), {})
    assert settings.vad.speculate_after_s == 0.15
    assert settings.vad.sentence_end_s == 0.0
    assert settings.stt.compute_type == "auto"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[vad]\nspeculate_after_s = -0.1\n", "vad.speculate_after_s = -0.1 is not allowed"),
        ("[vad]\nsentence_end_s = 11\n", "vad.sentence_end_s = 11 is not allowed"),
        ('[stt]\ncompute_type = "int4"\n', "stt.compute_type = 'int4' is not allowed"),
    ],
)
def test_bad_values_get_one_line_naming_the_key(tmp_path, text, message):
    assert message in refusal(write(tmp_path, text))


@pytest.mark.parametrize(
    ("device", "wanted", "used"),
    [
        ("cuda", "auto", "float16"),
        ("cpu", "auto", "int8"),
        ("cuda", "int8_float16", "int8_float16"),
        ("cpu", "int8_float16", "int8"),  # offloaded to the CPU: no half precision there
        ("cpu", "float16", "int8"),
        ("cpu", "float32", "float32"),
    ],
)
def test_the_compute_type_follows_the_device(device, wanted, used):
    assert compute_type_on(device, wanted) == used
