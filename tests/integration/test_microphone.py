"""The microphone through sounddevice and PortAudio, for real: `audio` tests listen to a
private PulseAudio server (tests/sound_server.py) into which the recordings are played at
real-time pace, exactly as a desktop's microphone would be heard."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from swictation.adapters.audio_file import load_mono_16k
from swictation.adapters.microphone import MicrophoneError, MicrophoneSource, pick_device
from tests.sound_server import SoundServer

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"
VOICE = AUDIO / "voice-us.wav"


def test_no_input_device_is_a_clear_error(tmp_path):
    # A sound server that is not there, so PortAudio sees only the machine's own hardware.
    probe = (
        "from swictation.adapters.microphone import MicrophoneError, MicrophoneSource\n"
        "try:\n    MicrophoneSource()\nexcept MicrophoneError as e:\n    print(e)\n"
        "else:\n    print('HARDWARE')\n"
    )
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/nothing-here"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.stdout.strip() == "HARDWARE":
        pytest.skip("this machine has a microphone of its own")
    assert done.stdout.strip() == "no microphone: PortAudio lists no input device", done


class Devices:
    """sounddevice's device list as it looks on a desktop (this machine has none)."""

    @staticmethod
    def query_devices():
        return [
            {"name": "HDA Intel PCH: ALC295 Analog", "max_input_channels": 2},
            {"name": "HDMI 0", "max_input_channels": 0},
            {"name": "Blue Yeti USB", "max_input_channels": 1},
        ]


def test_devices_are_picked_by_index_or_name_simulated():
    assert pick_device(Devices, None) is None
    assert pick_device(Devices, "2") == 2
    assert pick_device(Devices, "yeti") == 2
    with pytest.raises(MicrophoneError, match="no input device 1"):
        pick_device(Devices, 1)
    with pytest.raises(MicrophoneError, match="no input device matching 'webcam'"):
        pick_device(Devices, "webcam")


