"""The composition root: one container for the daemon, record and replay; selectors by
configuration key; fakes swapped in with `override`."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
from dependency_injector import providers

from swictation.adapters.memory import (
    EventList,
    FakeClock,
    InMemoryModelHost,
    NoProbe,
    ScriptedProbe,
)
from swictation.adapters.trace_row import TraceRowProbe
from swictation.application.config import DaemonSettings, GuardConfig, PolicyName, load_settings
from swictation.application.container import (
    daemon_container,
    make_container,
    replay_container,
    shutdown,
    simulate,
)
from swictation.application.services.daemon import EXIT_MEMORY_SHUTDOWN, EXIT_OK
from swictation.application.services.simulation import ModelSpec
from swictation.domain.legacy import LegacyPolicy
from swictation.domain.model import Thresholds, Tuning
from swictation.domain.policy import GuardPolicy
from swictation.ports.spool import OpenUtterance, Spool
from tests.unit.parts import RATE, audio, with_fakes

TWO_SENTENCES = audio(
    ("silence", 1.0), ("speech", 1.0), ("silence", 1.0), ("speech", 0.8), ("silence", 1.0)
)


def test_policy_selector():
    assert isinstance(make_container().policy(), GuardPolicy)
    assert isinstance(make_container(policy="legacy").policy(), LegacyPolicy)


def test_fakes_swap_in_with_override():
    container = make_container()
    clock = FakeClock()
    events = EventList()
    container.clock.override(providers.Object(clock))
    container.events.override(providers.Object(events))
    container.probe.override(providers.Object(ScriptedProbe(lambda t: 9.5, 10.0, clock)))
    guard = container.guard()
    decision = guard.tick()
    assert decision.level.name == "EMERGENCY"
    assert events.of_type("level")[0].level == "EMERGENCY"


def test_events_to_a_file_closed_by_the_container(tmp_path):
    path = tmp_path / "events.jsonl"
    container = make_container(events_path=str(path))
    guard = container.guard()
    guard.tick()
    shutdown(container)
    assert '"type":"probe"' in path.read_text()


def _file_run(tmp_path, **sections) -> DaemonSettings:
    config = load_settings(
        None,
        {},
        {"daemon": {"probe": "none", "spool_dir": str(tmp_path / "spool")}, **sections},
        default_file=False,
    )
    return DaemonSettings(config, audio_file=str(tmp_path / "unused.wav"))


def test_the_daemon_built_by_the_container_transcribes_in_process(tmp_path):
    container = daemon_container(_file_run(tmp_path))
    output, events = with_fakes(container, ["hello there", "general kenobi"], TWO_SENTENCES)
    daemon = container.daemon()
    assert container.control() is None  # a file run has no control socket unless asked
    try:
        code = daemon.run()
    finally:
        shutdown(container)
    assert code == EXIT_OK
    assert output.lines == ["hello there", "general kenobi"]
    assert [e.detail["words"] for e in events.of_type("utterance")] == [2, 2]
    assert isinstance(container.probe(), NoProbe)


def test_the_guard_and_the_daemon_share_one_stop(tmp_path):
    """The guard's SHUTDOWN reaches the daemon through the injected stop signal: capture
    stops, the queue is spooled, and the exit status says why."""
    container = daemon_container(_file_run(tmp_path))
    with_fakes(container, ["never typed"], audio(("silence", 1), ("speech", 1), ("silence", 1)))
    daemon = container.daemon()
    guard = container.guard()
    assert guard.on_shutdown is not None
    guard.on_shutdown("the card stayed full")  # what the guard's SHUTDOWN action calls
    assert container.stop().shutdown_reason == "the card stayed full"
    try:
        code = daemon.run()
    finally:
        shutdown(container)
    assert code == EXIT_MEMORY_SHUTDOWN


class ListSpool(Spool):
    """The spool port in memory: each utterance put is named by its number; nothing is
    written ahead."""

    def __init__(self) -> None:
        self.kept: dict[Path, np.ndarray] = {}
        self.delivered: list[Path] = []
        self.written_bytes = 0
        self.lost_s = 0.0

    def put(self, samples, label="", twin=None) -> Path:
        path = Path(f"{len(self.kept)}.wav")
        self.kept[path] = samples
        return path

    def open(self, start_sample: int) -> OpenUtterance | None:
        return None

    def backlog(self) -> list[Path]:
        return []

    def seconds(self, path: Path) -> float:
        return len(self.kept[path]) / RATE

    def load(self, path: Path):
        return self.kept.get(path)

    def done(self, path: Path) -> None:
        self.delivered.append(path)


def test_the_spool_is_a_port_the_container_injects(tmp_path):
    """Each utterance is kept through the injected spool until its text is delivered."""
    container = daemon_container(_file_run(tmp_path))
    output, _ = with_fakes(container, ["hello there", "general kenobi"], TWO_SENTENCES)
    spool = ListSpool()
    container.spool.override(providers.Object(spool))
    try:
        code = container.daemon().run()
    finally:
        shutdown(container)
    assert code == EXIT_OK
    assert output.lines == ["hello there", "general kenobi"]
    assert spool.delivered == [Path("0.wav"), Path("1.wav")]
    assert not (tmp_path / "spool").exists()  # nothing reached the configured directory


def test_only_the_selected_resources_start(tmp_path):
    """init_resources() would start NVML behind an unselected branch; the container starts
    only what the selected providers ask for."""
    container = daemon_container(_file_run(tmp_path))
    with_fakes(container, [], [])
    container.daemon()
    assert not container.nvml.initialized
    assert not container.models.initialized  # the host was overridden: no model loaded
    assert not container.control_server.initialized
    shutdown(container)


def test_replay_is_built_by_the_same_container():
    container = replay_container(5.0, [ModelSpec("stt", 1000.0)])
    rig = container.simulation()
    assert isinstance(rig.row, TraceRowProbe)
    assert rig.clock.now() == 5.0
    assert isinstance(rig.host, InMemoryModelHost)
    rig.row.used, rig.row.total = 500.0, 4000.0
    sample = rig.guard.probe.sample()
    assert sample.used_mib == 1500.0  # the trace row plus our resident model
    assert isinstance(container.policy(), GuardPolicy)


def test_replay_chooses_the_policy_as_the_daemon_does():
    """Replay and `--advise` hand the container a guard configuration; its selector builds
    the policy from the configured thresholds and tuning, as for the daemon."""
    thresholds = attrs.evolve(Thresholds(), warning=0.5, dwell_s=42.0)
    tuning = attrs.evolve(Tuning(), forecast_window_s=7.0)
    chosen = replay_container(0.0, (), GuardConfig(thresholds, tuning)).policy()
    assert isinstance(chosen, GuardPolicy)
    assert (chosen.thresholds, chosen.tuning) == (thresholds, tuning)
    legacy = GuardConfig(thresholds, tuning, PolicyName.LEGACY)
    assert isinstance(replay_container(0.0, (), legacy).policy(), LegacyPolicy)
    report = simulate([0.0, 1.0], [100.0, 100.0], [1000.0, 1000.0], legacy)
    assert report.policy == "legacy"


def test_the_co_tenant_refresher_is_one_of_the_daemons_supervised_workers(tmp_path):
    import socket

    with socket.socket() as closed:  # a port nobody listens on: the tenant does not answer
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    settings = _file_run(tmp_path, tenants=[{"kind": "ollama", "url": url}])
    container = daemon_container(settings)
    with_fakes(container, [], [])
    daemon = container.daemon()
    try:
        daemon.guard.tenants.views()  # the guard's first look starts the refresher
        health = daemon.health()
        assert health["tenants"]["state"] in ("starting", "running")
        assert daemon.workers.all_alive()
    finally:
        shutdown(container)
    assert daemon.health()["tenants"]["state"] == "done"


def test_the_daemon_is_wired_at_construction_and_nothing_is_patched_on_after(tmp_path):
    """One composition root, no late binding: the guard is built with the re-execution's
    mode-change handler before any daemon exists, and building the daemon (and its control
    socket) sets nothing on the parts it is given."""
    settings = _file_run(tmp_path, guard={"on_shutdown": "cpu"})
    container = daemon_container(settings)
    with_fakes(container, [], audio(("silence", 0.5)))
    guard = container.guard()
    workers = container.workers()
    gap = container.gap()
    assert guard.on_mode_change == container.reexec().change_mode
    assert workers.on_fatal == container.stop().fail
    before = dict(vars(guard)), dict(vars(workers)), dict(vars(gap))
    daemon = container.daemon()
    assert (vars(guard), vars(workers), vars(gap)) == before
    assert daemon.parts.gap is container.gap()
    assert daemon.parts.reexec is container.reexec()
    shutdown(container)


def test_replay_and_record_build_no_re_execution():
    """The guard alone (record, replay) has no mode-change handler: building it must not
    open a microphone for a gap-aware capture."""
    assert make_container().guard().on_mode_change is None
    assert replay_container(0.0).guard().on_mode_change is None


def test_a_policy_that_lacks_thresholds_is_refused_not_defaulted():
    """The guard reads the policy's thresholds and tuning as declared parts of the Policy
    port: a policy without them fails loudly instead of polling at a made-up interval."""

    class Bare:
        name = "bare"
        level = GuardPolicy().level
        quiet_after_s = 8.0

        def observe(self, observation):
            raise AssertionError("never asked")

    container = make_container()
    container.policy.override(providers.Object(Bare()))
    try:
        container.guard()
    except AttributeError as error:
        assert "thresholds" in str(error)
    else:
        raise AssertionError("a policy without thresholds was accepted")
