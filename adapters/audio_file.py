"""Audio files (WAV, FLAC, OGG; any rate and channel count) as a 16 kHz mono source."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from swictation.domain.segmenter import SAMPLE_RATE
from swictation.ports import AudioBlock, AudioSource

RATE = SAMPLE_RATE
BLOCK = 512  # 32 ms at 16 kHz: the block Silero VAD takes


class AudioFileError(ValueError):
    """A file that cannot be used as audio, said in one line."""


def load_mono_16k(path: str | Path) -> Any:
    """The whole file as float32 mono at 16 kHz (averaged channels, soxr's VHQ resampler)."""
    import numpy as np
    import soundfile
    import soxr

    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such audio file")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioFileError(f"{path}: not a readable audio file ({error})") from None
    if not np.isfinite(samples).all():
        raise AudioFileError(f"{path}: not a readable audio file (NaN or Inf samples)")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="VHQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


class FileAudioSource(AudioSource):
    """Yields 32 ms blocks of a file; `realtime` paces them as a microphone would.

    `start_sample` resumes a file that an earlier process of the daemon heard up to there (a
    re-execution): reading begins at that sample, and the blocks' times count from it, as a
    microphone's stream begins at 0 in each process."""

    def __init__(
        self,
        path: str | Path,
        realtime: bool = False,
        block: int = BLOCK,
        start_sample: int = 0,
    ) -> None:
        self._path = Path(path)
        self._samples = load_mono_16k(path)
        self._realtime = realtime
        self._block = block
        self._closed = threading.Event()
        self._origin = max(0, min(int(start_sample), len(self._samples)))
        self._next = self._origin  # a restarted capture goes on from here, never from the start

    @property
    def position(self) -> int:
        """The next sample of the file to be read."""
        return min(self._next, len(self._samples))

    @property
    def duration_s(self) -> float:
        return len(self._samples) / RATE

    def blocks(self) -> Iterator[AudioBlock]:
        import numpy as np

        samples = self._samples
        origin = self._origin
        began = time.monotonic() - (self._next - origin) / RATE
        for start in range(self._next, len(samples), self._block):
            if self._closed.is_set():
                return
            self._next = start + self._block
            chunk = samples[start : start + self._block]
            if len(chunk) < self._block:
                chunk = np.concatenate([chunk, np.zeros(self._block - len(chunk), np.float32)])
            if self._realtime:
                due = began + (start - origin + self._block) / RATE
                if self._closed.wait(max(0.0, due - time.monotonic())):
                    return
            yield AudioBlock((start - origin) / RATE, chunk, RATE)

    def close(self) -> None:
        self._closed.set()

    def describe(self) -> str:
        resumed = f", from {self._origin / RATE:.2f} s" if self._origin else ""
        return f"{self._path} ({self.duration_s:.1f} s{resumed})"


def save_wav(path: str | Path, samples: Any, rate: int = RATE) -> None:
    """Writes float32 mono as 16-bit WAV, atomically (a partial file never appears, and
    none is left behind when the disk is full) and synced to disk."""
    import soundfile

    path = Path(path)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype="PCM_16", format="WAV")
    data = buffer.getvalue()
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("wb", buffering=0) as handle:
            view = memoryview(data)
            while view:
                written = handle.write(view)
                if not written:
                    raise OSError(28, "No space left on device")
                view = view[written:]
            os.fsync(handle.fileno())
        partial.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
