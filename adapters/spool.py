"""The spool: audio that could not be transcribed before a stop, kept for the next start."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from swictation.adapters.audio_file import AudioFileError, load_mono_16k, save_wav
from swictation.domain.segmenter import SAMPLE_RATE

log = logging.getLogger("swictation.spool")


def default_spool_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "swictation" / "spool"


class Spool:
    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else default_spool_dir()
        self._count = 0

    def put(self, samples: Any, label: str = "") -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._count += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._count:04d}{label}.wav"
        path = self.directory / name
        save_wav(path, samples)
        log.warning("spooled %.1f s of unprocessed audio to %s", len(samples) / SAMPLE_RATE, path)
        return path

    def pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.wav"))

    def load(self, path: Path) -> Any | None:
        try:
            return load_mono_16k(path)
        except AudioFileError as error:
            log.error("cannot read spooled audio: %s; moved aside", error)
            path.rename(path.with_suffix(".unreadable"))
            return None

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)
