"""The guard's level on the D-Bus session bus (jeepney): a `PressureChanged(level, usage)`
signal at each level change, so that other programs on the card can cooperate in turn, in the
spirit of the desktop portal's `org.freedesktop.portal.MemoryMonitor.LowMemoryWarning`."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from swictation.domain.model import Event
from swictation.ports import EventSink, SinkHealth

log = logging.getLogger("swictation.dbus")

OBJECT_PATH = "/org/swictation/Guard"
INTERFACE = "org.swictation.Guard1"
SIGNAL = "PressureChanged"
SIGNATURE = "sd"  # level name, device usage as a fraction of the card (-1 when unknown)
UNKNOWN_USAGE = -1.0


class DbusUnavailableError(RuntimeError):
    """The bus could not be reached (or jeepney is missing); the message says which."""


class DbusPressurePublisher(EventSink):
    """An event sink that turns the guard's `level` events into `PressureChanged` signals.

    `bus` is "SESSION" (the user's session bus) or a D-Bus address. A bus that goes away
    later, or stops reading for `send_timeout_s`, is logged once and publishing stops: the
    guard never fails or waits for want of a listener.
    """

    def __init__(self, bus: str = "SESSION", send_timeout_s: float = 1.0) -> None:
        try:
            from jeepney import DBusAddress
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            raise DbusUnavailableError(
                "publishing on D-Bus needs jeepney: pip install 'swictation[dbus]'"
            ) from None
        try:
            self._connection: Any = open_dbus_connection(bus=bus)
        except Exception as error:
            raise DbusUnavailableError(f"no D-Bus {bus.lower()} bus: {error}") from None
        # A bus that stops reading must not hold the guard's thread: a send that cannot go
        # out within the timeout ends publishing (as a bus that went away does).
        self._connection.sock.settimeout(send_timeout_s)
        self._emitter = DBusAddress(OBJECT_PATH, interface=INTERFACE)
        self._lock = threading.Lock()
        self._broken = False
        self.sent = 0

    @property
    def unique_name(self) -> str:
        return str(self._connection.unique_name)

    def publish(self, level: str, usage: float | None) -> bool:
        """Send one signal; returns whether it went out."""
        from jeepney import new_signal

        value = UNKNOWN_USAGE if usage is None else float(usage)
        message = new_signal(self._emitter, SIGNAL, SIGNATURE, (level, value))
        with self._lock:
            if self._broken:
                return False
            try:
                self._connection.send(message)
            except OSError as error:
                self._broken = True
                log.warning(
                    "D-Bus: the session bus went away or stopped reading (%s); "
                    "no more PressureChanged",
                    error or type(error).__name__,
                )
                return False
            self.sent += 1
            return True

    def emit(self, event: Event) -> None:
        if event.type == "level" and event.level is not None:
            self.publish(event.level, event.usage)

    def close(self) -> None:
        with self._lock:
            self._broken = True
            with contextlib.suppress(OSError):
                self._connection.close()


class TeeEventSink(EventSink):
    """Hands each event to every sink in turn; one failing sink does not starve the others."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def health(self) -> SinkHealth:
        """The sinks' behind the tee (the flight recorder's drops), summed, so the daemon's
        status sees them whether or not D-Bus publishing put a tee in front; the error of a
        failing sink first."""
        each = [sink.health() for sink in self.sinks]
        errors = [h.last_error for h in each if h.failing] + [h.last_error for h in each]
        return SinkHealth(
            sum(h.dropped for h in each),
            any(h.failing for h in each),
            next((e for e in errors if e), None),
        )

    def emit(self, event: Event) -> None:
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
