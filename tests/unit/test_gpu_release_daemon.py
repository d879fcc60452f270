"""Giving up the GPU with in-memory parts: the guard hands SHUTDOWN to the GPU-mode machine
instead of stopping, and the daemon carries a change out at the next gap in speech with an
orderly stop and a handover (the re-execution itself is the entrypoint's, tested end to end
in tests/e2e/test_cpu_mode.py)."""

from __future__ import annotations

import queue
import threading

from swictation.adapters.memory import (
    EnergyVoiceDetector,
    EventList,
    FakeClock,
    InMemoryModelHost,
    ListOutput,
    NoProbe,
    ScriptedProbe,
    ScriptedRecognizer,
)
from swictation.adapters.spool import Spool
from swictation.application.config import DaemonSettings
from swictation.application.services.daemon import EXIT_OK, Daemon
from swictation.application.services.guard import GuardService
from swictation.application.services.handover import GapStop
from swictation.application.services.pipeline import DictationPipeline
from swictation.application.services.recovery import RecoveringRunner
from swictation.application.services.stop import StopSignal
from swictation.domain.gpu_mode import GpuMode, GpuModeMachine, ModeChange, Tenure
from swictation.domain.model import ModelState, Placement, Tuning
from swictation.domain.policy import GuardPolicy
from swictation.domain.recovery import RecoveryTracker
from swictation.ports import AudioSource
from tests.unit.test_daemon_lifecycle import _wait, recorded_parts
from tests.unit.test_pipeline import audio

CARD = 8192.0
OFFLOADED = (ModelState("vad", 2.0, Placement.GPU), ModelState("stt", 1500.0, Placement.CPU))


class Fed(AudioSource):
    """A microphone the test speaks into, block by block."""

    def __init__(self) -> None:
        self.blocks_in: queue.Queue = queue.Queue()
        self.closed = threading.Event()
        self.taken = 0

    def say(self, blocks) -> None:
        for block in blocks:
            self.blocks_in.put(block)

    def blocks(self):
        while not self.closed.is_set():
            try:
                block = self.blocks_in.get(timeout=0.05)
            except queue.Empty:
                continue
            self.taken += 1
            yield block

    def close(self) -> None:
        self.closed.set()


def guard_of(probe_mib, models, machine, policy=None, on_shutdown=None):
    clock = FakeClock()
    host = InMemoryModelHost(clock, models)
    probe = ScriptedProbe(probe_mib, CARD, clock)
    told: list[ModeChange | None] = []
    guard = GuardService(
        probe,
        host,
        policy or GuardPolicy(tuning=Tuning(shutdown_grace_s=1.0)),
        EventList(),
        clock,
        on_shutdown=on_shutdown,
        gpu_mode=machine,
        context_mib=300.0,
        on_mode_change=told.append,
    )
    return guard, clock, told


def test_the_guard_hands_shutdown_to_the_gpu_mode_and_keeps_watching():
    stopped = []
    guard, clock, told = guard_of(
        lambda t: 8110.0, OFFLOADED, GpuModeMachine(120.0), on_shutdown=stopped.append
    )
    for _ in range(10):
        guard.tick()
        clock.advance(0.5)
    assert [c.to_cpu for c in told] == [True]  # decided once
    assert stopped == []  # the daemon is not stopped...
    assert not guard._stop.is_set()  # ...and the guard goes on watching


def test_with_on_shutdown_exit_the_guard_stops_the_daemon():
    stopped = []
    guard, clock, told = guard_of(lambda t: 8110.0, OFFLOADED, None, on_shutdown=stopped.append)
    for _ in range(10):
        guard.tick()
        clock.advance(0.5)
    assert len(stopped) == 1 and "nothing left to offload" in stopped[0]
    assert told == []


