"""Configuration from one source: the section classes give the keys, the checks, the
environment variables and the command-line choices; every mistake is one line."""

from __future__ import annotations

import logging
import math
import tomllib
from pathlib import Path

import attrs
import pytest

from swictation.application import config
from swictation.application.config import (
    ConfigError,
    Settings,
    converter,
    env_overrides,
    load_guard_config,
    load_settings,
    merge,
)
from swictation.domain.model import Thresholds
from swictation.domain.segmenter import VadSettings

EXAMPLE = Path(__file__).parents[2] / "examples" / "config.toml"


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def refusal(path) -> str:
    """The error `load_guard_config` refuses the file at `path` with: one line."""
    with pytest.raises(ConfigError) as caught:
        load_guard_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


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
    assert load_settings(None, {}, default_file=False) == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[thresholds]\nwarnng = 0.7\n", "unknown key thresholds.warnng (did you mean 'warning'?)"),
        (
            "[thresholds]\nwarning = 1.5\n",
            "thresholds.warning = 1.5 is not allowed: warning must be in (0, 1], got 1.5",
        ),
        ('[thresholds]\nwarning = "high"\n', "thresholds.warning = 'high' is not allowed"),
        ("[thresholds]\nwarning = nan\n", "thresholds.warning = nan is not allowed"),
        ("[thresholds]\ndwell_s = true\n", "thresholds.dwell_s = True is not allowed"),
        ('[thresholds]\npreset = "wild"\n', "expected one of default, conservative, aggressive"),
        ("[thresholds]\nwarning = 0.95\n", "thresholds must rise"),
        ("[guard]\nmax_failures = 2.5\n", "guard.max_failures = 2.5 is not allowed"),
        ("[guard]\nmax_failures = 0\n", "expected a whole number >= 1"),
        ('[guard]\npolicy = "new"\n', "expected one of default, legacy"),
        ("[daemon]\nreport_interval_s = 0.5\n", "expected a number in [1, 86400]"),
        ('[daemon]\ngpu = ""\n', "expected a non-empty string"),
        ('[stt]\ndevice = "tpu"\n', "expected one of auto, cuda, cpu"),
        ("[stt]\nbeam_size = 11\n", "expected a whole number in [1, 10]"),
        ("[gaurd]\n", "unknown section [gaurd] (did you mean 'guard'?)"),
        ("vad = 3\n", "[vad] must be a table of keys"),
        ("[thresholds\n", "not valid TOML"),
    ],
)
def test_bad_files_get_one_line_naming_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    text_of_error = refusal(path)
    assert message in text_of_error
    assert str(path) in text_of_error


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_guard_config(tmp_path / "nope.toml")


def test_the_example_config_documents_every_key_with_its_default():
    text = EXAMPLE.read_text()
    loaded = tomllib.loads(text)
    for section, keys in config.defaults().items():
        assert section in loaded, f"[{section}] missing from {EXAMPLE.name}"
        for key, default in keys.items():
            if default is None:  # shown commented out: there is no default value
                assert f"# {key} = " in text, f"{section}.{key} missing"
                assert key not in loaded[section], f"{section}.{key} has no default"
                continue
            assert key in loaded[section], f"{section}.{key} missing"
            shown = loaded[section][key]
            if isinstance(default, float):
                assert math.isclose(shown, default, rel_tol=1e-12), f"{section}.{key}"
            else:
                assert shown == default, f"{section}.{key}"
    assert load_settings(str(EXAMPLE), {}) == Settings()


def test_settings_round_trip_through_plain_data():
    changed = load_settings(
        None,
        {},
        {"thresholds": {"preset": "aggressive", "margin": 0.05}, "stt": {"engine": "nemo"}},
        default_file=False,
    )
    plain = converter.unstructure(changed)
    assert plain["thresholds"]["warning"] == 0.85
    assert plain["stt"]["engine"] == "nemo"
    assert converter.structure(plain, Settings) == changed


def test_each_key_has_one_rule_in_code_and_in_files():
    """vad.threshold was [0.05, 0.95] in the file schema but (0, 1) in the class; margin was
    <= 0.49 in the schema but < 0.5 in the class. The class is now the only rule."""
    with pytest.raises(ValueError):
        VadSettings(threshold=0.01)
    with pytest.raises(ConfigError, match=r"expected a number in \[0.05, 0.95\]"):
        load_settings(None, {}, {"vad": {"threshold": 0.01}}, default_file=False)
    assert load_settings(None, {}, {"vad": {"threshold": 0.05}}, default_file=False)
    assert Thresholds(margin=0.495).margin == 0.495
    settings = load_settings(None, {}, {"thresholds": {"margin": 0.495}}, default_file=False)
    assert settings.thresholds.values.margin == 0.495
    with pytest.raises(ValueError):
        Thresholds(margin=0.5)
    with pytest.raises(ConfigError, match="margin"):
        load_settings(None, {}, {"thresholds": {"margin": 0.5}}, default_file=False)


