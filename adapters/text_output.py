"""Where the words go: stdout, a file, or typed at the cursor (wtype on Wayland, xdotool on X11)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import unicodedata
from pathlib import Path
from typing import TextIO

from swictation.ports import TextOutput


class OutputError(RuntimeError):
    """An output that cannot be used, said in one line."""


def printable(text: str) -> str:
    """Drops control characters (a newline or escape must never reach a typing tool)."""
    return "".join(
        " " if ch in "\t\r\n" else ch
        for ch in text
        if ch in "\t\r\n" or unicodedata.category(ch)[0] != "C"
    ).strip()


class StdoutOutput(TextOutput):
    """One utterance per line on stdout, flushed at once; nothing else is written there."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, text: str) -> None:
        with self._lock:
            self._stream.write(printable(text) + "\n")
            self._stream.flush()


class FileOutput(TextOutput):
    """Appends one utterance per line, flushed per utterance."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        try:
            self._file = self._path.open("a", encoding="utf-8")
        except OSError as error:
            raise OutputError(f"{path}: cannot append to it ({error.strerror})") from None
        self._lock = threading.Lock()

    def emit(self, text: str) -> None:
        with self._lock:
            self._file.write(printable(text) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class TypingOutput(TextOutput):
    """Types at the cursor with an external tool; the text is an argument, never a shell word."""

    def __init__(self, tool: str, prefix: tuple[str, ...]) -> None:
        found = shutil.which(tool)
        if found is None:
            raise OutputError(f"--output {tool}: the {tool} program is not on PATH (install it)")
        self._command = (found, *prefix)
        self._tool = tool

    def emit(self, text: str) -> None:
        words = printable(text)
        if not words:
            return
        done = subprocess.run(
            [*self._command, words + " "],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise OutputError(f"{self._tool} failed ({done.returncode}): {done.stderr.strip()}")


def wtype_output() -> TypingOutput:
    # wtype takes the text as its argument; "--" ends options for text starting with "-".
    return TypingOutput("wtype", ("--",))


def xdotool_output() -> TypingOutput:
    return TypingOutput("xdotool", ("type", "--clearmodifiers", "--delay", "4", "--"))
