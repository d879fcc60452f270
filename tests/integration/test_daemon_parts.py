"""Daemon parts against real libraries: Silero's thread count, files of every shape, the
trace probe against a clock, and the simulated GPU host."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from swictation.adapters.audio_file import AudioFileError, FileAudioSource, load_mono_16k
from swictation.adapters.memory import FakeClock
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.simulated import SimulatedGpuHost
from swictation.adapters.torch_models import TorchResidency
from swictation.adapters.traces import TraceProbe, read_trace
from swictation.domain.model import Placement
from tests.integration.conftest import AUDIO


def test_loading_silero_keeps_torchs_thread_count():
    from swictation.adapters.silero import load_silero

    torch.set_num_threads(2)
    model = load_silero()
    assert torch.get_num_threads() == 2
    assert model(torch.zeros(512), 16000).item() < 0.5


def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path):
    stereo = load_mono_16k(AUDIO / "stereo-48k.wav")
    info = soundfile.info(str(AUDIO / "stereo-48k.wav"))
    assert info.samplerate == 48000 and info.channels == 2
    assert len(stereo) == pytest.approx(info.duration * 16000, abs=2)
    assert stereo.dtype == np.float32
    ogg = tmp_path / "x.ogg"
    samples, rate = soundfile.read(str(AUDIO / "voice-us.wav"))
    soundfile.write(str(ogg), samples, rate, format="OGG", subtype="VORBIS")
    assert len(load_mono_16k(ogg)) == pytest.approx(len(samples), rel=0.01)


def test_unreadable_audio_is_a_one_line_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        load_mono_16k(bad)


def test_file_source_blocks_cover_the_file():
    source = FileAudioSource(AUDIO / "voice-us.wav")
    blocks = list(source.blocks())
    assert all(len(b.samples) == 512 for b in blocks)
    assert len(blocks) * 512 >= source.duration_s * 16000


def test_trace_probe_follows_the_clock_and_holds_the_last_row(tmp_path):
    trace_file = tmp_path / "t.csv"
    trace_file.write_text("timestamp,memory.used,memory.total\n0,1000,8000\n2,5000,8000\n")
    clock = FakeClock(100.0)
    probe = TraceProbe(read_trace(trace_file), clock)
    assert probe.sample().used_mib == 1000
    clock.advance(1.9)
    assert probe.sample().used_mib == 1000
    clock.advance(0.2)
    assert probe.sample().used_mib == 5000
    clock.advance(1000)
    assert probe.sample().used_mib == 5000


def test_simulated_gpu_host_moves_on_paper_and_infers_for_real():
    clock = FakeClock()
    real = RealModelHost()
    layer = torch.nn.Linear(256, 256)
    real.register("stt", TorchResidency(layer))
    host = SimulatedGpuHost(real, clock)
    assert {m.name: m.placement for m in host.models()} == {"stt": Placement.GPU}
    moved = host.move("stt", "cpu")
    assert moved.done and moved.seconds > 0
    clock.advance(moved.seconds)
    assert host.models()[0].placement is Placement.CPU
    with host.use("stt") as device:
        assert device == "cpu"
        assert host.model("stt")(torch.ones(1, 256)).shape == (1, 256)
