"""`swictationd` publishes its level on the session bus: a listener on a private bus (a real
`dbus-daemon`) receives one PressureChanged signal per level change in the flight recorder."""

from __future__ import annotations

import threading

import pytest

from tests.e2e.test_tenants_daemon import run_under_pressure
from tests.integration.test_tenants_dbus import _listen, bus_daemon, private_bus  # noqa: F401

pytest.importorskip("jeepney", reason="jeepney is not installed (the dbus extra)")


class _Listener(threading.Thread):
    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.connection, self.rule = _listen(address)
        self.bodies: list[tuple] = []
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with self.connection.filter(self.rule, bufsize=64) as queue:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    self.bodies.append(self.connection.recv_until_filtered(queue, timeout=0.2).body)
                except TimeoutError:
                    continue


def test_the_daemon_signals_each_level_change(private_bus, tmp_path, swictationd):  # noqa: F811
    listener = _Listener(private_bus)
    listener.start()
    assert listener.ready.wait(10)
    config = tmp_path / "config.toml"
    config.write_text("[thresholds]\ndwell_s = 1.0\n[guard]\nmin_offload_mib = 16\n")
    try:
        result, log = run_under_pressure(
            swictationd, tmp_path, config, env={"DBUS_SESSION_BUS_ADDRESS": private_bus}
        )
    finally:
        listener.stop.set()
        listener.join(10)
        listener.connection.close()
    assert result.code == 0, result.err
    assert "publishing the memory level on the D-Bus session bus" in result.err
    changes = [(e["level"], e.get("usage", -1.0)) for e in log if e["type"] == "level"]
    assert [level for level, _usage in changes][:1] == ["EMERGENCY"]
    assert [body[0] for body in listener.bodies] == [level for level, _ in changes]
    for (level, usage), body in zip(changes, listener.bodies, strict=True):
        assert body == (level, pytest.approx(usage, abs=1e-4))
