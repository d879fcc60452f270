"""The spool: utterances on disk from the moment they are queued until their text is
delivered, so a stop, a crash or a re-execution loses (almost) nothing.

Three kinds of file, named so that they sort in the order they were spoken:
`*.wav`  a whole utterance, written (atomically) when it is queued, removed once delivered;
`*.pcm`  speech still being spoken: raw 16-bit samples appended as they arrive and synced
         to disk about once a second, so SIGKILL or a power cut loses at most the last second;
`*.part` a WAV being written (never left behind: removed on failure and at start).
A spool that cannot be written falls back to a private directory in `$XDG_RUNTIME_DIR` (or the
system temp directory); a file that cannot be read is skipped, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from swictation.adapters.audio_file import AudioFileError, load_mono_16k, save_wav
from swictation.adapters.whole_write import append_whole
from swictation.domain.segmenter import SAMPLE_RATE
from swictation.ports import spool as port

log = logging.getLogger("swictation.spool")
SYNC_EVERY_S = 1.0
LINE_OPEN = "line-open"  # the output is in the middle of a line (words typed early)


def default_spool_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "swictation" / "spool"


def fallback_spool_dir() -> Path:
    """A private (0700) directory of this user's: `$XDG_RUNTIME_DIR/swictation/spool`, or
    the system temp directory's `swictation-UID/spool`."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "swictation" / "spool"
    return Path(tempfile.gettempdir()) / f"swictation-{os.getuid()}" / "spool"


def _pcm16(samples: Any) -> bytes:
    import numpy as np

    clipped = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    return bytes((clipped * 32767.0).astype("<i2").tobytes())


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: not a directory")


class OpenUtterance(port.OpenUtterance):
    """Speech still being spoken, appended to a `.pcm` file; synced about once a second."""

    def __init__(self, path: Path, start_sample: int) -> None:
        self.path = path
        self.start_sample = start_sample
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._synced = time.monotonic()
        self.bytes = 0

    def append(self, samples: Any) -> None:
        if self._fd is None:
            return
        data = _pcm16(samples)
        append_whole(self._fd, data, self.bytes)
        self.bytes += len(data)
        now = time.monotonic()
        if now - self._synced >= SYNC_EVERY_S:
            os.fsync(self._fd)
            self._synced = now

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)

    def split(self, at_sample: int, path: Path) -> OpenUtterance:
        """The tail is written and synced to the new file before this one is cut short and
        synced, so a crash in between repeats a moment of audio rather than losing it."""
        if self._fd is None:
            raise OSError(f"{self.path}: already closed")
        cut = min(self.bytes, max(0, (at_sample - self.start_sample) * 2))
        with self.path.open("rb") as file:
            file.seek(cut)
            tail = file.read(self.bytes - cut)
        after = OpenUtterance(path, at_sample)
        try:
            if tail:
                assert after._fd is not None
                append_whole(after._fd, tail, 0)
                after.bytes = len(tail)
            assert after._fd is not None
            os.fsync(after._fd)
        except OSError:
            after.discard()
            raise
        os.ftruncate(self._fd, cut)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        self.bytes = cut
        return after


