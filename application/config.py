"""Configuration: TOML files checked key by key, with one-line errors that name the problem."""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from swictation.domain.legacy import LegacyPolicy
from swictation.domain.model import PRESETS, Thresholds, Tuning
from swictation.domain.policy import GuardPolicy, Policy


class ConfigError(ValueError):
    """A configuration problem, worded for the user in one line."""


@attrs.frozen
class _Key:
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"a number in [{low}, {high}]"


_FRACTION = _Key(float, 0.0, 1.0)
_SECONDS = _Key(float, 0.0, 86400.0)
_MIB = _Key(float, 0.0, 1e7)

_TEXT = _Key(str)

SCHEMA: dict[str, dict[str, _Key]] = {
    "daemon": {
        "probe": _Key(str, choices=("nvml", "torch", "trace", "host", "none")),
        "gpu": _TEXT,
        "trace": _TEXT,
        "events": _TEXT,
        "spool_dir": _TEXT,
        "report_interval_s": _Key(float, 1.0, 86400.0),
        "drain_timeout_s": _Key(float, 0.0, 3600.0),
    },
    "audio": {
        "device": _TEXT,
    },
    "vad": {
        "threshold": _Key(float, 0.05, 0.95),
        "hysteresis": _Key(float, 0.0, 0.5),
        "min_silence_s": _Key(float, 0.05, 10.0),
        "speech_pad_s": _Key(float, 0.0, 2.0),
        "min_speech_s": _Key(float, 0.0, 5.0),
        "max_utterance_s": _Key(float, 2.0, 120.0),
    },
    "stt": {
        "engine": _Key(str, choices=("whisper", "nemo")),
        "model": _TEXT,
        "device": _Key(str, choices=("auto", "cuda", "cpu")),
        "language": _TEXT,
        "beam_size": _Key(int, 1, 10),
    },
    "output": {
        "kind": _Key(str, choices=("stdout", "file", "wtype", "xdotool")),
        "file": _TEXT,
    },
    "control": {
        "socket": _TEXT,
    },
    "thresholds": {
        "preset": _Key(str, choices=tuple(PRESETS)),
        "warning": _FRACTION,
        "critical": _FRACTION,
        "emergency": _FRACTION,
        "shutdown": _FRACTION,
        "warning_free_mib": _MIB,
        "critical_free_mib": _MIB,
        "emergency_free_mib": _MIB,
        "margin": _Key(float, 0.0, 0.49),
        "dwell_s": _SECONDS,
        "interval_s": _Key(float, 0.01, 3600.0),
        "min_interval_s": _Key(float, 0.01, 3600.0),
    },
    "guard": {
        "policy": _Key(str, choices=("default", "legacy")),
        "reapply_s": _Key(float, 0.01, 86400.0),
        "shutdown_grace_s": _SECONDS,
        "restore_backoff_s": _Key(float, 0.01, 86400.0),
        "restore_backoff_max_s": _Key(float, 0.01, 86400.0),
        "settle_s": _SECONDS,
        "min_offload_mib": _MIB,
        "transfer_mib_s": _Key(float, 1.0, 1e6),
        "transfer_overhead_s": _Key(float, 0.0, 60.0),
        "forecast_window_s": _Key(float, 0.1, 3600.0),
        "forecast_safety": _Key(float, 1.0, 100.0),
        "max_failures": _Key(int, 1, 1000),
        "fallback_cooldown_s": _Key(float, 0.0, 1e7),
    },
}


def closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (known: {', '.join(known)})"


def check_value(where: str, key: str, value: Any, spec: _Key) -> Any:
    """Return `value` converted to the key's type, or raise a one-line ConfigError."""
    bad = ConfigError(f"{where}: {key} = {value!r} is not allowed: expected {spec.describe()}")
    if spec.choices:
        if not isinstance(value, str) or value not in spec.choices:
            raise bad
        return value
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if spec.kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{where}: {key} = {value!r} is not allowed: expected a non-empty string"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad
    if spec.kind is int and not float(value).is_integer():
        raise bad
    number = float(value)
    if math.isnan(number):
        raise bad
    if (spec.low is not None and number < spec.low) or (
        spec.high is not None and number > spec.high
    ):
        raise bad
    return int(number) if spec.kind is int else number


def check_section(where: str, section: str, table: Any) -> dict[str, Any]:
    schema = SCHEMA[section]
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [{section}] must be a table of keys")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in schema:
            raise ConfigError(f"{where}: unknown key {section}.{key}{closest(key, list(schema))}")
        out[key] = check_value(where, f"{section}.{key}", value, schema[key])
    return out


@attrs.frozen
class GuardConfig:
    thresholds: Thresholds = attrs.field(factory=Thresholds)
    tuning: Tuning = attrs.field(factory=Tuning)
    policy: str = "default"

    def make_policy(self, name: str | None = None) -> Policy:
        """A fresh policy: `name` (default: the configured one); legacy ignores thresholds."""
        if (name or self.policy) == "legacy":
            return LegacyPolicy()
        return GuardPolicy(self.thresholds, self.tuning)


def build_guard_config(
    sections: Mapping[str, Mapping[str, Any]], where: str = "configuration"
) -> GuardConfig:
    th = dict(check_section(where, "thresholds", sections.get("thresholds", {})))
    guard = dict(check_section(where, "guard", sections.get("guard", {})))
    base = PRESETS[th.pop("preset", "default")]
    policy = guard.pop("policy", "default")
    try:
        thresholds = attrs.evolve(base, **th)
        tuning = Tuning(**guard)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None
    return GuardConfig(thresholds, tuning, policy)


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None


def load_guard_config(path: str | Path | None) -> GuardConfig:
    if path is None:
        return GuardConfig()
    data = load_toml(path)
    check_sections(data, str(path))
    return build_guard_config(data, str(path))


def check_sections(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Every section and key checked; returns the converted values."""
    known = list(SCHEMA)
    out: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        if section not in known:
            raise ConfigError(f"{where}: unknown section [{section}]{closest(section, known)}")
        out[section] = check_section(where, section, table)
    return out


ENV_PREFIX = "SWICTATION_"


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """SWICTATION_<SECTION>_<KEY>=value, e.g. SWICTATION_VAD_MIN_SILENCE_S=0.6."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ("SWICTATION_CONFIG",):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        where = f"environment {name}"
        if section not in SCHEMA or not key:
            raise ConfigError(
                f"{where}: unknown setting (expected SWICTATION_<SECTION>_<KEY> with a section "
                f"of {', '.join(SCHEMA)})"
            )
        spec = SCHEMA[section].get(key)
        if spec is None:
            raise ConfigError(
                f"{where}: unknown key {section}.{key}{closest(key, list(SCHEMA[section]))}"
            )
        value: Any = raw
        if spec.kind in (int, float):
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(
                    f"{where}: {section}.{key} = {raw!r} is not allowed: expected {spec.describe()}"
                ) from None
        elif spec.kind is bool:
            value = raw.lower() in ("1", "true", "yes", "on")
        out.setdefault(section, {})[key] = check_value(where, f"{section}.{key}", value, spec)
    return out


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Later layers win, key by key."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, table in layer.items():
            out.setdefault(section, {}).update(table)
    return out
