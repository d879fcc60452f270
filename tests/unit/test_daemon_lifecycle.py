"""The daemon's life with in-memory parts: a worker that cannot be restarted is an orderly
stop with a non-zero status, the watchdog is fed only while every worker lives, and the
status and final report show each worker's health."""

from __future__ import annotations

import logging
import threading
import time

import attrs
import pytest

from swictation.adapters.memory import FakeClock, ListAudioSource, NoProbe
from swictation.application.config import DaemonSettings
from swictation.application.entrypoints.presenters import status_line
from swictation.application.services.daemon import EXIT_WORKER_FAILED, Daemon, DaemonParts
from swictation.application.services.guard import GuardService
from swictation.application.services.handover import GapStop, Reexecution
from swictation.application.services.stop import StopSignal
from swictation.application.services.workers import Workers
from swictation.domain.policy import GuardPolicy
from tests.unit.parts import audio, build


@attrs.frozen(kw_only=True)
class RecordedParts(DaemonParts):
    """The daemon's parts, what it tells systemd kept in `told`."""

    told: list[str]


def recorded_parts(
    pipeline, guard, events, stop, gap, watchdog_s=None, listening=True
) -> RecordedParts:
    """The parts as the container wires them (the pipeline hears `gap`), in memory."""
    told: list[str] = []
    start_time = time.monotonic()
    reexec = Reexecution(
        gap,
        stop,
        events,
        guard.policy,
        guard.probe,
        pipeline.enabled,
        lambda: pipeline.in_speech,
        start_time,
    )
    return RecordedParts(
        pipeline=pipeline,
        guard=guard,
        events=events,
        stop=stop,
        gap=gap,
        reexec=reexec,
        watchdog_s=watchdog_s,
        present=status_line,
        notify=told.append,
        start_time=start_time,
        listening=listening,
        told=told,
    )


class DyingSource(ListAudioSource):
    """A microphone that delivers one sentence, then fails at every attempt to read it."""

    def __init__(self, blocks):
        super().__init__(blocks)
        self.attempts = 0

    def blocks(self):
        self.attempts += 1
        if self.attempts == 1:
            yield from super().blocks()
        raise OSError("the audio device went away")


def daemon_with(source, tmp_path, watchdog_s=0.01):
    clock = FakeClock()
    stop = StopSignal()
    workers = Workers(on_fatal=stop.fail, max_restarts=2, backoff_s=0.0)
    gap = GapStop(source)
    pipeline, _, _, events, host = build(
        [], ["hello"], tmp_path, source=gap, workers=workers, clock=clock
    )
    guard = GuardService(
        NoProbe(clock), host, GuardPolicy(), events, clock, on_shutdown=stop.shutdown
    )
    parts = recorded_parts(pipeline, guard, events, stop, gap, watchdog_s)
    return Daemon(DaemonSettings(audio_file="rehearsal.wav"), parts), parts


def test_a_worker_that_cannot_be_restarted_stops_in_order_with_status_4(tmp_path, caplog):
    source = DyingSource(audio(("speech", 0.6), ("silence", 1.0)))
    daemon, parts = daemon_with(source, tmp_path)
    with caplog.at_level(logging.INFO, logger="swictation"):
        code = daemon.run()
    assert code == EXIT_WORKER_FAILED
    assert source.attempts == 3  # the first run and two restarts
    # The sentence heard before the failure was transcribed or kept, never lost.
    typed = daemon.pipeline._output.lines
    kept = list((tmp_path / "spool").glob("*.wav"))
    assert len(typed) + len(kept) == 1
    health = daemon.health()
    assert health["capture"]["state"] == "failed"
    assert health["capture"]["restarts"] == 2
    assert "OSError: the audio device went away" in health["capture"]["last_error"]
    assert "READY=1" in parts.told and parts.told[-1] == "STOPPING=1"
    text = caplog.text
    assert "worker capture failed and cannot be restarted" in text
    assert "capture failed (3 errors, 2 restarts)" in text  # the final report
    assert "exiting with status 4" in text


