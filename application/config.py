"""Configuration from one source: one attrs class per TOML section. Its fields, types and
validators give the file's keys, the SWICTATION_* variables and the command-line choices.

Adding a key is adding a field to its section class (and a line to examples/config.toml,
which a test keeps complete). The [thresholds] and [guard] sections are the domain's own
`Thresholds` and `Tuning` values, flattened into the section beside a preset and a policy.
"""

from __future__ import annotations

import difflib
import enum
import logging
import math
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from attrs import field, validators

from swictation.domain.model import PRESETS, Thresholds, Tuning
from swictation.domain.segmenter import VadSettings
from swictation.ports.tenants import TENANT_KINDS, TENANT_KINDS_NAMING_MODELS

log = logging.getLogger("swictation.config")

ENV_PREFIX = "SWICTATION_"
ENV_NOT_SETTINGS = frozenset({"SWICTATION_CONFIG"})


class ConfigError(ValueError):
    """A configuration problem, worded for the user in one line."""


# -- choices ---------------------------------------------------------------------------------


class ProbeKind(enum.StrEnum):
    NVML = "nvml"
    TORCH = "torch"
    TRACE = "trace"  # a recorded trace replayed as the GPU
    HOST = "host"  # system RAM instead of a GPU
    NONE = "none"


class SttEngine(enum.StrEnum):
    WHISPER = "whisper"
    NEMO = "nemo"


class Device(enum.StrEnum):
    AUTO = "auto"
    CUDA = "cuda"
    CPU = "cpu"


class OutputKind(enum.StrEnum):
    STDOUT = "stdout"
    FILE = "file"
    WTYPE = "wtype"
    XDOTOOL = "xdotool"


class OnShutdown(enum.StrEnum):
    CPU = "cpu"  # give up the GPU (a re-execution without CUDA) and go on dictating
    EXIT = "exit"  # the original behaviour: an orderly stop with exit status 3


class PolicyName(enum.StrEnum):
    DEFAULT = "default"
    LEGACY = "legacy"


TenantKind = enum.StrEnum("TenantKind", {kind.upper(): kind for kind in TENANT_KINDS})  # type: ignore[misc]


def choices(kind: type[enum.StrEnum]) -> tuple[str, ...]:
    """An enum's values, for argparse."""
    return tuple(member.value for member in kind)


def _between(low: float, high: float) -> Any:
    return validators.and_(validators.ge(low), validators.le(high))


# -- the sections ----------------------------------------------------------------------------

_FLAT = "swictation.flat"  # metadata: this field's own fields are keys of the section itself


@attrs.frozen
class DaemonSection:
    probe: ProbeKind = ProbeKind.NVML
    gpu: str = "0"
    trace: str | None = None
    events: str | None = None
    spool_dir: str | None = None
    report_interval_s: float = field(default=60.0, validator=_between(1.0, 86400.0))
    drain_timeout_s: float = field(default=10.0, validator=_between(0.0, 3600.0))
    # Publish the memory level on the D-Bus session bus (where one exists and jeepney is
    # installed): PressureChanged signals, docs/cooperation.md.
    dbus: bool = True


@attrs.frozen
class AudioSection:
    device: str | None = None


@attrs.frozen
class SttSection:
    engine: SttEngine = SttEngine.WHISPER
    model: str | None = None
    device: Device = Device.AUTO
    language: str = "en"
    beam_size: int = field(default=1, validator=_between(1, 10))
    # whisper: CTranslate2's compute type; auto is float16 on CUDA and int8 on the CPU.
    compute_type: str = field(
        default="auto",
        validator=validators.in_(("auto", "int8", "int8_float16", "float16", "float32")),
    )


@attrs.frozen
class OutputSection:
    kind: OutputKind = OutputKind.STDOUT
    file: str | None = None


@attrs.frozen
class ControlSection:
    socket: str | None = None


def _http_url(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"{attribute.name} must start with http:// or https://, got {value!r}")


@attrs.frozen
class TenantSection:
    """One [[tenants]] table: a co-tenant the guard may ask to release memory."""

    kind: TenantKind
    url: str | None = field(default=None, validator=_http_url)
    priority: int = field(default=0, validator=_between(-1000, 1000))
    models: tuple[str, ...] = ()
    idle_only: bool = True

    def __attrs_post_init__(self) -> None:
        if self.models and self.kind not in TENANT_KINDS_NAMING_MODELS:
            raise ValueError(
                f"models: {self.kind} releases everything at once; models applies to "
                + ", ".join(TENANT_KINDS_NAMING_MODELS)
            )


