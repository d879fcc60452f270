"""Reading recorded VRAM traces: nvidia-smi CSV in its many shapes, and the project's JSONL."""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import itertools
import json
import logging
import math
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, overload

import attrs

from swictation.domain.busy import utterance_busy
from swictation.domain.model import MemorySample, ProbeUnavailable
from swictation.domain.segmenter import VadSettings
from swictation.ports import GpuProbe

_UNITS = {
    "b": 1 / 2**20,
    "kib": 1 / 1024,
    "mib": 1.0,
    "gib": 1024.0,
    "tib": 1024.0**2,
    "kb": 1e3 / 2**20,
    "mb": 1e6 / 2**20,
    "gb": 1e9 / 2**20,
    "tb": 1e12 / 2**20,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_INF = math.inf
log = logging.getLogger("swictation.traces")
_NOT_AVAILABLE = ("[n/a]", "n/a", "[not supported]", "not supported")


class TraceError(Exception):
    """A trace that cannot be read, said in one line: file, line and what was expected."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.line = line


@attrs.frozen
class Trace:
    path: str
    format: str
    # Compact columns (a 10-million-row file stays in memory): float64 times from the start,
    # float32 memory figures, and the card's size stored once while it does not change.
    times: Sequence[float]
    used_mib: Sequence[float]
    total_mib: Sequence[float]
    own_mib: Sequence[float] | None = None
    gpu: str = "0"
    gpus: tuple[str, ...] = ("0",)
    models: tuple[tuple[str, float], ...] = ()
    # (start, end) seconds from the trace start while speech was in flight, merged and in
    # order: what a flight recording's guard saw at each sample (or, in older recordings,
    # its utterance events held by the VAD's rule).
    busy: tuple[tuple[float, float], ...] = ()

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration_s(self) -> float:
        return self.times[-1] - self.times[0] if self.times else 0.0


def parse_size_mib(text: str) -> float:
    """'3600MiB', '1.5GiB', '2GB', '512' (MiB) -> MiB; ValueError on anything else."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 3600MiB or 1.5GiB")
    number, unit = float(match.group(1)), match.group(2).lower() or "mib"
    if unit not in _UNITS:
        raise ValueError(f"{text!r}: unknown unit {match.group(2)!r} (use MiB, GiB, MB or GB)")
    return number * _UNITS[unit]


def normalise(name: str) -> str:
    """'memory.used [MiB]' -> 'memory.used'."""
    return name.split("[", 1)[0].strip().lower()


def _memory(text: str) -> float:
    try:
        return float(text[:-4]) if text.endswith(" MiB") else float(text)
    except ValueError:
        pass
    if text.strip().lower() in _NOT_AVAILABLE:
        raise ValueError(
            f"memory reads {text.strip()!r}: this GPU reports no dedicated memory "
            "(unified-memory systems such as Jetson or Grace), so it cannot be replayed"
        )
    try:
        return parse_size_mib(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a memory figure like '845 MiB' or '845'") from None


class _Stamps:
    """nvidia-smi's 'YYYY/MM/DD HH:MM:SS.mmm' (or ISO, or plain seconds) -> seconds."""

    def __init__(self) -> None:
        self._days: dict[str, float] = {}
        # 'YYYY/MM/DD HH:MM' -> seconds, for the reader's fast path.
        self.minutes: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        if len(text) >= 19 and text[10] == " " and text[13] == ":" and text[16] == ":":
            day = self._days.get(text[:10])
            if day is None:
                day = self._day(text[:10])
            hour, minute = int(text[11:13]), int(text[14:16])
            seconds = float(text[17:])
            if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= seconds < 61):
                raise ValueError(f"timestamp {text!r} has no such time of day")
            base = day + hour * 3600 + minute * 60
            if len(self.minutes) < 100_000:
                self.minutes[text[:16]] = base
            return base + seconds
        try:
            return float(text)
        except ValueError:
            pass
        try:
            stamp = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"timestamp {text!r} is neither nvidia-smi's 'YYYY/MM/DD HH:MM:SS.mmm' nor seconds"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()

    def _day(self, text: str) -> float:
        try:
            day = dt.datetime.strptime(text.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=dt.UTC)
        except ValueError:
            raise ValueError(f"timestamp date {text!r} is not YYYY/MM/DD") from None
        self._days[text] = day.timestamp()
        return self._days[text]


