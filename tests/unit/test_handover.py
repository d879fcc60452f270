"""What a re-executing daemon hands the next process, the stop at a gap in speech, a file
resumed where it stopped, the simulated CUDA context, and the wiring of CPU mode."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile

from swictation.adapters.audio_file import BLOCK, FileAudioSource
from swictation.adapters.memory import (
    FakeClock,
    InMemoryModelHost,
    ListAudioSource,
    NoProbe,
    ResidentModelsProbe,
    ScriptedProbe,
)
from swictation.application.config import DaemonSettings, load_settings
from swictation.application.container import daemon_container
from swictation.application.entrypoints.presenters import status_text
from swictation.application.services.handover import (
    ENV,
    GapStop,
    Handover,
    take_handover,
)
from swictation.domain.gpu_mode import GpuMode, Tenure
from swictation.domain.model import ModelState, Placement
from swictation.ports import AudioBlock

RATE = 16000
ON_CPU = Tenure(GpuMode.ON_CPU, 1234.5, "usage 99.0% >= 98% with nothing left to offload", 1)


def test_a_handover_survives_the_environment():
    handover = Handover(ON_CPU, trace_origin=99.25, audio_offset=150528, lock_fd=7)
    environ = {ENV: handover.encode(), "HOME": "/home/me"}
    assert take_handover(environ) == handover
    assert environ == {"HOME": "/home/me"}  # never passed on to what the daemon starts
    assert take_handover(environ) is None


def test_a_handover_that_is_not_one_is_a_warning_and_a_fresh_start(caplog):
    caplog.set_level(logging.WARNING)
    assert take_handover({ENV: '{"tenure": {"mode": "SIDEWAYS"}}'}) is None
    assert take_handover({ENV: "not json"}) is None
    assert caplog.text.count("is not a handover") == 2


def blocks(count: int) -> list[AudioBlock]:
    return [AudioBlock(i * BLOCK / RATE, np.full(BLOCK, i, np.float32), RATE) for i in range(count)]


def test_an_armed_stop_waits_for_the_gap_in_speech():
    speaking = {"now": True}
    stop = GapStop(ListAudioSource(blocks(10)))
    heard, at_gap = [], []
    for block in stop.blocks():
        heard.append(int(block.samples[0]))
        if len(heard) == 2:
            stop.arm(lambda: at_gap.append(len(heard)), lambda: speaking["now"])
        if len(heard) == 5:
            speaking["now"] = False  # the block that ended the speech has been listened to
    assert heard == [0, 1, 2, 3, 4]
    assert at_gap == [5]
    assert stop.stopped and not stop.disarm()  # too late to call it off


def listen(
    stop: GapStop, arm_at: int, disarm: bool = False, speaking: bool = False
) -> tuple[int, list[bool]]:
    """Takes every block `stop` gives, arming it after block `arm_at` (and with `disarm`,
    calling it off at once): how many blocks were heard, and whether the stop fired."""
    fired: list[bool] = []
    heard = 0
    for _ in stop.blocks():
        heard += 1
        if heard == arm_at:
            stop.arm(lambda: fired.append(True), lambda: speaking)
            if disarm:
                assert stop.disarm()
    return heard, fired


def test_a_disarmed_stop_lets_capture_go_on():
    stop = GapStop(ListAudioSource(blocks(6)))
    assert listen(stop, arm_at=1, disarm=True) == (6, [])


def test_unbroken_speech_is_cut_after_the_longest_wait():
    stop = GapStop(ListAudioSource(blocks(6)), max_wait_s=0.0)
    assert listen(stop, arm_at=3, speaking=True) == (3, [True])


def test_a_file_resumed_where_it_stopped_loses_and_repeats_no_sample(tmp_path):
    samples = (np.arange(10 * BLOCK + 100) % 1000 / 1000.0).astype(np.float32)
    path = tmp_path / "ramp.wav"
    soundfile.write(path, samples, RATE, subtype="FLOAT")
    first = GapStop(FileAudioSource(path))
    heard = []
    for block in first.blocks():
        heard.append(block.samples)
        if len(heard) == 4:
            first.arm(lambda: None, lambda: False)
    assert first.position == 4 * BLOCK
    second = FileAudioSource(path, start_sample=first.position)
    rest = list(second.blocks())
    assert rest[0].t == 0.0  # the new process's stream begins at 0, as a microphone's does
    joined = np.concatenate([*heard, *(b.samples for b in rest)])[: len(samples)]
    assert np.array_equal(joined, samples)
    assert "from 0.13 s" in second.describe()
    assert list(FileAudioSource(path, start_sample=10**9).blocks()) == []


def test_a_resumed_file_keeps_real_time_pace_from_where_it_resumed(tmp_path):
    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.zeros(RATE * 600, np.float32), RATE)
    source = FileAudioSource(path, realtime=True, start_sample=RATE * 590)
    first = next(iter(source.blocks()))  # not 590 s of catching up: paced from here
    assert first.t == 0.0
    source.close()


def test_the_context_given_up_leaves_the_simulated_card():
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("stt", 1500.0, Placement.CPU)])
    inner = ScriptedProbe(lambda t: 4000.0, 8192.0, clock)
    released = ResidentModelsProbe(inner, host, 300.0).sample()
    held = ResidentModelsProbe(inner, host).sample()
    assert released.used_mib == 3700.0 and released.own_mib == 0.0
    assert held.used_mib == 4000.0
    host.move("stt", "cuda")
    assert ResidentModelsProbe(inner, host).sample().used_mib == 5500.0


def test_status_says_the_gpu_was_given_up_when_and_why():
    status = {
        "listening": True,
        "gpu": {
            "mode": "on_cpu",
            "since": 0.0,
            "reason": "usage 99.0% >= 98% with nothing left to offload",
            "return_after_s": 120.0,
            "room_for_s": None,
        },
    }
    text = status_text(status)
    assert "device:     cpu (gave up the GPU at " in text
    assert "usage 99.0% >= 98% with nothing left to offload; back to the GPU after 120 s" in text
    assert "(no room now)" in text
    status["gpu"] = {**status["gpu"], "mode": "on_gpu", "reason": "room for 120 s"}
    assert "device:     gpu (back on it at " in status_text(status)
    assert "device:" not in status_text({"listening": True, "gpu": None})


def _settings(tmp_path, **sections) -> DaemonSettings:
    config = load_settings(None, {}, sections, default_file=False)
    return DaemonSettings(config, audio_file=str(tmp_path / "x.wav"))


def test_in_cpu_mode_the_models_load_on_the_cpu_and_the_guard_only_watches(tmp_path):
    settings = _settings(tmp_path, stt={"device": "cuda"}, daemon={"probe": "none"})
    container = daemon_container(settings, Handover(ON_CPU, audio_offset=4096))
    assert container.device() == "cpu"  # not "cuda": no context in this process
    assert container.policy().on_gpu is False
    machine = container.gpu_mode()
    assert machine.mode is GpuMode.ON_CPU and machine.return_wait_s() == 240.0
    assert container.config.run.audio_offset() == 4096
    fresh = daemon_container(_settings(tmp_path, daemon={"probe": "none"}))
    assert fresh.policy().on_gpu is (fresh.device() == "cuda")  # as the models run
    assert fresh.gpu_mode().mode is GpuMode.ON_GPU


def test_models_on_the_cpu_by_choice_never_give_up_the_gpu_they_do_not_hold(tmp_path):
    """`--device cpu` with NVML watching a full card: nothing of ours on it, no SHUTDOWN (the
    issue's exit 3 "although our models are already on the CPU")."""
    settings = _settings(tmp_path, stt={"device": "cpu"}, daemon={"probe": "none"})
    assert daemon_container(settings).policy().on_gpu is False
    traced = tmp_path / "t.csv"
    traced.write_text("timestamp, memory.used [MiB], memory.total [MiB]\n0, 1000, 8192\n")
    simulated = _settings(
        tmp_path, stt={"device": "cpu"}, daemon={"probe": "trace", "trace": str(traced)}
    )
    assert daemon_container(simulated).policy().on_gpu is True  # the rehearsed GPU is held


def test_with_on_shutdown_exit_there_is_no_gpu_mode(tmp_path):
    settings = _settings(tmp_path, guard={"on_shutdown": "exit"}, daemon={"probe": "none"})
    assert daemon_container(settings).gpu_mode() is None


def test_off_the_gpu_the_torch_probe_is_not_used(tmp_path):
    settings = _settings(tmp_path, daemon={"probe": "torch"})
    probe = daemon_container(settings, Handover(ON_CPU)).probe()
    assert isinstance(probe, NoProbe)
    assert "needs a CUDA context" in probe.sample().reason


class _Weights:
    """A model of 100 MiB for the real host's bookkeeping (the simulation moves it)."""

    def device(self) -> str:
        return "cpu"

    def footprint_mib(self) -> float:
        return 100.0

    def to(self, device: str) -> None:
        return None

    def model(self) -> object:
        return self

    def release(self) -> None:
        return None


@pytest.mark.parametrize(("tenure", "card_mib"), [(Tenure(), 1100.0), (ON_CPU, 700.0)])
def test_under_a_trace_the_gpu_given_up_takes_the_models_and_context_off_the_card(
    tmp_path, tenure, card_mib
):
    """The trace's clock goes on from the handed-over origin; off the GPU, the simulated
    card holds neither the models (on the CPU) nor the 300 MiB context (which the trace's
    usage is taken to hold)."""
    from dependency_injector import providers

    from swictation.adapters.model_host import RealModelHost
    from swictation.adapters.traces import read_trace
    from swictation.application.container import _trace_probe

    trace = tmp_path / "t.csv"
    trace.write_text("timestamp, memory.used [MiB], memory.total [MiB]\n0, 1000, 8192\n")
    settings = _settings(tmp_path, daemon={"probe": "trace", "trace": str(trace)})
    container = daemon_container(settings, Handover(tenure, trace_origin=-50.0))
    real = RealModelHost(has_cuda=lambda: False)
    real.register("stt", _Weights())
    container.models.override(providers.Object(real))
    probe = container.probe()
    assert probe.origin == -50.0
    assert probe.sample().used_mib == card_mib
    placement = Placement.GPU if tenure.mode is GpuMode.ON_GPU else Placement.CPU
    assert [m.placement for m in container.host().models()] == [placement]
    fresh = _trace_probe(read_trace(trace), FakeClock(7.0), InMemoryModelHost(FakeClock()))
    assert fresh.origin == 7.0  # a fresh start: the trace begins now


def test_every_probe_answers_where_its_trace_began_through_the_port(tmp_path):
    """The handover reads the replayed trace's origin from the GpuProbe port: a live card
    (or none) says None, a probe wrapping a trace says the trace's, nothing is guessed."""
    from swictation.adapters.traces import TraceProbe, read_trace
    from swictation.ports import GpuProbe

    clock = FakeClock(3.0)
    host = InMemoryModelHost(clock)
    scripted = ScriptedProbe(lambda t: 1.0, 8.0, clock)
    for live in (NoProbe(clock), scripted, ResidentModelsProbe(scripted, host)):
        assert isinstance(live, GpuProbe) and live.origin is None
    path = tmp_path / "t.csv"
    path.write_text("timestamp, memory.used [MiB], memory.total [MiB]\n0, 1000, 8192\n")
    traced = TraceProbe(read_trace(path), clock, 40.0)
    assert ResidentModelsProbe(traced, host).origin == 40.0