def test_a_new_field_is_a_new_key_everywhere():
    """Adding a key is adding a field: the file, the environment and the checks follow."""

    @attrs.frozen
    class Extra:
        depth: int = attrs.field(default=2, validator=attrs.validators.ge(1))

    assert config.section_keys(Extra)["depth"].name == "depth"
    assert config._expected(config.section_keys(Extra)["depth"]) == "a whole number >= 1"


def test_environment_overrides_are_typed_and_checked():
    env = {
        "SWICTATION_VAD_MIN_SILENCE_S": "0.6",
        "SWICTATION_STT_ENGINE": "nemo",
        "HOME": "/x",
        "SWICTATION_GUARD_MAX_FAILURES": "5",
        "SWICTATION_THRESHOLDS_PRESET": "aggressive",
    }
    layer = env_overrides(env)
    assert layer == {
        "vad": {"min_silence_s": 0.6},
        "stt": {"engine": "nemo"},
        "guard": {"max_failures": 5},
        "thresholds": {"preset": "aggressive"},
    }
    merged = merge(
        {"vad": {"min_silence_s": 0.9, "threshold": 0.4}}, layer, {"vad": {"threshold": 0.6}}
    )
    assert merged["vad"] == {"min_silence_s": 0.6, "threshold": 0.6}
    settings = load_settings(None, env, default_file=False)
    assert settings.guard.tuning.max_failures == 5
    assert settings.thresholds.values.warning == 0.85


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SWICTATION_VAD_THRESHOLD": "high"}, "vad.threshold = 'high' is not allowed"),
        ({"SWICTATION_VAD_THRESHOLD": "2"}, "expected a number in [0.05, 0.95]"),
        ({"SWICTATION_GUARD_POLICY": "new"}, "expected one of default, legacy"),
    ],
)
def test_bad_environment_values_name_the_variable(env, message):
    with pytest.raises(ConfigError) as caught:
        env_overrides(env)
    assert message in str(caught.value)
    assert next(iter(env)) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("SWICTATION_VAD_MIN_SILENCE", "did you mean SWICTATION_VAD_MIN_SILENCE_S?"),
        ("SWICTATION_GAURD_MAX_FAILURES", "did you mean SWICTATION_GUARD_MAX_FAILURES?"),
        ("SWICTATION_WHATEVER", "not a setting, ignored"),
    ],
)
def test_an_unknown_variable_is_a_warning_naming_the_closest_key(caplog, name, hint):
    with caplog.at_level(logging.WARNING, logger="swictation.config"):
        layer = env_overrides({name: "1", "SWICTATION_STT_ENGINE": "nemo"})
    assert layer == {"stt": {"engine": "nemo"}}
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert name in caplog.text
    assert hint in caplog.text


def test_the_config_file_variable_is_not_a_setting(caplog):
    with caplog.at_level(logging.WARNING, logger="swictation.config"):
        assert env_overrides({"SWICTATION_CONFIG": "/x.toml"}) == {}
    assert not caplog.records


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[guard]\nworking_mib = "stt=5"\n',
            "guard.working_mib = 'stt=5' is not allowed: expected a table of name = number",
        ),
        (
            "[guard]\nworking_mib = [1, 2]\n",
            "guard.working_mib = [1, 2] is not allowed: expected a table of name = number",
        ),
        (
            '[guard]\nworking_mib = { stt = "big" }\n',
            "guard.working_mib = {'stt': 'big'} is not allowed: expected a table of name = number",
        ),
        (
            '[[tenants]]\nkind = "ollama"\nmodels = "llama3.2:latest"\n',
            "tenants.models = 'llama3.2:latest' is not allowed: expected a list of non-empty",
        ),
        (
            '[[tenants]]\nkind = "ollama"\nmodels = [1]\n',
            "tenants.models = [1] is not allowed: expected a list of non-empty strings",
        ),
    ],
)
def test_a_container_key_given_the_wrong_shape_is_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load_settings(path, {}, default_file=False)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_table_key_from_the_environment_is_one_line_naming_the_variable():
    with pytest.raises(ConfigError) as caught:
        env_overrides({"SWICTATION_GUARD_WORKING_MIB": "stt=5"})
    assert "SWICTATION_GUARD_WORKING_MIB" in str(caught.value)
    assert "expected a table of name = number" in str(caught.value)


def test_container_keys_still_take_their_proper_shape(tmp_path):
    path = write(
        tmp_path,
        '[guard]\nworking_mib = { stt = 800 }\n[[tenants]]\nkind = "ollama"\nmodels = ["a", "b"]\n',
    )
    settings = config.load_settings(path, {}, default_file=False)
    assert dict(settings.guard.tuning.working_mib) == {"stt": 800.0}
    assert settings.tenants[0].models == ("a", "b")


def test_a_table_key_can_be_set_from_the_environment_as_toml():
    layer = env_overrides({"SWICTATION_GUARD_WORKING_MIB": "{ stt = 800 }"})
    assert layer == {"guard": {"working_mib": {"stt": 800}}}
    settings = load_settings(
        None, {"SWICTATION_GUARD_WORKING_MIB": "{ stt = 800 }"}, default_file=False
    )
    assert dict(settings.guard.tuning.working_mib) == {"stt": 800.0}
