"""The control socket is one of the daemon's workers (issue 8): its loop runs under the
daemon's `Workers` (as the container wires it), its failures are counted in that worker's
health and survived, a loop that ends is restarted, one that cannot be is reported failed
(the daemon goes on, its watchdog unfed), and all of it is the health `status` shows."""

from __future__ import annotations

import errno
import logging
import threading

import pytest

from swictation.adapters.control_socket import ControlServer, request
from swictation.application.container import CONTROL, supervised_control
from swictation.application.services.workers import Workers


def handler(req):
    if req["cmd"] == "boom":
        raise RuntimeError("handler bug")
    return {"ok": True, "echo": req["cmd"]}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "run" / "swictation.sock"


def serving(path, workers: Workers, **kwargs) -> ControlServer:
    server = supervised_control(path, handler, workers, failure_pause_s=0.0, **kwargs)
    server.start()
    return server


def answered_then_health(workers: Workers, path) -> dict:
    """After a fault: the next request is answered as ever, and the health read then."""
    assert request(path, {"cmd": "status"}) == {"ok": True, "echo": "status"}
    return workers.snapshot()[CONTROL]


def test_a_failing_handler_is_counted_and_the_next_request_is_answered(path):
    workers = Workers()
    server = serving(path, workers)
    try:
        assert answered_then_health(workers, path) == {
            "state": "running", "errors": 0, "restarts": 0, "last_error": None,
        }  # fmt: skip
        assert request(path, {"cmd": "boom"})["error"] == "internal error: handler bug"
        health = answered_then_health(workers, path)
        assert health["errors"] == 1 and health["state"] == "running"
        assert health["last_error"] == "handler: RuntimeError: handler bug"
        assert workers.all_alive()
    finally:
        server.stop()
    assert workers.join(CONTROL, 30)
    assert workers.snapshot()[CONTROL]["state"] == "done"


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
    workers = Workers()
    server = serving(path, workers)
    try:
        server._sock = FailingAccept(server._sock, failures=1)
        # The client retries what the paused listener does not take at once.
        health = answered_then_health(workers, path)
        assert health["errors"] == 1, health
        assert health["last_error"].startswith("accept: OSError")
        assert health["state"] == "running" and health["restarts"] == 0
    finally:
        server.stop()


def test_a_failure_repeated_turn_after_turn_is_logged_once_with_its_count(path, caplog):
    workers = Workers()
    server = serving(path, workers)
    original = server._expire
    left = [3]

    def expire_failing_thrice() -> None:
        if left[0] > 0:
            left[0] -= 1
            raise KeyError("deadline")
        original()

    try:
        server._expire = expire_failing_thrice
        with caplog.at_level(logging.INFO, logger="swictation"):
            answered_then_health(workers, path)
            # A turn may answer before its own expiry fails: wait (on the count, not a clock)
            # until the three failing turns are all counted, then read the health.
            for _ in range(6000):  # 30 s: a busy machine is slow, never wrong
                if left[0] == 0 and workers.snapshot()[CONTROL]["errors"] >= 3:
                    break
                threading.Event().wait(0.005)
            health = workers.snapshot()[CONTROL]
            server._wake()  # one more turn, that works
            assert request(path, {"cmd": "status"})["ok"]
    finally:
        server.stop()
    assert health["errors"] == 3 and health["restarts"] == 0, health
    assert health["last_error"] == "loop: KeyError: 'deadline'"
    tracebacks = [r for r in caplog.records if r.exc_info and "control: loop" in r.getMessage()]
    assert len(tracebacks) == 1
    assert "control: loop works again after 3 failures" in caplog.text


def test_a_loop_that_ends_is_restarted_and_serves_again(path):
    workers = Workers(backoff_s=0.0)
    server = serving(path, workers)
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
        health = answered_then_health(workers, path)
        assert health["restarts"] == 1 and health["state"] == "running"
        assert health["last_error"] == "SystemExit: escaped the loop"
        assert workers.all_alive()
    finally:
        server.stop()


def test_a_loop_that_keeps_ending_is_failed_and_not_alive_and_the_daemon_goes_on(path, caplog):
    fatal: list[str] = []
    workers = Workers(on_fatal=fatal.append, max_restarts=3, backoff_s=0.0)
    server = serving(path, workers)

    def always() -> None:
        raise SystemExit("broken for good")

    server._next_timeout = always  # every turn of the loop ends it
    try:
        with caplog.at_level(logging.INFO, logger="swictation"):
            server._wake()
            assert workers.join(CONTROL, 30)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1  # the same failure again and again: one traceback
        assert "worker control failed and cannot be restarted" in caplog.text
        health = workers.snapshot()[CONTROL]
        assert health["state"] == "failed", health
        assert health["restarts"] == 3 and health["errors"] == 4
        assert not workers.all_alive()  # the daemon stops feeding its watchdog
        assert fatal == [] and workers.fatal is None  # dictation goes on without the socket
    finally:
        server.stop()


def test_the_daemons_status_shows_the_control_thread_and_a_failed_one_is_unhealthy(path, tmp_path):
    from swictation.adapters.memory import ListAudioSource
    from tests.unit.test_daemon_lifecycle import daemon_with
    from tests.unit.test_pipeline import audio

    daemon, _ = daemon_with(ListAudioSource(audio(("silence", 0.5))), tmp_path)
    server = supervised_control(path, daemon.handle, daemon.workers)
    server.start()
    try:
        daemon.guard.start()
        reply = request(path, {"cmd": "status"})
        assert reply["workers"][CONTROL]["state"] == "running"
        assert reply["healthy"] is True

        def broken() -> None:
            raise SystemExit("broken for good")

        server._next_timeout = broken
        server._wake()
        assert daemon.workers.join(CONTROL, 30)
        status = daemon.status()
        assert status["workers"][CONTROL]["state"] == "failed"
        assert status["workers"][CONTROL]["last_error"] == "SystemExit: broken for good"
        assert status["healthy"] is False  # so the watchdog is no longer fed
    finally:
        daemon.guard.stop()
        server.stop()
