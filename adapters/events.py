"""Event sinks: the JSON-lines flight recorder, and one that drops everything."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TextIO

from swictation.domain.model import Event
from swictation.ports import EventSink


class JsonlEventSink(EventSink):
    """One JSON object per line, flushed per event so a crash loses nothing written."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":"))
        with self._lock:
            if self._file is None:
                self._file = self._path.open("w", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class NullEventSink(EventSink):
    def emit(self, event: Event) -> None:
        return None

    def close(self) -> None:
        return None