def _preset_base(own: Mapping[str, Any]) -> Thresholds:
    return PRESETS[own.get("preset", "default")]


@attrs.frozen
class ThresholdsSection:
    """A preset, then each of the domain's `Thresholds` fields overriding it one by one."""

    preset: str = field(default="default", validator=validators.in_(tuple(PRESETS)))
    values: Thresholds = field(factory=Thresholds, metadata={_FLAT: _preset_base})


@attrs.frozen
class GuardSection:
    """The policy, what SHUTDOWN does, and the domain's `Tuning` fields."""

    policy: PolicyName = PolicyName.DEFAULT
    on_shutdown: OnShutdown = OnShutdown.CPU
    # On the CPU after a SHUTDOWN: the card must have room for our models this long before
    # the daemon takes the GPU back.
    gpu_return_s: float = field(default=120.0, validator=_between(1.0, 86400.0))
    # What a CUDA context holds on the card: counted in the room a return needs; under
    # --probe trace it leaves the simulated card in CPU mode.
    cuda_context_mib: float = field(default=300.0, validator=_between(0.0, 65536.0))
    tuning: Tuning = field(factory=Tuning, metadata={_FLAT: lambda _own: Tuning()})


@attrs.frozen
class GuardConfig:
    """What the guard needs: thresholds, pacing and the policy's name."""

    thresholds: Thresholds = attrs.field(factory=Thresholds)
    tuning: Tuning = attrs.field(factory=Tuning)
    policy: PolicyName = PolicyName.DEFAULT


@attrs.frozen
class Settings:
    """The whole configuration file, one attribute per section."""

    daemon: DaemonSection = field(factory=DaemonSection)
    audio: AudioSection = field(factory=AudioSection)
    vad: VadSettings = field(factory=VadSettings)
    stt: SttSection = field(factory=SttSection)
    output: OutputSection = field(factory=OutputSection)
    control: ControlSection = field(factory=ControlSection)
    thresholds: ThresholdsSection = field(factory=ThresholdsSection)
    guard: GuardSection = field(factory=GuardSection)
    # [[tenants]]: an array of tables, not a section of keys.
    tenants: tuple[TenantSection, ...] = ()

    @property
    def guard_config(self) -> GuardConfig:
        return GuardConfig(self.thresholds.values, self.guard.tuning, self.guard.policy)


# -- keys, derived from the classes ----------------------------------------------------------


def _fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    attrs.resolve_types(cls)
    return tuple(attrs.fields(cls))


def _kind(attribute: attrs.Attribute[Any]) -> Any:
    """A field's type (resolved by `_fields`)."""
    return attribute.type


def sections() -> dict[str, type]:
    """Section name -> its class (the [[tenants]] array of tables aside)."""
    return {a.name: _kind(a) for a in _fields(Settings) if attrs.has(_kind(a))}


def section_keys(cls: type) -> dict[str, attrs.Attribute[Any]]:
    """The keys a section accepts: its fields, with a flattened field's own fields in its place."""
    keys: dict[str, attrs.Attribute[Any]] = {}
    for attribute in _fields(cls):
        if _FLAT in attribute.metadata:
            keys.update(section_keys(_kind(attribute)))
        else:
            keys[attribute.name] = attribute
    return keys


def defaults() -> dict[str, dict[str, Any]]:
    """Every key's default, as a TOML file would hold it (None where there is none)."""
    plain = converter.unstructure(Settings())
    return {
        section: {key: plain[section].get(key) for key in section_keys(cls)}
        for section, cls in sections().items()
    }


