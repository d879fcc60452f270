"""Event sinks: the JSON-lines flight recorder, and one that drops everything."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import BinaryIO

from swictation.adapters.whole_write import append_whole
from swictation.domain.model import Event
from swictation.ports import EventSink, SinkHealth

log = logging.getLogger("swictation.events")
MiB = 1024 * 1024


class JsonlEventSink(EventSink):
    """One JSON object per line, flushed per event so a crash loses nothing written.

    With `append` (the daemon's flight recorder) it appends across restarts (the record of a
    SHUTDOWN survives the restart it causes), each run opening with a `start` line, and
    rotates at `max_bytes`: the full file becomes `NAME.1` (the previous `.1` is
    dropped), so at most `keep` files of `max_bytes` are kept. A write that fails drops the
    event, with one warning per failing streak and a count; it never raises.
    """

    def __init__(
        self, path: str | Path, append: bool = False, max_bytes: int = 16 * MiB, keep: int = 2
    ) -> None:
        self._path = Path(path)
        self._append = append
        self._max = max_bytes
        self._keep = max(1, keep)
        self._file: BinaryIO | None = None
        self._size = 0
        self._lock = threading.Lock()
        self._opened = False
        self.dropped = 0
        self.failing = False
        self.last_error: str | None = None

    @property
    def path(self) -> Path:
        return self._path

    def open(self) -> None:
        """Opens the file now, raising OSError, for a caller whose output it is (replay)."""
        with self._lock:
            if self._file is None:
                self._open()

    def emit(self, event: Event) -> None:
        line = (json.dumps(event.to_dict(), separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            try:
                self._write(line)
            except (OSError, ValueError) as error:
                self._dropped(error)
                return
            if self.failing:
                self.failing = False
                log.warning("flight recorder writing again (%d events dropped)", self.dropped)

    def _write(self, line: bytes) -> None:
        if self._file is None:
            self._open()
        self._write_line(line)

    def _open(self) -> None:
        first = self._opened is False
        self._file = self._path.open("ab" if self._append or not first else "wb", buffering=0)
        self._size = self._file.seek(0, os.SEEK_END)
        self._opened = True
        if first and self._append:
            marker = {"t": 0.0, "type": "start", "pid": os.getpid(), "wall": time.time()}
            line = (json.dumps(marker, separators=(",", ":")) + "\n").encode()
            # A crash may have left half a line: this run starts on a line of its own.
            self._write_line(b"\n" + line if self._ends_mid_line() else line)

    def _ends_mid_line(self) -> bool:
        if self._size == 0:
            return False
        try:
            with self._path.open("rb") as tail:
                tail.seek(-1, os.SEEK_END)
                return tail.read(1) != b"\n"
        except OSError:  # cannot be read back (write-only): record on, as before
            return False

    def _write_line(self, line: bytes) -> None:
        assert self._file is not None
        if self._size and self._size + len(line) > self._max:
            self._rotate()
        assert self._file is not None
        append_whole(self._file.fileno(), line)
        self._size += len(line)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        for index in range(self._keep - 1, 0, -1):
            older = self._path.with_name(f"{self._path.name}.{index}")
            newer = (
                self._path if index == 1 else self._path.with_name(f"{self._path.name}.{index - 1}")
            )
            if newer.exists():
                newer.replace(older)
        if self._keep == 1:
            self._path.unlink(missing_ok=True)
        self._file = self._path.open("ab", buffering=0)
        self._size = 0

    def health(self) -> SinkHealth:
        return SinkHealth(self.dropped, self.failing, self.last_error)

    def _dropped(self, error: Exception) -> None:
        self.dropped += 1
        text = getattr(error, "strerror", None) or str(error)
        self.last_error = f"{self._path}: {text}"
        if not self.failing:
            self.failing = True
            log.warning("flight recorder cannot write (%s); dropping events", self.last_error)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None  # reopened (and re-measured) at the next event

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
        if self.dropped:
            log.warning("flight recorder: %d events dropped (%s)", self.dropped, self.last_error)


class NullEventSink(EventSink):
    def emit(self, event: Event) -> None:
        return None

    def close(self) -> None:
        return None
