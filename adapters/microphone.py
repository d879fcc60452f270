"""The microphone through sounddevice (PortAudio): 16 kHz mono float32 in 32 ms blocks.

PortAudio hands over 128 ms at a time (four blocks): a quarter of the wake-ups of its thread
and of the reader while listening to silence, for at most 128 ms more before a block is read.

Capture outlives the device: a stream that ends on its own (a headset unplugged, the sound
server restarted) is logged, reopened with back-off until the device is back, and goes on;
blocks captured before the loss are delivered first. Between PortAudio's thread and the
reader the blocks wait in a bounded ring; overflows, PortAudio's own and the ring's, are
counted and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from swictation.domain.segmenter import SAMPLE_RATE
from swictation.ports import AudioBlock, AudioSource, CaptureHealth

log = logging.getLogger("swictation.audio")

RATE = SAMPLE_RATE
BLOCK = 512
HANDOVER = 4  # blocks PortAudio hands over per callback
RING_S = 60.0  # how far the reader may fall behind before blocks are dropped
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
STALL_S = 10.0  # an open stream that delivers nothing this long counts as lost
REMIND_S = 60.0


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


def refresh_devices(sd: Any) -> None:
    """PortAudio reads the device list once, at initialisation: re-initialise it to see a
    device (or a sound server) that came after. Only while none of our streams is open."""
    sd._terminate()
    sd._initialize()


def _inputs(sd: Any) -> list[tuple[int, Any]]:
    return [(i, d) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def pick_device(sd: Any, wanted: str | int | None) -> int | None:
    """An input device by index or by (part of) its name; None: the system default."""
    inputs = _inputs(sd)
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


@attrs.define
class CaptureStats:
    """What capture went through; read by the reader's thread, counted by PortAudio's."""

    captured_s: float = 0.0
    overflows: int = 0  # PortAudio's input overflows: audio lost before it reached us
    dropped: int = 0  # blocks dropped because the ring was full (the reader fell behind)
    losses: int = 0  # times the device went away
    handovers: int = 0  # PortAudio callbacks (each HANDOVER blocks)
    without_device_s: float = 0.0

    @property
    def lost_blocks(self) -> int:
        return self.overflows + self.dropped

    def health(self) -> CaptureHealth:
        return CaptureHealth(lost_blocks=self.lost_blocks, device_losses=self.losses)


class MicrophoneSource(AudioSource):
    def __init__(
        self,
        device: str | int | None = None,
        block: int = BLOCK,
        handover: int = HANDOVER,
        ring_s: float = RING_S,
        retry_max_s: float = RETRY_MAX_S,
        stall_s: float = STALL_S,
    ) -> None:
        self._sd = _sounddevice()
        self._wanted = device
        try:
            self._device = pick_device(self._sd, device)
        except MicrophoneError:
            # The sound server (or the device) may have come after PortAudio started.
            refresh_devices(self._sd)
            self._device = pick_device(self._sd, device)
        self._block = block
        self._handover = block * max(1, handover)  # frames per PortAudio callback
        self._ring: queue.Queue[Any] = queue.Queue(
            maxsize=max(1, round(ring_s * RATE / self._handover))
        )
        self._pending: Any = None  # samples short of a whole block, kept for the next
        self._retry_max_s = retry_max_s
        self._stall_s = stall_s
        self._closed = threading.Event()
        self.stats = CaptureStats()
        self._reported_lost = 0
        self._reported_at = 0.0
        self._position = 0  # samples delivered: a restarted reader goes on from here

    def describe(self) -> str:
        return (
            f"microphone {self.device_name} (16 kHz mono, {self._block * 1000 // RATE} ms blocks)"
        )

    @property
    def device_name(self) -> str:
        try:
            info = self._sd.query_devices(self._device, kind="input")
        except Exception:
            return str(self._wanted) if self._wanted is not None else "the default input"
        return str(info["name"])

    # -- PortAudio's thread ---------------------------------------------------------------

    def _callback(self, data: Any, frames: int, when: Any, status: Any) -> None:
        self.stats.handovers += 1
        if status.input_overflow:
            self.stats.overflows += 1
        try:
            self._ring.put_nowait(data[:, 0].copy())
        except queue.Full:
            self.stats.dropped += 1

    # -- the reader -------------------------------------------------------------------------

    def _open(self) -> Any:
        stream = self._sd.InputStream(
            samplerate=RATE,
            channels=1,
            dtype="float32",
            blocksize=self._handover,
            device=self._device,
            callback=self._callback,
        )
        stream.start()
        return stream

    def _shut(self, stream: Any) -> None:
        try:
            stream.abort()
            stream.close()
        except Exception as error:  # a stream on a vanished device may refuse to close
            log.debug("closing the lost stream: %s", error)

    def _reopen(self) -> Any:
        """Waits (with back-off) until the device opens again; None once closed."""
        began = time.monotonic()
        delay = RETRY_FIRST_S
        reminded = began
        last_error = ""
        while not self._closed.wait(delay):
            try:
                refresh_devices(self._sd)
                self._device = pick_device(self._sd, self._wanted)
                stream = self._open()
            except Exception as error:
                last_error = str(error).splitlines()[0] if str(error) else type(error).__name__
                log.debug("microphone still unavailable: %s", last_error)
                if time.monotonic() - reminded >= REMIND_S:
                    reminded = time.monotonic()
                    log.warning(
                        "still no microphone after %.0f s (%s); retrying",
                        reminded - began,
                        last_error,
                    )
                delay = min(self._retry_max_s, delay * 2)
                continue
            away = time.monotonic() - began
            self.stats.without_device_s += away
            log.warning("microphone back after %.1f s: %s is open again", away, self.device_name)
            return stream
        return None

    def _lost(self, stream: Any, last_block: float | None) -> str | None:
        """Why the stream counts as lost, or None while it is alive."""
        if not stream.active:
            return "the stream stopped (device unplugged or sound server gone)"
        if last_block is not None and time.monotonic() - last_block > self._stall_s:
            return f"no audio for {self._stall_s:.0f} s"
        return None

    def _report_lost_blocks(self, final: bool = False) -> None:
        lost = self.stats.lost_blocks
        now = time.monotonic()
        if lost == self._reported_lost or (not final and now - self._reported_at < 10.0):
            return
        self._reported_lost, self._reported_at = lost, now
        log.warning(
            "microphone overflow: %d block(s) (%.2f s of audio) lost so far: %d by PortAudio, "
            "%d because the reader fell %.0f s behind",
            lost,
            lost * self._handover / RATE,
            self.stats.overflows,
            self.stats.dropped,
            self._ring.maxsize * self._handover / RATE,
        )

    def _deliver(self, chunk: Any) -> Iterator[AudioBlock]:
        """A handover cut into whole blocks, in order; a remainder waits for the next."""
        if self._pending is not None:
            chunk = np.concatenate([self._pending, chunk])
            self._pending = None
        whole = len(chunk) - len(chunk) % self._block
        if whole < len(chunk):
            self._pending = chunk[whole:]
        for start in range(0, whole, self._block):
            samples = chunk[start : start + self._block]
            block = AudioBlock(self._position / RATE, samples, RATE)
            self._position += len(samples)
            self.stats.captured_s = self._position / RATE
            yield block

    def blocks(self) -> Iterator[AudioBlock]:
        try:
            stream = self._open()
        except Exception as error:
            log.error("cannot open microphone %s (%s); retrying", self.device_name, error)
            stream = self._reopen()
        first = True
        try:
            while stream is not None and not self._closed.is_set():
                last_block: float | None = None
                why = None
                while not self._closed.is_set():
                    try:
                        chunk = self._ring.get(timeout=0.2)
                    except queue.Empty:
                        why = self._lost(stream, last_block)
                        if why is not None:
                            break
                        continue
                    if first:  # capture begins with the first block, not with the open
                        first = False
                        log.info("listening on %s (16 kHz mono)", self.device_name)
                    last_block = time.monotonic()
                    self._report_lost_blocks()
                    yield from self._deliver(chunk)
                self._shut(stream)
                stream = None
                if why is None:
                    break
                self.stats.losses += 1
                log.error(
                    "microphone lost: %s on %s; the audio before it is kept, retrying",
                    why,
                    self.device_name,
                )
                # What PortAudio handed over before the loss is delivered, never dropped.
                while not self._ring.empty():
                    yield from self._deliver(self._ring.get_nowait())
                stream = self._reopen()
                first = True
        finally:
            if stream is not None:
                self._shut(stream)
            self._report_lost_blocks(final=True)
            stats = self.stats
            log.info(
                "microphone: %.1f s captured, %d block(s) lost to overflow, device lost %d "
                "time(s) (%.1f s without it)",
                stats.captured_s,
                stats.lost_blocks,
                stats.losses,
                stats.without_device_s,
            )

    def health(self) -> CaptureHealth:
        return self.stats.health()

    def close(self) -> None:
        self._closed.set()