def test_the_watchdog_is_fed_only_while_every_worker_lives(tmp_path):
    release = threading.Event()

    class Held(ListAudioSource):
        def blocks(self):
            yield from super().blocks()
            release.wait(30)  # a quiet microphone: capture goes on

    daemon, parts = daemon_with(Held(audio(("silence", 0.5))), tmp_path)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        _wait(lambda: parts.told.count("WATCHDOG=1") >= 3)
        assert daemon.all_alive()
        daemon.guard.stop()  # the guard's thread ends: a worker is no longer alive
        _wait(lambda: not daemon.guard.running)
        _wait(lambda: not daemon._fed)
        fed = parts.told.count("WATCHDOG=1")
        ticks = daemon.watch_ticks
        _wait(lambda: daemon.watch_ticks >= ticks + 5)  # five more watches, none feeds it
        assert parts.told.count("WATCHDOG=1") == fed
        assert daemon.status()["healthy"] is False
        assert daemon.status()["workers"]["guard"]["state"] == "stopped"
    finally:
        daemon.stop("test over")
        release.set()
        runner.join(30)
    assert not runner.is_alive()


def _wait(predicate, timeout: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("timed out waiting")


def test_a_guard_that_cannot_see_the_gpu_says_so_in_status(tmp_path):
    from swictation.application.entrypoints.presenters import status_text

    daemon, _ = daemon_with(ListAudioSource([]), tmp_path)
    daemon.guard.tick()
    status = daemon.status()
    assert status["memory_unknown"] == "no GPU probe configured (--probe none)"
    assert "memory:     unknown (no GPU probe configured (--probe none))" in status_text(status)


def test_status_sees_a_failing_flight_recorder_behind_the_dbus_tee(tmp_path):
    """With D-Bus publishing on, the daemon's events sink is a tee of the recorder and the
    publisher: the recorder's drops must still reach the health report."""
    from swictation.adapters.dbus import TeeEventSink
    from swictation.adapters.events import JsonlEventSink, NullEventSink
    from swictation.domain.model import Event

    recorder = JsonlEventSink(tmp_path / "missing" / "events.jsonl")
    tee = TeeEventSink(recorder, NullEventSink())
    daemon, parts = daemon_with(ListAudioSource([]), tmp_path)
    daemon = Daemon(DaemonSettings(audio_file="rehearsal.wav"), attrs.evolve(parts, events=tee))
    for t in (0.0, 0.5, 1.0):
        tee.emit(Event(t, "sample", level="NORMAL", usage=0.1))
    events = daemon.health()["events"]
    assert events["state"] == "failing"
    assert events["errors"] == 3
    assert "events.jsonl" in str(events["last_error"])
    (tmp_path / "missing").mkdir()
    tee.emit(Event(1.5, "sample", level="NORMAL", usage=0.1))
    events = daemon.health()["events"]
    assert events["state"] == "running"
    assert events["errors"] == 3  # the count of what was lost stays


def test_status_latency_runs_from_the_last_voiced_sample_when_it_is_known(tmp_path):
    """With speculative endpointing the text is often ready when the VAD closes the
    utterance, so "VAD end -> text" reads 0.00 s; what a user waits is measured from the
    last voiced sample (the end-of-utterance pause included)."""
    daemon, _ = daemon_with(ListAudioSource([]), tmp_path)
    stats = daemon.pipeline.stats
    stats.latencies.extend([0.0, 0.0, 0.01])
    stats.speech_latencies.extend([0.8, 0.9, 1.0])
    status = daemon.status()
    assert status["latency_p50_s"] == 0.9
    # Backlog only (no voiced sample heard live): the VAD-end figure is all there is.
    stats.speech_latencies.clear()
    assert daemon.status()["latency_p50_s"] == 0.0


def test_daemon_parts_cannot_be_built_without_every_part():
    """Every part the daemon reads is a declared field with no default: a DaemonParts that
    lacks one is refused when it is built, not found missing (or quietly defaulted) later."""
    defaulted = [f.name for f in attrs.fields(DaemonParts) if f.default is not attrs.NOTHING]
    assert defaulted == []
    names = [f.name for f in attrs.fields(DaemonParts)]
    assert {"gap", "listening", "start_time", "reexec", "notify"} <= set(names)
    given = {name: None for name in names if name != "gap"}
    with pytest.raises(TypeError, match="gap"):
        DaemonParts(**given)
