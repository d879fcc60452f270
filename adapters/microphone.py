"""The microphone through sounddevice (PortAudio): 16 kHz mono float32 in 32 ms blocks."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from swictation.domain.segmenter import SAMPLE_RATE
from swictation.ports import AudioBlock, AudioSource

log = logging.getLogger("swictation.audio")

RATE = SAMPLE_RATE
BLOCK = 512


class MicrophoneError(RuntimeError):
    """No usable microphone, said in one line."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as error:
        raise MicrophoneError(
            f"PortAudio is missing ({error}); install it, e.g. sudo apt install libportaudio2"
        ) from None
    except ImportError:
        raise MicrophoneError(
            "sounddevice is not installed: pip install 'swictation[audio]'"
        ) from None
    return sounddevice


def pick_device(sd: Any, wanted: str | int | None) -> int | None:
    """An input device by index or by (part of) its name; None: the system default."""
    inputs = [(i, d) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    if not inputs:
        raise MicrophoneError("no microphone: PortAudio lists no input device")
    if wanted is None or wanted == "":
        return None
    if isinstance(wanted, int) or str(wanted).isdigit():
        index = int(wanted)
        if index not in [i for i, _ in inputs]:
            names = ", ".join(f"{i}: {d['name']}" for i, d in inputs)
            raise MicrophoneError(f"no input device {index} (inputs: {names})")
        return index
    matches = [i for i, d in inputs if str(wanted).lower() in d["name"].lower()]
    if not matches:
        names = ", ".join(f"{i}: {d['name']}" for i, d in inputs)
        raise MicrophoneError(f"no input device matching {wanted!r} (inputs: {names})")
    return matches[0]


class MicrophoneSource(AudioSource):
    def __init__(self, device: str | int | None = None, block: int = BLOCK) -> None:
        self._sd = _sounddevice()
        self._device = pick_device(self._sd, device)
        self._block = block
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = threading.Event()
        self._overflowed = False

    def _callback(self, data: Any, frames: int, when: Any, status: Any) -> None:
        if status.input_overflow and not self._overflowed:
            self._overflowed = True
            log.warning("microphone input overflowed: audio was lost before it reached us")
        self._queue.put(data[:, 0].copy())

    def blocks(self) -> Iterator[AudioBlock]:
        position = 0
        stream = self._sd.InputStream(
            samplerate=RATE,
            channels=1,
            dtype="float32",
            blocksize=self._block,
            device=self._device,
            callback=self._callback,
        )
        with stream:
            while not self._closed.is_set():
                try:
                    chunk = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                yield AudioBlock(position / RATE, chunk, RATE)
                position += len(chunk)

    def close(self) -> None:
        self._closed.set()