def _plain_type(kind: Any) -> Any:
    """`float | None` -> float."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        return rest[0] if len(rest) == 1 else kind
    return kind


def _expected(attribute: attrs.Attribute[Any]) -> str:
    """What a key accepts, in words."""
    kind = _plain_type(attribute.type)
    bounds = dict(_bounds(attribute.validator))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        bounds["in"] = tuple(str(m.value) for m in kind)
    words = {bool: "true or false", str: "a non-empty string"}
    if typing.get_origin(kind) is tuple:
        return 'a list of non-empty strings, e.g. ["a", "b"]'
    if typing.get_origin(kind) in (Mapping, dict):
        return "a table of name = number, e.g. { stt = 800 }"
    if "in" in bounds:
        return "one of " + ", ".join(bounds["in"])
    if kind in words:
        return words[kind]
    return _range("a whole number" if kind is int else "a number", bounds)


def _range(noun: str, bounds: Mapping[str, Any]) -> str:
    low_op = next((op for op in (">=", ">") if op in bounds), None)
    high_op = next((op for op in ("<=", "<") if op in bounds), None)
    if low_op and high_op:
        left, right = ("[" if low_op == ">=" else "("), ("]" if high_op == "<=" else ")")
        return f"{noun} in {left}{bounds[low_op]:g}, {bounds[high_op]:g}{right}"
    for op in (low_op, high_op):
        if op:
            return f"{noun} {op} {bounds[op]:g}"
    return noun


def _bounds(validator: Any) -> Iterator[tuple[str, Any]]:
    """(op, bound) of attrs' comparison validators, ("in", options) of `in_`."""
    if validator is None:
        return
    if isinstance(validator, list | tuple):
        for v in validator:
            yield from _bounds(v)
    elif hasattr(validator, "_validators"):
        yield from _bounds(validator._validators)
    elif hasattr(validator, "compare_op"):
        yield validator.compare_op, validator.bound
    elif hasattr(validator, "options"):
        yield "in", tuple(validator.options)
    elif hasattr(validator, "validator"):
        yield from _bounds(validator.validator)
    else:
        yield "own", validator  # a function that words its own message