class Capture:
    """Reads a MicrophoneSource on its own thread, as the daemon's capture thread does."""

    def __init__(self, source: MicrophoneSource) -> None:
        self.source = source
        self.blocks: list = []
        self.first = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for block in self.source.blocks():
                self.blocks.append(block)
                self.first.set()
        except BaseException as error:
            self.error = error

    def seconds(self) -> float:
        return sum(len(b.samples) for b in self.blocks) / 16000

    def wait_for_seconds(self, seconds: float, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.seconds() < seconds:
            assert time.monotonic() < deadline, f"only {self.seconds():.1f} s captured"
            time.sleep(0.05)

    def stop(self) -> np.ndarray:
        self.source.close()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return np.concatenate([b.samples for b in self.blocks])


def best_alignment(recording: np.ndarray, captured: np.ndarray) -> float:
    """Peak normalised cross-correlation of the recording with what was captured: 1.0 when
    the recording is in the capture sample for sample."""
    rec = recording.astype(np.float64)
    cap = captured.astype(np.float64)
    n = len(cap) + len(rec)
    size = 1 << (n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(cap, size) * np.conj(np.fft.rfft(rec, size)), size)
    c = c[: len(cap) - len(rec) + 1]  # lags where the recording lies wholly in the capture
    window = np.concatenate([[0.0], np.cumsum(cap**2)])
    energy = np.sqrt(np.maximum(window[len(rec) :] - window[: -len(rec)], 1e-18))
    return float((c / (np.linalg.norm(rec) * energy)).max())


def start_capture(device=None, **kwargs) -> Capture:
    capture = Capture(MicrophoneSource(device, **kwargs))
    assert capture.first.wait(60), "no audio from the sound server"
    return capture


@pytest.mark.audio
def test_portaudio_hands_over_128_ms_at_a_time_split_into_32_ms_frames(listening_here):
    # A quarter of the wake-ups of PortAudio's thread and of the reader's while listening
    # to silence (the idle cost, benchmarks/idle_bench.py), for at most one handover of delay.
    capture = start_capture()
    capture.wait_for_seconds(1.0)
    capture.stop()
    stats = capture.source.stats
    frames = len(capture.blocks)
    assert all(len(b.samples) == 512 for b in capture.blocks)
    assert frames % 4 == 0
    assert frames / 4 <= stats.handovers <= frames / 4 + 2  # a last one may wait in the ring
    positions = [round(b.t * 16000) for b in capture.blocks]
    assert positions == list(range(0, frames * 512, 512))


@pytest.mark.audio
def test_captures_16k_mono_blocks_of_32_ms(listening_here):
    capture = start_capture()
    capture.wait_for_seconds(0.5)
    capture.stop()
    blocks = capture.blocks
    assert all(len(b.samples) == 512 and b.rate == 16000 for b in blocks)
    assert all(b.samples.dtype == np.float32 for b in blocks)
    assert [b.t for b in blocks[:3]] == pytest.approx([0.0, 512 / 16000, 1024 / 16000])


@pytest.mark.audio
def test_what_is_played_is_what_is_captured(listening_here):
    recording = load_mono_16k(VOICE)
    capture = start_capture()
    listening_here.play(VOICE)
    captured = capture.stop()
    # The whole recording is in the capture, sample for sample up to resampling.
    assert best_alignment(recording, captured) > 0.9


@pytest.mark.audio
def test_the_device_is_chosen_by_name_and_by_index(listening_here):
    import sounddevice as sd

    for wanted in ("pulse", "PULSE"):
        source = MicrophoneSource(wanted)
        assert source.device_name == "pulse"
    index = next(i for i, d in enumerate(sd.query_devices()) if d["name"] == "pulse")
    for wanted in (index, str(index)):
        capture = start_capture(wanted)
        assert capture.source.device_name == "pulse"
        listening_here.play(VOICE)
        captured = capture.stop()
        assert best_alignment(load_mono_16k(VOICE), captured) > 0.9
    with pytest.raises(MicrophoneError, match="no input device matching 'no-such-mic'"):
        MicrophoneSource("no-such-mic")


@pytest.mark.audio
def test_a_reader_that_falls_behind_overflows_the_ring_counted_and_logged(listening_here, caplog):
    caplog.set_level(logging.INFO, logger="swictation.audio")
    source = MicrophoneSource(ring_s=0.5)
    blocks = source.blocks()
    first = next(blocks)
    time.sleep(2.5)  # the reader stalls; PortAudio's thread keeps delivering into the ring
    later = [next(blocks) for _ in range(40)]
    source.close()
    list(blocks)
    assert source.stats.dropped > 0
    assert source.stats.lost_blocks == source.stats.overflows + source.stats.dropped
    assert source.health().lost_blocks == source.stats.lost_blocks  # what status shows
    # Positions stay those of the samples delivered, so the pipeline's cuts stay aligned.
    assert later[0].t == pytest.approx(len(first.samples) / 16000)
    warnings = [r.getMessage() for r in caplog.records if "microphone overflow" in r.getMessage()]
    assert warnings, caplog.text
    assert f"{source.stats.lost_blocks} block(s)" in warnings[-1]
    assert "reader fell 0 s behind" not in warnings[-1]
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("microphone:")]
    assert f"{source.stats.lost_blocks} block(s) lost to overflow" in summary[-1]


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    """A server of this test's own, to be killed and brought back."""
    server = SoundServer(tmp_path / "server")
    server.start()
    monkeypatch.setenv("PULSE_SERVER", server.address)
    yield server
    server.stop()


@pytest.mark.audio
def test_a_lost_device_is_logged_retried_and_capture_resumes(own_server, caplog):
    caplog.set_level(logging.INFO, logger="swictation.audio")
    capture = start_capture("pulse", retry_max_s=0.5)
    own_server.play(AUDIO / "pair.wav")
    time.sleep(0.5)
    own_server.kill()
    deadline = time.monotonic() + 30
    while "microphone lost" not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.05)
    before_loss = np.concatenate([b.samples for b in capture.blocks])
    # Everything played before the loss was delivered.
    assert best_alignment(load_mono_16k(AUDIO / "pair.wav"), before_loss) > 0.9
    count = len(capture.blocks)
    time.sleep(1.5)  # retries fail while the server is away
    assert len(capture.blocks) == count
    own_server.start()
    deadline = time.monotonic() + 60
    while len(capture.blocks) == count:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.05)
    own_server.play(VOICE)
    captured = capture.stop()
    after = captured[len(before_loss) :]
    assert best_alignment(load_mono_16k(VOICE), after) > 0.9
    # Positions run on without a gap or a repeat across the loss.
    positions = [round(b.t * 16000) for b in capture.blocks]
    sizes = [len(b.samples) for b in capture.blocks]
    assert positions == list(np.cumsum([0, *sizes[:-1]]))
    assert capture.source.stats.losses == 1
    messages = caplog.text
    assert "microphone lost: the stream stopped" in messages
    assert "microphone back after" in messages
    assert messages.count("listening on pulse") == 2