MAX_LINE = 1 << 20  # 1 MiB: no trace line comes near it; a longer one is not a trace
# A field may be as long as a line: the line's own limit speaks first, naming the line.
csv.field_size_limit(MAX_LINE + 1)


class _Lines:
    """The file's lines, each at most MAX_LINE characters (a longer one is a TraceError
    naming it), remembering whether the last one was cut off (no newline at the end).

    With `units` (CSV), a cut-off last line whose last field lost the unit the line before
    carries ('8192 MiB' cut to '81' still reads as a number) is not handed out: `torn` names
    it."""

    def __init__(self, path: Path, handle: TextIO, units: bool = False) -> None:
        self._path = path
        self._handle = handle
        self._units = units
        self.count = 0
        self.cut = False
        self.done = False
        self.torn: int | None = None

    def __iter__(self) -> Iterator[str]:
        readline = self._handle.readline
        previous = ""
        while True:
            line = readline(MAX_LINE + 1)
            if not line:
                self.done = True
                return
            self.count += 1
            if len(line) > MAX_LINE and not line.endswith("\n"):
                raise TraceError(
                    self._path,
                    self.count,
                    f"a line longer than {MAX_LINE // 1024} KiB; not a trace",
                )
            if not line.endswith("\n"):
                self.cut = True
                unit = _unit(previous) if self._units else None
                if unit and _unit(line) != unit:
                    self.torn = self.count
                    self.done = True
                    return
            previous = line
            yield line

    def at_cut_end(self, line: int | None) -> bool:
        """Whether `line` is the last one and was cut off (a recording stopped mid-write)."""
        return self.cut and line == self.count


def _unit(line: str) -> str | None:
    """The unit after the number in a CSV line's last field ('MiB' in '..., 8192 MiB'; ''
    for a bare number); None where that field is not a number (a header, '[N/A]')."""
    field = line.rsplit(",", 1)[-1].strip().strip('"').strip()
    if not field[:1].isdigit():
        return None
    return field.lstrip("0123456789.").strip()


TORN = "the last line is cut off; skipped"
TORN_BEFORE_RESTART = "the last line before a restart is cut off; skipped"


class Totals(Sequence[float]):
    """The card's size per row: one number while it stays the same (it nearly always does),
    an array of them once it changes."""

    __slots__ = ("_count", "_value", "_values")

    def __init__(self) -> None:
        self._value = 0.0
        self._count = 0
        self._values: array[float] | None = None

    def append(self, value: float) -> None:
        if self._values is not None:
            self._values.append(value)
        elif self._count == 0 or value == self._value:
            self._value = value
            self._count += 1
        else:
            self._values = array("f", [self._value]) * self._count
            self._values.append(value)

    def __len__(self) -> int:
        return self._count if self._values is None else len(self._values)

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...

    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if self._values is not None:
            return self._values[index]
        if isinstance(index, slice):
            return [self._value] * len(range(*index.indices(self._count)))
        if not -self._count <= index < self._count:
            raise IndexError("row out of range")
        return self._value


def _columns() -> tuple[array[float], array[float], Totals]:
    return array("d"), array("f"), Totals()


