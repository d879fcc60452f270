"""The guard's level on D-Bus: PressureChanged signals received by a listener on a private
session bus (a real `dbus-daemon` started by the test)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from swictation.adapters.dbus import (
    INTERFACE,
    OBJECT_PATH,
    SIGNAL,
    DbusPressurePublisher,
    DbusUnavailableError,
    TeeEventSink,
)
from swictation.adapters.memory import EventList
from swictation.domain.model import Event

jeepney = pytest.importorskip("jeepney", reason="jeepney is not installed (the dbus extra)")
from jeepney import MatchRule  # noqa: E402
from jeepney.io.blocking import open_dbus_connection  # noqa: E402


@pytest.fixture
def bus_daemon(tmp_path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (Debian: dbus-daemon; see scripts/setup-system)")
    config = tmp_path / "session.conf"
    config.write_text(
        "<!DOCTYPE busconfig PUBLIC '-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN'"
        " 'http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd'>\n"
        "<busconfig><type>session</type>"
        f"<listen>unix:dir={tmp_path}</listen>"
        "<auth>EXTERNAL</auth>"
        "<policy context='default'><allow send_destination='*' eavesdrop='true'/>"
        "<allow eavesdrop='true'/><allow own='*'/></policy></busconfig>\n"
    )
    process = subprocess.Popen(
        [daemon, f"--config-file={config}", "--print-address", "--nofork"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()  # blocks until the bus listens
        assert address.startswith("unix:"), address
        yield address, process
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def private_bus(bus_daemon) -> str:
    return bus_daemon[0]


def _listen(address: str):
    connection = open_dbus_connection(bus=address)
    rule = MatchRule(type="signal", interface=INTERFACE, member=SIGNAL, path=OBJECT_PATH)
    from jeepney.bus_messages import message_bus

    connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=5)
    return connection, rule


def test_level_changes_arrive_as_pressure_changed_signals(private_bus):
    listener, rule = _listen(private_bus)
    publisher = DbusPressurePublisher(private_bus)
    try:
        with listener.filter(rule, bufsize=16) as queue:
            publisher.emit(Event(1.0, "sample", "NORMAL", usage=0.5))  # not a level change
            publisher.emit(Event(2.0, "level", "EMERGENCY", usage=0.9612))
            publisher.emit(Event(9.0, "level", "NORMAL", usage=None))
            first = listener.recv_until_filtered(queue, timeout=10)
            second = listener.recv_until_filtered(queue, timeout=10)
    finally:
        publisher.close()
        listener.close()
    assert first.body == ("EMERGENCY", pytest.approx(0.9612))
    assert second.body == ("NORMAL", -1.0)
    assert first.header.fields[jeepney.HeaderFields.signature] == "sd"
    assert first.header.fields[jeepney.HeaderFields.sender] == publisher.unique_name
    assert publisher.sent == 2


def test_a_bus_that_goes_away_stops_publishing_without_raising(bus_daemon):
    address, process = bus_daemon
    publisher = DbusPressurePublisher(address)
    assert publisher.publish("WARNING", 0.85) is True
    process.terminate()
    process.wait(10)
    assert publisher.publish("WARNING", 0.85) is False
    assert publisher.publish("CRITICAL", 0.91) is False


def test_no_bus_is_a_one_line_error(tmp_path):
    with pytest.raises(DbusUnavailableError, match="no D-Bus"):
        DbusPressurePublisher(f"unix:path={tmp_path}/nothing-here")


def test_the_tee_hands_every_event_to_every_sink_even_after_one_fails():
    class Broken(EventList):
        def emit(self, event: Event) -> None:
            raise OSError("disk full")

    kept = EventList()
    tee = TeeEventSink(Broken(), kept)
    with pytest.raises(OSError):
        tee.emit(Event(0.0, "level", "WARNING"))
    assert [e.level for e in kept.events] == ["WARNING"]


def test_session_bus_from_the_environment(private_bus, monkeypatch):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private_bus)
    publisher = DbusPressurePublisher()
    try:
        assert publisher.publish("CRITICAL", 0.92)
    finally:
        publisher.close()
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == private_bus


def test_a_bus_that_stops_reading_never_holds_the_publisher_for_long(bus_daemon):
    address, process = bus_daemon
    publisher = DbusPressurePublisher(address, send_timeout_s=0.5)
    outcome: list[bool] = []

    def flood() -> None:
        # Enough signals to fill the socket's buffer many times over.
        for _ in range(200_000):
            if not publisher.publish("EMERGENCY", 0.97):
                outcome.append(False)
                return
        outcome.append(True)

    process.send_signal(signal.SIGSTOP)  # the bus stops reading
    try:
        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        sender.join(60)
        assert not sender.is_alive(), "a send blocked on a bus that stopped reading"
    finally:
        process.send_signal(signal.SIGCONT)
    assert outcome == [False]
    assert publisher.publish("NORMAL", 0.5) is False  # and it stays off
    publisher.close()