# -- structuring (cattrs) --------------------------------------------------------------------


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def number(value: Any, _kind: type) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("not a number")
        if not math.isfinite(value):
            raise ValueError("not finite")
        return float(value)

    def whole(value: Any, kind: type) -> int:
        number(value, kind)
        if not float(value).is_integer():
            raise ValueError("not a whole number")
        return int(value)

    def text(value: Any, _kind: type) -> str:
        if not isinstance(value, str) or not value.strip():
            raise TypeError("not a non-empty string")
        return value

    def truth(value: Any, _kind: type) -> bool:
        if not isinstance(value, bool):
            raise TypeError("not true or false")
        return value

    conv.register_structure_hook(float, number)
    conv.register_structure_hook(int, whole)
    conv.register_structure_hook(str, text)
    conv.register_structure_hook(bool, truth)
    conv.register_structure_hook(enum.StrEnum, lambda value, kind: kind(value))

    _register_containers(conv)

    def has_flat(cls: Any) -> bool:
        return attrs.has(cls) and any(_FLAT in a.metadata for a in attrs.fields(cls))

    def structure_flat(table: Mapping[str, Any], cls: type) -> Any:
        own: dict[str, Any] = {}
        rest = dict(table)
        for attribute in _fields(cls):
            if _FLAT in attribute.metadata:
                continue
            if attribute.name in rest:
                own[attribute.name] = conv.structure(rest.pop(attribute.name), _kind(attribute))
        flat = next(a for a in _fields(cls) if _FLAT in a.metadata)
        base = attrs.asdict(flat.metadata[_FLAT](own), recurse=False)
        own[flat.name] = conv.structure({**base, **rest}, _kind(flat))
        return cls(**own)

    def unstructure_flat(value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attribute in _fields(type(value)):
            plain = conv.unstructure(getattr(value, attribute.name))
            if _FLAT in attribute.metadata:
                out.update(plain)
            else:
                out[attribute.name] = plain
        return out

    conv.register_unstructure_hook(enum.StrEnum, lambda member: member.value)
    conv.register_structure_hook_func(has_flat, structure_flat)
    conv.register_unstructure_hook_func(has_flat, unstructure_flat)
    return conv


def _register_containers(conv: cattrs.Converter) -> None:
    """Lists and tables only as lists and tables: cattrs alone would split a string into
    characters or call .items() on a list."""

    def is_list(kind: Any) -> bool:
        args = typing.get_args(kind)
        return typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis

    def listed(value: Any, kind: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise TypeError("not a list")
        item = typing.get_args(kind)[0]
        return tuple(conv.structure(v, item) for v in value)

    def is_table(kind: Any) -> bool:
        return typing.get_origin(kind) in (Mapping, dict)

    def tabled(value: Any, kind: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise TypeError("not a table")
        key, item = typing.get_args(kind)
        return {conv.structure(k, key): conv.structure(v, item) for k, v in value.items()}

    conv.register_structure_hook_func(is_list, listed)
    conv.register_structure_hook_func(is_table, tabled)


converter = _make_converter()


def closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (known: {', '.join(known)})"


def _check_key(
    where: str,
    section: str,
    key: str,
    value: Any,
    keys: Mapping[str, attrs.Attribute[Any]] | None = None,
) -> Any:
    """One key's value converted to its field's type and validated, or a one-line error."""
    keys = section_keys(sections()[section]) if keys is None else keys
    if key not in keys:
        raise ConfigError(f"{where}: unknown key {section}.{key}{closest(key, list(keys))}")
    attribute = keys[key]
    bad = f"{where}: {section}.{key} = {value!r} is not allowed"
    try:
        converted = converter.structure(value, _kind(attribute))
    except Exception:  # a user's value: whatever the converter makes of it is a usage error
        raise ConfigError(f"{bad}: expected {_expected(attribute)}") from None
    try:
        if attribute.validator is not None:
            attribute.validator(None, attribute, converted)
    except (ValueError, TypeError) as error:
        # attrs' own validators say their range in _expected; a domain function says it itself.
        known = all(op != "own" for op, _ in _bounds(attribute.validator))
        reason = f"expected {_expected(attribute)}" if known else str(error)
        raise ConfigError(f"{bad}: {reason}") from None
    return value


def check_sections(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Every section and key of one layer (a file, the flags) checked on its own."""
    known = [*sections(), TENANTS]
    out: dict[str, Any] = {}
    for section, table in data.items():
        if section == TENANTS:
            out[section] = check_tenants(where, table)
            continue
        if section not in known:
            raise ConfigError(f"{where}: unknown section [{section}]{closest(section, known)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [{section}] must be a table of keys")
        out[section] = {key: _check_key(where, section, key, v) for key, v in table.items()}
    return out


TENANTS = "tenants"


def check_tenants(where: str, tables: Any) -> list[dict[str, Any]]:
    """The [[tenants]] tables, each key checked; errors name the table's number and the key."""
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ConfigError(f"{where}: tenants must be [[tenants]] tables, one per co-tenant")
    keys = section_keys(TenantSection)
    out = []
    for number, table in enumerate(tables, 1):
        here = f"{where}: [[tenants]] #{number}"
        for key, value in table.items():
            _check_key(here, TENANTS, key, value, keys)
        if "kind" not in table:
            raise ConfigError(
                f"{here}: tenants.kind is missing: expected {_expected(keys['kind'])}"
            )
        try:
            converter.structure(table, TenantSection)
        except Exception as error:  # the user's tables: any failure is a usage error
            raise ConfigError(f"{here}: tenants.{_first_message(error)}") from None
        out.append(dict(table))
    return out


def build_settings(layers: Mapping[str, Mapping[str, Any]], where: str) -> Settings:
    """The merged layers structured into `Settings`; what one key cannot say (thresholds
    that must rise) becomes one line naming `where`."""
    try:
        return converter.structure(layers, Settings)
    except cattrs.BaseValidationError as error:
        raise ConfigError(f"{where}: {_first_message(error)}") from None
    except Exception as error:  # the user's layers: any failure is a usage error
        raise ConfigError(f"{where}: {error}") from None


def _first_message(error: BaseException) -> str:
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        return f"unknown keys {', '.join(sorted(error.extra_fields))}"
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return _first_message(error.exceptions[0])
    return str(error)


# -- the layers: file, environment, command line --------------------------------------------


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


def _env_names() -> dict[str, tuple[str, str]]:
    return {
        f"{ENV_PREFIX}{section.upper()}_{key.upper()}": (section, key)
        for section, cls in sections().items()
        for key in section_keys(cls)
    }


def _from_text(raw: str, attribute: attrs.Attribute[Any]) -> Any:
    """An environment variable's text as the field's type would come from TOML."""
    kind = _plain_type(attribute.type)
    if kind in (int, float):
        try:
            return float(raw)
        except ValueError:
            return raw
    if typing.get_origin(kind) in (tuple, Mapping, dict):
        # Written as in TOML: SWICTATION_GUARD_WORKING_MIB='{ stt = 800 }'.
        try:
            return tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            return raw
    if kind is bool:
        lowered = raw.strip().lower()
        truth = {"1": True, "true": True, "yes": True, "on": True}
        truth |= {"0": False, "false": False, "no": False, "off": False}
        return truth.get(lowered, raw)
    return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """SWICTATION_<SECTION>_<KEY>=value, e.g. SWICTATION_VAD_MIN_SILENCE_S=0.6. A variable
    that names no key is a warning naming the closest one, and is ignored."""
    names = _env_names()
    out: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        if name not in names:
            match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]}?)" if match else ""
            log.warning("environment %s: not a setting, ignored%s", name, hint)
            continue
        section, key = names[name]
        attribute = section_keys(sections()[section])[key]
        value = _from_text(raw, attribute)
        _check_key(f"environment {name}", section, key, value)
        out.setdefault(section, {})[key] = value
    return out


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Later layers win, key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for section, table in layer.items():
            if isinstance(table, list):
                out[section] = list(table)  # [[tenants]]: a later layer's list replaces
            else:
                out.setdefault(section, {}).update(table)
    return out


def default_config_path(environ: Mapping[str, str]) -> str | None:
    home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    default = Path(home) / "swictation" / "config.toml"
    return str(default) if default.is_file() else None


def load_settings(
    config_path: str | None,
    environ: Mapping[str, str],
    command_line: Mapping[str, Mapping[str, Any]] | None = None,
    default_file: bool = True,
) -> Settings:
    """The configuration file (the XDG one when none is given and `default_file`), then
    SWICTATION_* variables, then the flags; each checked. One-line ConfigError otherwise."""
    path = config_path
    if path is None and default_file:
        path = default_config_path(environ)
    layers = []
    where = "configuration"
    if path is not None:
        layers.append(check_sections(load_toml(path), path))
        where = path
    layers.append(env_overrides(environ))
    layers.append(check_sections(command_line or {}, "command line"))
    return build_settings(merge(*layers), where)


def load_guard_config(path: str | Path | None) -> GuardConfig:
    """The guard's part of a configuration file (every section is still checked)."""
    if path is None:
        return GuardConfig()
    return load_settings(str(path), {}, default_file=False).guard_config


# -- the daemon's settings -------------------------------------------------------------------


class FaultKind(enum.StrEnum):
    OOM = "oom"
    CUDA = "cuda"


@attrs.frozen
class Fault:
    """Rehearsal: the next `count` inferences of `model` raise a CUDA error of `kind`."""

    model: str
    kind: FaultKind
    count: int


def parse_fault(spec: str) -> Fault:
    """'stt:oom:5' -> Fault('stt', OOM, 5); ConfigError otherwise."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[1] not in choices(FaultKind) or not parts[2].isdigit():
        raise ConfigError(f"--inject-fault {spec}: expected MODEL:oom|cuda:COUNT, e.g. stt:oom:5")
    if parts[0] not in ("stt", "vad"):
        raise ConfigError(f"--inject-fault {spec}: unknown model {parts[0]!r} (models: stt, vad)")
    return Fault(parts[0], FaultKind(parts[1]), int(parts[2]))


@attrs.frozen
class DaemonSettings:
    """What the daemon runs with: the configuration, and what only the command line says."""

    config: Settings = field(factory=Settings)
    audio_file: str | None = None
    realtime: bool = False
    faults: tuple[Fault, ...] = ()


def _output_choice(config: Settings, command_line: Mapping[str, Mapping[str, Any]]) -> Settings:
    """`--output-file` alone means `--output file`; `--output file` without a file is a
    usage error found before any model loads."""
    output = config.output
    chosen = command_line.get("output", {}).get("kind")
    if output.file and output.kind == OutputKind.STDOUT and chosen is None:
        config = attrs.evolve(config, output=attrs.evolve(output, kind=OutputKind.FILE))
    if config.output.kind == OutputKind.FILE and not config.output.file:
        raise ConfigError("--output file needs --output-file PATH")
    return config


def resolve_settings(
    command_line: Mapping[str, Mapping[str, Any]],
    config_path: str | None,
    environ: Mapping[str, str],
    audio_file: str | None = None,
    realtime: bool = False,
    faults: tuple[str, ...] = (),
) -> DaemonSettings:
    """The daemon's settings from every layer, and the checks between flags."""
    config = load_settings(config_path, environ, command_line)
    if config.daemon.probe == ProbeKind.TRACE and not config.daemon.trace:
        raise ConfigError("--probe trace needs --trace FILE")
    if realtime and not audio_file:
        raise ConfigError("--realtime needs --audio-file")
    config = _output_choice(config, command_line)
    parsed = tuple(parse_fault(spec) for spec in faults)
    return DaemonSettings(config, audio_file, realtime, parsed)
