"""Configuration files: presets, overrides, and one-line errors."""

from __future__ import annotations

import pytest

from swictation.application.config import ConfigError, load_guard_config


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_preset_with_an_override(tmp_path):
    cfg = load_guard_config(
        write(
            tmp_path,
            '[thresholds]\npreset = "conservative"\ndwell_s = 4\n[guard]\n'
            'max_failures = 5\npolicy = "legacy"\n',
        )
    )
    assert cfg.thresholds.warning == 0.70
    assert cfg.thresholds.dwell_s == 4.0
    assert cfg.tuning.max_failures == 5
    assert cfg.policy == "legacy"


def test_no_file_means_defaults():
    assert load_guard_config(None).thresholds.warning == 0.80


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[thresholds]\nwarnng = 0.7\n", "unknown key thresholds.warnng (did you mean 'warning'?)"),
        (
            "[thresholds]\nwarning = 1.5\n",
            "thresholds.warning = 1.5 is not allowed: expected a number in [0, 1]",
        ),
        ('[thresholds]\nwarning = "high"\n', "thresholds.warning = 'high'"),
        ('[thresholds]\npreset = "wild"\n', "expected one of default, conservative, aggressive"),
        ("[thresholds]\nwarning = 0.95\n", "thresholds must rise"),
        ("[guard]\nmax_failures = 2.5\n", "guard.max_failures = 2.5"),
        ("[gaurd]\n", "unknown section [gaurd] (did you mean 'guard'?)"),
        ("[thresholds\n", "not valid TOML"),
    ],
)
def test_bad_files_get_one_line_naming_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_guard_config(path)
    text_of_error = str(caught.value)
    assert message in text_of_error
    assert str(path) in text_of_error
    assert "\n" not in text_of_error


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_guard_config(tmp_path / "nope.toml")


def test_the_example_config_documents_every_key_with_its_default():
    from pathlib import Path

    from swictation.application.config import SCHEMA

    example = Path(__file__).parents[2] / "examples" / "config.toml"
    text = example.read_text()
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} = " in text, key  # set or shown commented out
    loaded = load_guard_config(example)
    defaults = load_guard_config(None)
    assert loaded.thresholds == defaults.thresholds
    assert loaded.tuning.max_failures == defaults.tuning.max_failures


def test_environment_overrides_are_typed_and_checked():
    from swictation.application.config import env_overrides, merge

    env = {
        "SWICTATION_VAD_MIN_SILENCE_S": "0.6",
        "SWICTATION_STT_ENGINE": "nemo",
        "HOME": "/x",
        "SWICTATION_GUARD_MAX_FAILURES": "5",
    }
    layer = env_overrides(env)
    assert layer == {
        "vad": {"min_silence_s": 0.6},
        "stt": {"engine": "nemo"},
        "guard": {"max_failures": 5},
    }
    merged = merge(
        {"vad": {"min_silence_s": 0.9, "threshold": 0.4}}, layer, {"vad": {"threshold": 0.6}}
    )
    assert merged["vad"] == {"min_silence_s": 0.6, "threshold": 0.6}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SWICTATION_VAD_MIN_SILENCE": "1"}, "did you mean 'min_silence_s'?"),
        ({"SWICTATION_VAD_THRESHOLD": "high"}, "vad.threshold = 'high' is not allowed"),
        ({"SWICTATION_VAD_THRESHOLD": "2"}, "expected a number in [0.05, 0.95]"),
        ({"SWICTATION_WHATEVER": "1"}, "expected SWICTATION_<SECTION>_<KEY>"),
    ],
)
def test_bad_environment_overrides_name_the_variable(env, message):
    from swictation.application.config import env_overrides

    with pytest.raises(ConfigError) as caught:
        env_overrides(env)
    assert message in str(caught.value)
    assert next(iter(env)) in str(caught.value)
