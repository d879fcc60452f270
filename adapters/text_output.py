"""Where the words go: stdout, a file, or typed at the cursor (wtype on Wayland, xdotool on X11)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path
from typing import TextIO

from swictation.adapters.whole_write import append_whole
from swictation.ports import TextOutput

log = logging.getLogger("swictation.output")


class OutputError(RuntimeError):
    """An output that cannot be used, said in one line."""


def printable(text: str) -> str:
    """Drops control characters (a newline or escape must never reach a typing tool) and
    trailing spaces; a leading space stays (words typed early go on with " if you can")."""
    return "".join(
        " " if ch in "\t\r\n" else ch
        for ch in text
        if ch in "\t\r\n" or unicodedata.category(ch)[0] != "C"
    ).rstrip()


class StdoutOutput(TextOutput):
    """One utterance per line on stdout, flushed at once (words typed early are written as
    they come, the end of the line with the utterance); nothing else is written there."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, text: str, ends: bool = True) -> None:
        with self._lock:
            try:
                self._stream.write(printable(text) + ("\n" if ends else ""))
                self._stream.flush()
            except (OSError, ValueError):
                self._forget_buffer()
                raise

    def _forget_buffer(self) -> None:
        """A closed pipe: what is buffered can never be written; the text waits upstream
        instead, and the interpreter must not fail flushing it at exit."""
        if self._stream is not sys.stdout:
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        # The same stdout (fd 1) goes on pointing at /dev/null: later text must not be
        # counted as delivered.
        self._stream = _Closed()


class _Closed:
    def write(self, text: str) -> int:
        raise BrokenPipeError("standard output is closed")

    def flush(self) -> None:
        return None


class FileOutput(TextOutput):
    """Appends one utterance per line, flushed per utterance (and per words typed early)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        try:
            self._file = self._path.open("ab", buffering=0)
        except OSError as error:
            raise OutputError(f"{path}: cannot append to it ({error.strerror})") from None
        self._lock = threading.Lock()
        # A run that stopped between words typed early and the end of their line (a crash)
        # left the file mid-line: this run's first text starts a new one.
        self._mid_line = _ends_mid_line(self._path)

    def emit(self, text: str, ends: bool = True) -> None:
        line = printable(text) + ("\n" if ends else "")
        if not line:
            return
        with self._lock:
            if self._mid_line and line.strip():  # an empty end of line just ends that one
                line = "\n" + line
            # One write of the whole line, unbuffered: a full disk fails the call (and the
            # text waits to be retried), never half a line kept in a buffer for later.
            append_whole(self._file.fileno(), line.encode("utf-8"))
            self._mid_line = False

    def close(self) -> None:
        self._file.close()


def _ends_mid_line(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return False
            file.seek(-1, os.SEEK_END)
            return file.read(1) != b"\n"
    except OSError:
        return False


class TypingOutput(TextOutput):
    """Types at the cursor with an external tool; the text is an argument, never a shell word."""

    def __init__(self, tool: str, prefix: tuple[str, ...]) -> None:
        found = shutil.which(tool)
        if found is None:
            raise OutputError(f"--output {tool}: the {tool} program is not on PATH (install it)")
        self._command = (found, *prefix)
        self._tool = tool

    def emit(self, text: str, ends: bool = True) -> None:
        # A space after each utterance; words typed early are followed by the rest of it.
        typed = printable(text) + (" " if ends else "")
        if not typed:
            return
        done = subprocess.run(
            [*self._command, typed],
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


def default_undelivered_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "swictation" / "undelivered.txt"


def append_undelivered(texts: list[str], path: Path | None = None) -> Path | None:
    """Appends text that could not be typed, one utterance per line after a dated header;
    returns the file, or None (the text then goes to the log) when it cannot be written."""
    path = path or default_undelivered_path()
    header = f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: not delivered\n"
    body = "".join(printable(t).strip() + "\n" for t in texts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(header + body)
    except OSError as error:
        log.error("cannot keep undelivered text in %s (%s): %s", path, error.strerror, texts)
        return None
    return path