def sniff(path: Path) -> str:
    """'jsonl' or 'csv', from the first bytes; TraceError for empty or binary files."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise TraceError(path, None, "no such file") from None
    except IsADirectoryError:
        raise TraceError(path, None, "is a directory, expected a trace file") from None
    except PermissionError:
        raise TraceError(path, None, "permission denied") from None
    head = head.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not content
    if not head.strip():
        raise TraceError(path, None, "the file is empty; expected nvidia-smi CSV or JSONL")
    if b"\x00" in head:
        raise TraceError(
            path, None, "binary data, not a trace; expected nvidia-smi CSV or JSONL text"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:
            raise TraceError(
                path,
                head[: error.start].count(b"\n") + 1,
                "not UTF-8 text; expected nvidia-smi CSV or JSONL",
            ) from None
    return "jsonl" if head.lstrip().startswith(b"{") else "csv"


def read_trace(
    path: str | Path,
    fmt: str = "auto",
    gpu: str | None = None,
    total_mib: float | None = None,
    columns: Sequence[str] | None = None,
    notice: Callable[[str], None] | None = None,
    vad: VadSettings | None = None,
    warn: Callable[[str], None] | None = None,
) -> Trace:
    """`notice` hears what the reader chose (which GPU); `warn` (default: the log) hears a
    torn line skipped: a recording's last line, or a run's before a restart, cut off by a
    crash. `vad`: the VAD settings the recording's daemon ran with, for a recording whose
    samples do not say when speech was in flight (its utterances are held by their rule)."""
    path = Path(path)
    warn = warn or log.warning
    detected = sniff(path)
    kind = detected if fmt == "auto" else fmt
    if kind == "nvidia-smi":
        kind = "csv"
    if total_mib is not None and not total_mib > 0:
        raise TraceError(path, None, f"--total-mib must be > 0, got {total_mib:g}")
    try:
        if kind == "jsonl":
            trace = _read_jsonl(path, gpu, total_mib, warn, vad)
        else:
            trace = _read_csv(path, gpu, total_mib, columns, warn)
    except csv.Error as error:
        raise TraceError(path, None, f"not CSV: {error}") from None
    except UnicodeDecodeError:
        raise TraceError(path, None, "not UTF-8 text; expected nvidia-smi CSV or JSONL") from None
    if not trace.times:
        raise TraceError(path, None, f"no samples for GPU {trace.gpu} in this file")
    if notice is not None and len(trace.gpus) > 1 and gpu is None:
        notice(
            f"{path} holds GPUs {', '.join(trace.gpus)}; replaying GPU {trace.gpu} "
            "(choose with --gpu N)"
        )
    return trace


def _gpu_key_index(names: list[str]) -> int | None:
    for key in ("index", "uuid", "pci.bus_id"):
        if key in names:
            return names.index(key)
    return None


def _read_csv(
    path: Path,
    gpu: str | None,
    total_override: float | None,
    columns: Sequence[str] | None,
    warn: Callable[[str], None],
) -> Trace:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        lines = _Lines(path, handle, units=True)
        reader = csv.reader(lines, skipinitialspace=True)
        rows: Iterator[list[str]] = reader
        header: list[str] | None = None
        if columns:
            names = [normalise(c) for c in columns]
            header, first_row = _own_header(reader, names)
            if first_row is not None:
                rows = itertools.chain([first_row], reader)
        else:
            first = next((r for r in rows if r and any(f.strip() for f in r)), None)
            if first is None:
                raise TraceError(path, None, "the file is empty; expected nvidia-smi CSV")
            names = [normalise(f) for f in first]
            if not {"memory.used", "memory.total", "memory.free", "timestamp"} & set(names):
                raise TraceError(
                    path,
                    reader.line_num,
                    "no header naming the columns (expected nvidia-smi fields such as "
                    "timestamp, memory.used, memory.total); for a headerless file give "
                    "--columns, e.g. --columns timestamp,memory.used,memory.total",
                )
            header = first
        try:
            return _csv_rows(path, reader, rows, names, header, gpu, total_override, lines, warn)
        except csv.Error as error:
            raise TraceError(path, reader.line_num or None, f"not CSV: {error}") from None


def _own_header(reader: Any, names: list[str]) -> tuple[list[str] | None, list[str] | None]:
    """With --columns, a first line that is not data is the file's own header: skipped (its
    names replaced by the given ones). Returns (header, None), or (None, the first row)."""
    first: list[str] | None = next(reader, None)
    if first is None:
        return None, None
    i_time = names.index("timestamp") if "timestamp" in names else None
    try:
        if i_time is None or i_time >= len(first):
            raise ValueError("no timestamp")
        _Stamps()(first[i_time])
    except ValueError:
        return first, None
    return None, first


def _csv_rows(  # noqa: PLR0912, PLR0915 -- the hot loop over every row (864,000 in a day at 10 Hz), kept inline with its fast path
    path: Path,
    reader: Any,
    rows: Iterator[list[str]],
    names: list[str],
    header: list[str] | None,
    gpu: str | None,
    total_override: float | None,
    lines: _Lines,
    warn: Callable[[str], None],
) -> Trace:
    def col(name: str) -> int | None:
        return names.index(name) if name in names else None

    i_time, i_used, i_total, i_free = (
        col("timestamp"),
        col("memory.used"),
        col("memory.total"),
        col("memory.free"),
    )
    i_gpu = _gpu_key_index(names)
    where = f"columns {', '.join(names)}"
    if i_time is None:
        raise TraceError(
            path,
            reader.line_num or None,
            f"no timestamp column ({where}); add timestamp to --query-gpu",
        )
    if i_used is None and (i_free is None or (i_total is None and total_override is None)):
        raise TraceError(
            path,
            reader.line_num or None,
            f"no memory columns ({where}); expected memory.used (or memory.free with memory.total)",
        )
    if i_total is None and total_override is None:
        raise TraceError(
            path,
            reader.line_num or None,
            f"no memory.total column ({where}); give the card's size with --total-mib N",
        )
    width = len(names)
    stamps = _Stamps()
    minutes = stamps.minutes
    times, used, total = _columns()
    gpus: list[str] = []
    seen: set[str] = set()
    chosen = gpu
    chosen_raw: str | None = None
    aliases: dict[str, str] = {}
    by_index = i_gpu is not None and names[i_gpu] == "index"
    last_t = -math.inf
    last_total_text: str | None = None
    size = 0.0
    header_key = [f.strip() for f in header] if header else None

    def repeated_header(row: list[str]) -> bool:
        # Logging loops often print the header again before every row.
        return header_key is not None and [f.strip() for f in row] == header_key

    fast = i_used is not None and i_total is not None and total_override is None
    assert i_time is not None  # checked above; said again for the type checker
    # Columns the fast path may use only when `fast` says they exist.
    c_total, c_used, c_free = (-1 if c is None else c for c in (i_total, i_used, i_free))
    try:
        # The fast path handles the common row (same GPU, same total, a cached minute) inline;
        # anything else goes through the careful path, which also fills the caches.
        for row in rows:
            if fast and len(row) == width:
                try:
                    stamp = row[i_time]
                    if (
                        stamp[16] == ":"
                        and row[c_total] == last_total_text
                        and (i_gpu is None or row[i_gpu] == chosen_raw)
                    ):
                        t = minutes[stamp[:16]] + float(stamp[17:])
                        text = row[c_used]
                        value = float(text[:-4]) if text.endswith(" MiB") else float(text)
                        if 0 <= value < _INF and last_t <= t < _INF:
                            last_t = t
                            times.append(t)
                            used.append(value)
                            total.append(size)
                            continue
                except (KeyError, ValueError, IndexError):
                    pass
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                if repeated_header(row):
                    continue
                raise TraceError(
                    path,
                    reader.line_num,
                    f"expected {width} fields ({', '.join(names)}), found {len(row)}",
                )
            if i_gpu is not None:
                raw = row[i_gpu]
                key = raw.strip()
                if key not in seen:
                    if repeated_header(row):
                        continue
                    seen.add(key)
                    # A UUID or bus id is named by its order of appearance, as nvidia-smi counts.
                    gpus.append(key if by_index else str(len(gpus)))
                    aliases[key] = gpus[-1]
                key = aliases[key]
                if chosen is None:
                    chosen = key
                if key != chosen:
                    continue
                chosen_raw = raw
            try:
                t = stamps(row[i_time])
                if total_override is not None:
                    size = total_override
                else:
                    assert i_total is not None
                    size = _memory(row[i_total])
                    last_total_text = row[i_total]
                value = _memory(row[c_used]) if i_used is not None else size - _memory(row[c_free])
            except ValueError as error:
                if repeated_header(row):
                    continue
                raise TraceError(path, reader.line_num, str(error)) from None
            for label, number in (("timestamp", t), ("memory.total", size), ("memory.used", value)):
                if not math.isfinite(number):
                    raise TraceError(
                        path, reader.line_num, f"{label} must be a finite number, got {number}"
                    )
            if not size > 0:
                raise TraceError(path, reader.line_num, f"memory.total must be > 0, got {size:g}")
            if value < 0:
                raise TraceError(path, reader.line_num, f"memory.used must be >= 0, got {value:g}")
            if t < last_t:
                raise TraceError(path, reader.line_num, "timestamps go backwards")
            last_t = t
            times.append(t)
            used.append(value)
            total.append(size)
    except TraceError as error:
        if not lines.at_cut_end(error.line):
            raise
        warn(f"{path}:{error.line}: {TORN}")
    if lines.torn is not None:
        warn(f"{path}:{lines.torn}: {TORN}")
    return _finish(path, "nvidia-smi", times, used, total, None, gpu, chosen, gpus, ())


def _finish(
    path: Path,
    fmt: str,
    times: array[float],
    used: Sequence[float],
    total: Sequence[float],
    own: Sequence[float] | None,
    asked: str | None,
    chosen: str | None,
    gpus: list[str],
    models: tuple[tuple[str, float], ...],
    busy: list[tuple[float, float]] | None = None,
) -> Trace:
    if asked is not None and gpus and asked not in gpus:
        raise TraceError(
            path, None, f"no GPU {asked} in this trace (it holds GPUs {', '.join(gpus)})"
        )
    start = times[0] if times else 0.0
    for i in range(len(times)):  # in place: a copy of ten million times would double them
        times[i] -= start
    merged: list[tuple[float, float]] = []
    for begin, end in sorted(busy or ()):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return Trace(
        str(path),
        fmt,
        times,
        used,
        total,
        own,
        chosen if chosen is not None else "0",
        tuple(gpus) or ("0",),
        models,
        tuple((b - start, e - start) for b, e in merged),
    )


def _read_jsonl(  # noqa: PLR0912, PLR0915 -- one check per kind of bad line, in reading order
    path: Path,
    gpu: str | None,
    total_override: float | None,
    warn: Callable[[str], None],
    vad: VadSettings | None = None,
) -> Trace:
    times, used, total = _columns()
    own = array("f")
    models: dict[str, float] = {}
    gpus: list[str] = []
    chosen = gpu
    has_own = False
    offset = 0.0
    busy = _BusyRuns(vad or VadSettings())
    with path.open("r", encoding="utf-8-sig") as handle:
        for number, record in _records(path, _Lines(path, handle), warn):
            if not isinstance(record, dict):
                raise TraceError(path, number, "expected a JSON object per line")
            kind = record.get("type", "sample")
            if kind == "start":
                # A flight recorder appended across daemon restarts: each run's times start
                # again from 0, so the next run is laid after the last sample of the one before.
                offset = times[-1] if times else 0.0
                busy.run_ended()
                continue
            if kind == "model":
                models[str(record.get("model"))] = _number(path, number, record, "size_mib")
                continue
            if kind == "utterance":
                busy.utterance(path, number, record, offset)
                continue
            if kind != "sample":
                continue
            key = str(record.get("gpu", "0"))
            if key not in gpus:
                gpus.append(key)
            if chosen is None:
                chosen = key
            if key != chosen:
                continue
            if "used_mib" not in record or ("total_mib" not in record and total_override is None):
                raise TraceError(path, number, "a sample needs t, used_mib and total_mib (MiB)")
            t = _number(path, number, record, "t") + offset
            size = (
                total_override
                if total_override is not None
                else _number(path, number, record, "total_mib")
            )
            value = _number(path, number, record, "used_mib")
            if not size > 0:
                raise TraceError(path, number, f"total_mib must be > 0, got {size:g}")
            if value < 0:
                raise TraceError(path, number, f"used_mib must be >= 0, got {value:g}")
            if times and t < times[-1]:
                raise TraceError(path, number, "timestamps go backwards")
            share = record.get("own_mib")
            if share is not None:
                has_own = True
            times.append(t)
            used.append(value)
            total.append(size)
            own.append(_number(path, number, record, "own_mib") if share is not None else 0.0)
            busy.sample(t, record)
    busy.run_ended()
    if not times and not gpus:
        raise TraceError(
            path,
            None,
            "no samples: expected lines like "
            '{"type": "sample", "t": 0.0, "used_mib": 845, "total_mib": 8192}',
        )
    return _finish(
        path,
        "jsonl",
        times,
        used,
        total,
        own if has_own else None,
        gpu,
        chosen,
        gpus,
        tuple(models.items()),
        busy.spans,
    )


def _records(path: Path, lines: _Lines, warn: Callable[[str], None]) -> Iterator[tuple[int, Any]]:
    """The file's JSON values with their line numbers. A line that is not JSON is an error,
    except the torn last line of a recording (cut off at the end of the file) or of a daemon
    run before its restart (followed by the restart's `start` line, or glued to it by an
    older recorder): skipped with a warning naming it."""
    pending: TraceError | None = None  # a bad line: forgiven only if a restart follows it
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _json_line(path, number, line)
        except TraceError as error:
            if pending is not None:
                raise pending from None
            if lines.at_cut_end(number):
                warn(f"{path}:{number}: {TORN}")
                return
            record = _glued_start(line)
            if record is None:
                pending = error
                continue
            warn(f"{path}:{number}: {TORN_BEFORE_RESTART}")
        else:
            if pending is not None:
                if not _is_start(record):
                    raise pending from None
                warn(f"{path}:{pending.line}: {TORN_BEFORE_RESTART}")
                pending = None
        yield number, record
    if pending is not None:
        raise pending from None


def _is_start(record: Any) -> bool:
    return isinstance(record, dict) and record.get("type") == "start"


def _glued_start(line: str) -> dict[str, Any] | None:
    """The `start` line of a restart appended to the torn end of a line, or None."""
    end = len(line)
    for _ in range(8):
        at = line.rfind("{", 0, end)
        if at <= 0:
            return None
        try:
            record = json.loads(line[at:])
        except (ValueError, RecursionError):
            end = at
            continue
        return record if _is_start(record) else None
    return None


def _json_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise TraceError(path, number, f"not a JSON object: {error.msg}") from None
    except RecursionError:
        raise TraceError(path, number, "JSON nested too deeply; not a trace line") from None
    except ValueError as error:  # an integer of thousands of digits
        raise TraceError(path, number, f"not a trace line: {error}") from None


class _BusyRuns:
    """Where speech was in flight, one daemon run at a time: what its guard saw at each
    sample (`busy`: from that sample to the next), or, in a run recorded before samples
    said so, its utterances held by the VAD's rule."""

    def __init__(self, vad: VadSettings) -> None:
        self._vad = vad
        self.spans: list[tuple[float, float]] = []
        self._flagged = False
        self._from: float | None = None
        self._flags: list[tuple[float, float]] = []
        self._utterances: list[tuple[float, float]] = []

    def sample(self, t: float, record: dict[str, Any]) -> None:
        busy = record.get("busy")
        if not isinstance(busy, bool):
            return
        self._flagged = True
        if busy and self._from is None:
            self._from = t
        elif not busy and self._from is not None:
            self._flags.append((self._from, t))
            self._from = None

    def utterance(self, path: Path, line: int, record: dict[str, Any], offset: float) -> None:
        end = _number(path, line, record, "t") + offset
        spoken = _number(path, line, record, "duration_s")
        waited = _number(path, line, record, "latency_s")
        self._utterances.append(utterance_busy(end, spoken, waited, self._vad))

    def run_ended(self) -> None:
        """A run's end (a restart's `start` line, or the end of the file)."""
        if self._from is not None:  # busy at its last sample: to the end of the run
            self._flags.append((self._from, math.inf))
        self.spans += self._flags if self._flagged else self._utterances
        self._flagged, self._from, self._flags, self._utterances = False, None, [], []