def test_on_the_cpu_the_guard_decides_the_return_and_calls_it_off_when_room_goes():
    on_cpu = tuple(ModelState(m.name, m.size_mib, Placement.CPU) for m in OFFLOADED)
    card = {"mib": 8110.0}
    machine = GpuModeMachine(10.0, Tenure(GpuMode.ON_CPU, 0.0, "full"))
    guard, clock, told = guard_of(
        lambda t: card["mib"], on_cpu, machine, policy=GuardPolicy(on_gpu=False)
    )
    for _ in range(30):  # a minute of the game
        guard.tick()
        clock.advance(2.0)
    assert told == []
    card["mib"] = 2900.0  # the game ends
    for _ in range(6):
        guard.tick()
        clock.advance(2.0)
    assert told == [machine.change] and not told[0].to_cpu
    card["mib"] = 8110.0  # it starts again before the gap came
    guard.tick()
    assert told[-1] is None and machine.mode is GpuMode.ON_CPU


def daemon_of(tmp_path, source, machine):
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("vad", 2), ModelState("stt", 1500)])
    events = EventList()
    gap = GapStop(source)
    output = ListOutput()
    pipeline = DictationPipeline(
        gap,
        EnergyVoiceDetector(0.05),
        ScriptedRecognizer(["hello there"]),
        output,
        RecoveringRunner(host, RecoveryTracker(), events, clock),
        events,
        Spool(tmp_path / "spool", fallback=tmp_path / "fallback"),
    )
    stop = StopSignal()
    guard = GuardService(NoProbe(clock), host, GuardPolicy(), events, clock, gpu_mode=machine)
    parts = recorded_parts(pipeline, guard, events, stop, gap)
    return Daemon(DaemonSettings(), parts), output, events


def test_a_change_waits_for_the_gap_then_stops_in_order_with_a_handover(tmp_path):
    source = Fed()
    machine = GpuModeMachine(120.0)
    daemon, output, events = daemon_of(tmp_path, source, machine)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", daemon.run()))
    runner.start()
    try:
        source.say(audio(("speech", 0.6)))
        _wait(lambda: daemon.pipeline.in_speech)
        change = machine.shutdown(5.0, "usage 99.0% >= 98% with nothing left to offload")
        assert change is not None
        daemon.parts.reexec.change_mode(change)  # the guard's on_mode_change, as wired
        source.say(audio(("speech", 0.6)))  # the sentence goes on: no stop in the middle
        _wait(lambda: source.taken >= 38)
        assert runner.is_alive() and daemon.pipeline.in_speech
        source.say(audio(("silence", 1.2), ("speech", 0.6)))  # its end, then more speech
        runner.join(30)
    finally:
        daemon.stop("test over")
        runner.join(30)
    assert result["code"] == EXIT_OK
    assert output.lines == ["hello there"]  # the sentence whole, typed before the handover
    handover = daemon.reexec
    assert handover is not None
    assert handover.tenure.mode is GpuMode.ON_CPU
    assert handover.tenure.reason.startswith("usage 99.0%")
    assert handover.listening is True
    assert source.taken < 38 + 56  # it stopped at the gap, before the speech after it
    (released,) = events.of_type("gpu_released")
    assert released.detail["reason"] == handover.tenure.reason
    assert list((tmp_path / "spool").iterdir()) == []


def test_toggled_off_stays_off_across_the_re_execution(tmp_path):
    source = Fed()
    machine = GpuModeMachine(120.0)
    daemon, _, _ = daemon_of(tmp_path, source, machine)
    daemon.pipeline.enabled.clear()
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        daemon.parts.reexec.change_mode(machine.shutdown(5.0, "full"))
        source.say(audio(("silence", 0.1)))
        runner.join(30)
    finally:
        daemon.stop("test over")
        runner.join(30)
    assert daemon.reexec is not None and daemon.reexec.listening is False
    parts = daemon.parts
    off = recorded_parts(
        parts.pipeline, parts.guard, parts.events, StopSignal(), parts.gap, listening=False
    )
    daemon.pipeline.enabled.set()
    again = Daemon(DaemonSettings(), off)
    assert not again.pipeline.enabled.is_set()
    assert again.status()["listening"] is False