class Spool(port.Spool):
    """A directory of WAV and `.pcm` files, with a private fallback directory."""

    def __init__(
        self, directory: str | Path | None = None, fallback: str | Path | None = None
    ) -> None:
        self.directory = Path(directory) if directory else default_spool_dir()
        self.fallback = Path(fallback) if fallback else fallback_spool_dir()
        self._count = 0
        self._lock = threading.Lock()
        self._skipped: set[Path] = set()
        self._warned_fallback = False
        self.lost_s = 0.0  # audio that could be written nowhere
        self.written_bytes = 0

    # -- writing -------------------------------------------------------------------------------

    def _name(self, suffix: str) -> str:
        with self._lock:
            self._count += 1
            count = self._count
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
        millis = int(time.time() * 1000) % 1000
        return f"{stamp}.{millis:03d}-{os.getpid()}-{count:06d}{suffix}"

    def _targets(self) -> Iterator[Path]:
        yield self.directory
        if self.fallback != self.directory:
            yield self.fallback

    def put(self, samples: Any, label: str = "", twin: Path | None = None) -> Path | None:
        """Writes one utterance as WAV; the spool, else the fallback directory; None (and the
        seconds counted as lost, said in one line) when nothing can be written. `twin` is the
        `.pcm` file the utterance was written ahead to: the WAV takes its name, so a crash
        between writing one and removing the other leaves a pair that is read once."""
        name = f"{twin.stem}{label}.wav" if twin is not None else self._name(f"{label}.wav")
        errors = []
        for directory in self._targets():
            path = directory / name
            try:
                _private_dir(directory)
                save_wav(path, samples)
            except (OSError, RuntimeError) as error:
                errors.append(f"{directory}: {getattr(error, 'strerror', None) or error}")
                continue
            if directory != self.directory and not self._warned_fallback:
                self._warned_fallback = True
                log.warning(
                    "spool %s cannot be written (%s); spooling to %s instead",
                    self.directory,
                    errors[0],
                    directory,
                )
            self.written_bytes += path.stat().st_size
            return path
        seconds = len(samples) / SAMPLE_RATE
        self.lost_s += seconds
        log.error(
            "%.1f s of audio lost: it could be spooled nowhere (%s)", seconds, "; ".join(errors)
        )
        return None

    def open(self, start_sample: int) -> OpenUtterance | None:
        """A `.pcm` file for speech in progress; None when no directory can be written (the
        speech is still kept in memory)."""
        name = self._name(".pcm")
        for directory in self._targets():
            try:
                _private_dir(directory)
                return OpenUtterance(directory / name, start_sample)
            except OSError:
                continue
        return None

    def split(
        self, opened: port.OpenUtterance, at_sample: int
    ) -> tuple[Path, OpenUtterance] | None:
        try:
            after = opened.split(at_sample, opened.path.parent / self._name(".pcm"))
        except OSError as error:
            log.warning(
                "cannot split %s (%s); its typed words are spooled apart", opened.path, error
            )
            return None
        assert isinstance(after, OpenUtterance)
        return opened.path, after

    # -- reading -----------------------------------------------------------------------------

    def backlog(self) -> list[Path]:
        """Files left by earlier runs, oldest first (names only: nothing is loaded). Stale
        `.part` files are removed where the directory allows."""
        found: list[Path] = []
        for directory in self._targets():
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.name.endswith(".part"):
                    with contextlib.suppress(OSError):
                        path.unlink()
                elif entry.name.endswith((".wav", ".pcm")) and path not in self._skipped:
                    found.append(path)
        whole = {p.stem for p in found if p.suffix == ".wav"}
        for twin in [p for p in found if p.suffix == ".pcm" and p.stem in whole]:
            # Speech already written whole: the partial copy is left over from a crash.
            found.remove(twin)
            with contextlib.suppress(OSError):
                twin.unlink()
        return sorted(found, key=lambda p: p.name)

    def pending(self) -> list[Path]:
        return self.backlog()

    @staticmethod
    def seconds(path: Path) -> float:
        """About how much audio a spooled file holds, from its size (nothing is read): 16-bit
        mono at 16 kHz, as the spool writes both kinds."""
        try:
            size = path.stat().st_size
        except OSError:
            return 0.0
        header = 44 if path.suffix == ".wav" else 0
        return max(0, size - header) / (2 * SAMPLE_RATE)

    def load(self, path: Path) -> Any | None:
        """The samples of one spooled file; None for a file that cannot be read (moved aside
        as `.unreadable` where possible, otherwise remembered and skipped)."""
        try:
            if path.suffix == ".pcm":
                return _load_pcm(path)
            return load_mono_16k(path)
        except (AudioFileError, OSError, ValueError) as error:
            self._skipped.add(path)
            try:
                path.rename(path.with_suffix(".unreadable"))
                log.error("cannot read spooled audio %s (%s); moved aside", path, error)
            except OSError:
                log.error("cannot read spooled audio %s (%s); skipped", path, error)
            return None

    def line_open(self, is_open: bool) -> None:
        marker = self.directory / LINE_OPEN
        try:
            if is_open:
                _private_dir(self.directory)
                marker.touch()
            else:
                marker.unlink(missing_ok=True)
        except OSError as error:  # at worst a restart glues its first words to the line
            log.warning("cannot %s %s (%s)", "write" if is_open else "remove", marker, error)

    def was_line_open(self) -> bool:
        return (self.directory / LINE_OPEN).exists()

    def done(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            # A read-only spool: remembered so it is not transcribed again in this run.
            self._skipped.add(path)
            log.error("cannot remove delivered spool file %s (%s)", path, error.strerror)


def _load_pcm(path: Path) -> Any:
    import numpy as np

    raw = np.fromfile(path, dtype="<i2")
    return (raw.astype(np.float32) / 32768.0).astype(np.float32)
