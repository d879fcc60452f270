"""The control socket is one of the daemon's workers (issue 8): its failures are counted and
survived, a loop that ends is restarted, one that cannot be is reported failed, and all of
it shows in the health the daemon's `status` and final report carry."""

from __future__ import annotations

import errno
import threading

import pytest

from swictation.adapters.control_socket import ControlServer, request


def handler(req):
    if req["cmd"] == "boom":
        raise RuntimeError("handler bug")
    return {"ok": True, "echo": req["cmd"]}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "run" / "swictation.sock"


def serving(path, **kwargs) -> ControlServer:
    server = ControlServer(path, handler, **kwargs)
    server.start()
    return server


def answered_then_health(server: ControlServer, path) -> dict:
    """After a fault: the next request is answered as ever, and the health read then."""
    assert request(path, {"cmd": "status"}) == {"ok": True, "echo": "status"}
    return server.health()


def test_a_failing_handler_is_counted_and_the_next_request_is_answered(path):
    server = serving(path)
    try:
        assert server.health() == {
            "state": "running", "errors": 0, "restarts": 0, "last_error": None,
        }  # fmt: skip
        assert request(path, {"cmd": "boom"})["error"] == "internal error: handler bug"
        health = answered_then_health(server, path)
        assert health["errors"] == 1 and health["state"] == "running"
        assert health["last_error"] == "handler: RuntimeError: handler bug"
        assert server.alive
    finally:
        server.stop()
    assert server.health()["state"] == "done"


class FailingAccept:
    """The listening socket, except that its next `accept` fails as the kernel's would
    under memory pressure (ENOBUFS cannot be provoked from a test)."""

    def __init__(self, inner, failures: int) -> None:
        self._inner = inner
        self.left = failures

    def accept(self):
        if self.left > 0:
            self.left -= 1
            raise OSError(errno.ENOBUFS, "No buffer space available")
        return self._inner.accept()

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_an_accept_error_is_counted_and_survived(path):
    server = serving(path)
    try:
        server._sock = FailingAccept(server._sock, failures=1)
        # The client retries what the paused listener does not take at once.
        health = answered_then_health(server, path)
        assert health["errors"] == 1, health
        assert health["last_error"].startswith("accept: OSError")
        assert health["state"] == "running" and health["restarts"] == 0
    finally:
        server.stop()


def test_a_loop_that_ends_is_restarted_and_serves_again(path):
    server = serving(path, restart_pause_s=0.0)
    original = server._expire
    escaped = threading.Event()

    def expire_once() -> None:
        if not escaped.is_set():
            escaped.set()
            raise SystemExit("escaped the loop")  # not an Exception: the loop itself ends
        original()

    try:
        server._expire = expire_once
        request(path, {"cmd": "status"})  # wakes the loop, which then ends
        assert escaped.wait(30)
        health = answered_then_health(server, path)
        assert health["restarts"] == 1 and health["state"] == "running"
        assert health["last_error"] == "loop: SystemExit: escaped the loop"
        assert server.alive
    finally:
        server.stop()


def test_a_loop_that_keeps_ending_is_failed_and_not_alive(path):
    server = serving(path, max_restarts=3, restart_pause_s=0.0)

    def always() -> None:
        raise SystemExit("broken for good")

    server._next_timeout = always  # every turn of the loop ends it
    server._wake()
    assert server._thread is not None
    server._thread.join(30)
    try:
        health = server.health()
        assert health["state"] == "failed", health
        assert health["restarts"] == 3 and health["errors"] == 4
        assert not server.alive  # the daemon stops feeding its watchdog
    finally:
        server.stop()


def test_the_daemons_status_shows_the_control_thread_and_a_failed_one_is_unhealthy(path, tmp_path):
    from swictation.adapters.memory import ListAudioSource
    from tests.unit.test_daemon_lifecycle import daemon_with
    from tests.unit.test_pipeline import audio

    daemon, _ = daemon_with(ListAudioSource(audio(("silence", 0.5))), tmp_path)
    server = ControlServer(path, daemon.handle, max_restarts=0, restart_pause_s=0.0)
    daemon.control = server
    server.start()
    try:
        daemon.guard.start()
        reply = request(path, {"cmd": "status"})
        assert reply["workers"]["control"]["state"] == "running"
        assert reply["healthy"] is True

        def broken() -> None:
            raise SystemExit("broken for good")

        server._next_timeout = broken
        server._wake()
        assert server._thread is not None
        server._thread.join(30)
        status = daemon.status()
        assert status["workers"]["control"]["state"] == "failed"
        assert status["healthy"] is False  # so the watchdog is no longer fed
    finally:
        daemon.guard.stop()
        server.stop()
