"""The daemon's settings: file, then environment, then flags; every mistake one line."""

from __future__ import annotations

import pytest

from swictation.application.config import ConfigError
from swictation.application.services.daemon import parse_fault, resolve_settings


def test_precedence_file_then_environment_then_flags(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[vad]\nmin_silence_s = 1.2\nthreshold = 0.4\n[stt]\nengine = "nemo"\n'
        '[output]\nkind = "file"\nfile = "/tmp/x"\n[thresholds]\npreset = "conservative"\n'
    )
    env = {"SWICTATION_VAD_MIN_SILENCE_S": "0.6", "SWICTATION_STT_ENGINE": "whisper"}
    settings = resolve_settings({"stt": {"engine": "nemo"}}, str(config), env)
    assert settings.vad.min_silence_s == 0.6  # environment over file
    assert settings.vad.threshold == 0.4  # file
    assert settings.stt_engine == "nemo"  # flag over environment
    assert settings.output == "file"
    assert settings.guard.thresholds.warning == 0.70


def test_no_file_means_defaults(tmp_path):
    settings = resolve_settings({}, None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.probe == "nvml"
    assert settings.vad.min_silence_s == 0.8
    assert settings.stt_engine == "whisper"


def test_the_default_file_is_found(tmp_path):
    (tmp_path / "swictation").mkdir()
    (tmp_path / "swictation" / "config.toml").write_text('[daemon]\nprobe = "none"\n')
    assert resolve_settings({}, None, {"XDG_CONFIG_HOME": str(tmp_path)}).probe == "none"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command_line": {"daemon": {"probe": "trace"}}}, "--probe trace needs --trace FILE"),
        ({"realtime": True}, "--realtime needs --audio-file"),
        ({"faults": ("stt:fire:2",)}, "expected MODEL:oom|cuda:COUNT"),
        ({"command_line": {"vad": {"threshold": 1.5}}}, "vad.threshold = 1.5 is not allowed"),
    ],
)
def test_mistakes_are_one_line(tmp_path, kwargs, message):
    args = {
        "command_line": {},
        "config_path": None,
        "environ": {"XDG_CONFIG_HOME": str(tmp_path)},
        **kwargs,
    }
    with pytest.raises(ConfigError) as caught:
        resolve_settings(**args)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fault_specs():
    assert parse_fault("stt:oom:5") == ("stt", "oom", 5)
    assert parse_fault("vad:cuda:1") == ("vad", "cuda", 1)