def _number(path: Path, line: int, record: dict[str, Any], key: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceError(path, line, f"{key} must be a number, got {value!r:.40}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        shown = repr(value) if isinstance(value, float) else f"a {len(str(value))}-digit number"
        raise TraceError(path, line, f"{key} must be a finite number, got {shown}")
    return number


class TraceProbe(GpuProbe):
    """Replays a trace against a live clock: the reading at `now - start` is the latest row at
    or before it (the last row holds once the trace ends). A recording's own share is taken
    out, so the models of this run are added by whoever simulates them. `start` (default:
    now) is when the trace began on the clock: a re-executed daemon goes on where it was."""

    def __init__(self, trace: Trace, clock: Any, start: float | None = None) -> None:
        self._trace = trace
        self._clock = clock
        self._start = clock.now() if start is None else start
        own = trace.own_mib
        self._used = (
            [max(0.0, u - o) for u, o in zip(trace.used_mib, own, strict=True)]
            if own is not None
            else trace.used_mib
        )

    def sample(self) -> MemorySample | ProbeUnavailable:
        now = self._clock.now()
        index = max(0, bisect.bisect_right(self._trace.times, now - self._start) - 1)
        return MemorySample(now, self._used[index], self._trace.total_mib[index])

    @property
    def origin(self) -> float:
        """When the trace began, on the clock."""
        return float(self._start)

    def describe(self) -> str:
        return f"trace {self._trace.path} (GPU {self._trace.gpu})"

    def close(self) -> None:
        return None
