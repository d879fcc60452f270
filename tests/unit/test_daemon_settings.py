"""The daemon's settings: file, then environment, then flags; every mistake one line; the
command-line choices come from the configuration's own enums."""

from __future__ import annotations

import pytest

from swictation.application.config import (
    ConfigError,
    Device,
    Fault,
    OutputKind,
    PolicyName,
    ProbeKind,
    SttEngine,
    choices,
    parse_fault,
    resolve_settings,
)
from swictation.application.entrypoints.cli import build_daemon_parser, build_parser


def test_precedence_file_then_environment_then_flags(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[vad]\nmin_silence_s = 1.2\nthreshold = 0.4\n[stt]\nengine = "nemo"\n'
        '[output]\nkind = "file"\nfile = "/tmp/x"\n[thresholds]\npreset = "conservative"\n'
    )
    env = {"SWICTATION_VAD_MIN_SILENCE_S": "0.6", "SWICTATION_STT_ENGINE": "whisper"}
    settings = resolve_settings({"stt": {"engine": "nemo"}}, str(config), env)
    assert settings.config.vad.min_silence_s == 0.6  # environment over file
    assert settings.config.vad.threshold == 0.4  # file
    assert settings.config.stt.engine is SttEngine.NEMO  # flag over environment
    assert settings.config.output.kind is OutputKind.FILE
    assert settings.config.guard_config.thresholds.warning == 0.70


def test_no_file_means_defaults(tmp_path):
    settings = resolve_settings({}, None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.config.daemon.probe is ProbeKind.NVML
    assert settings.config.vad.min_silence_s == 0.8
    assert settings.config.stt.engine is SttEngine.WHISPER


def test_the_default_file_is_found(tmp_path):
    (tmp_path / "swictation").mkdir()
    (tmp_path / "swictation" / "config.toml").write_text('[daemon]\nprobe = "none"\n')
    settings = resolve_settings({}, None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.config.daemon.probe is ProbeKind.NONE


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
    assert parse_fault("stt:oom:5") == Fault("stt", "oom", 5)
    assert parse_fault("vad:cuda:1") == Fault("vad", "cuda", 1)
    settings = resolve_settings({}, None, {}, faults=("stt:oom:2",))
    assert settings.faults == (Fault("stt", "oom", 2),)


def _choices(parser, dest):
    return tuple(next(a for a in parser._actions if a.dest == dest).choices)


def test_command_line_choices_are_the_configuration_enums():
    daemon = build_daemon_parser()
    assert _choices(daemon, "probe") == choices(ProbeKind)
    assert _choices(daemon, "stt") == choices(SttEngine)
    assert _choices(daemon, "device") == choices(Device)
    assert _choices(daemon, "output") == choices(OutputKind)
    replay = next(a for a in build_parser()._actions if a.dest == "command").choices["replay"]
    assert _choices(replay, "policy") == (*choices(PolicyName), "both")
