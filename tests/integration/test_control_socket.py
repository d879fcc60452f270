"""The control socket over real Unix sockets: requests, malformed input, permissions, and the
attacks it must survive (trickling, flooding, descriptor exhaustion, deep JSON, a second or
foreign server)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from swictation.adapters.control_socket import (
    MAX_REQUEST,
    ControlError,
    ControlServer,
    SocketLock,
    default_socket_path,
    request,
)

ROOT = Path(__file__).parents[2]
NOBODY = 65534


def handler(req):
    if req["cmd"] == "boom":
        raise RuntimeError("handler bug")
    return {"ok": True, "echo": req["cmd"]}


@pytest.fixture
def server(tmp_path):
    srv = ControlServer(tmp_path / "run" / "swictation.sock", handler)
    srv.start()
    yield srv
    srv.stop()


def raw(path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        # refused before it was read (busy): the reply is already waiting
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        return read_reply(sock)


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def is_busy(reply: dict) -> bool:
    return reply["ok"] is False and reply["error"].startswith("busy")


class Child:
    """tests/integration/control_child.py in its own process."""

    def __init__(self, *args: str):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.control_child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.expect("ready")

    def expect(self, word: str) -> None:
        line = self.process.stdout.readline().strip()
        assert line == word, f"child said {line!r}; stderr: {self.process.stderr.read()}"

    def say(self, word: str) -> None:
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        self.expect({"fill": "full", "release": "released"}[word])

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.communicate()


def process_state(pid: int) -> str:
    stat_line = Path(f"/proc/{pid}/stat").read_text()
    return stat_line.rsplit(")", 1)[1].split()[0]


def stopped(child: Child) -> None:
    os.kill(child.process.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 60
    while process_state(child.process.pid) not in ("T", "t"):
        assert time.monotonic() < deadline, "the child never stopped"
        time.sleep(0.01)


def fill_backlog(path: Path, cap: int = 2000) -> list[socket.socket]:
    """Connects without blocking until the listener's queue is full; every connection sends
    a status request at once, as a client would."""
    queued = []
    for _ in range(cap):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(path))
        except BlockingIOError:
            sock.close()
            break
        sock.sendall(b'{"cmd": "status"}\n')
        queued.append(sock)
    return queued


# -- requests and replies --------------------------------------------------------------------


def test_a_request_and_its_reply(server):
    assert request(server.path, {"cmd": "status"}) == {"ok": True, "echo": "status"}


def test_the_socket_is_private(server):
    mode = stat.S_IMODE(os.stat(server.path).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o700


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"not json\n", "malformed request"),
        (b"[1, 2]\n", "malformed request"),
        (b'{"command": "status"}\n', 'expected {"cmd": "..."}'),
        (b"\xff\xfe\n", "malformed request"),
        (b'{"cmd": "boom"}\n', "internal error: handler bug"),
        (b"[" * 3000 + b"\n", "nested too deep"),
        (b'{"cmd": "status", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}\n", "nested too deep"),
        (b'{"cmd": "status", "x": "' + b"[" * 3000 + b'"}\n', None),  # brackets in a string
    ],
)
def test_malformed_input_gets_an_error_object_and_the_server_lives_on(server, payload, error):
    reply = json.loads(raw(server.path, payload))
    if error is None:
        assert reply == {"ok": True, "echo": "status"}
    else:
        assert reply["ok"] is False
        assert error in reply["error"]
    assert request(server.path, {"cmd": "status"})["ok"]


def test_oversized_requests_are_refused(server):
    reply = json.loads(raw(server.path, b"x" * (MAX_REQUEST + 100)))
    assert "too large" in reply["error"]


def test_a_silent_client_times_out_without_blocking_others(server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(server.path))
        assert request(server.path, {"cmd": "status"})["ok"]
        idle.settimeout(30)
        reply = json.loads(idle.recv(4096))
    assert "timed out" in reply["error"]


def test_a_trickling_client_is_cut_off_two_seconds_after_it_connects(server):
    """One byte every 1.5 s: each read comes within 2 s, but the whole request does not."""
    message = b'{"cmd": "status"}\n'
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(server.path))
        began = time.monotonic()
        sent = 0
        reply = b""
        while sent < len(message):
            sock.sendall(message[sent : sent + 1])
            sent += 1
            readable, _, _ = select.select([sock], [], [], 1.5)
            if readable:
                sock.settimeout(30)
                reply = read_reply(sock)
                break
        else:
            sock.settimeout(60)
            reply = read_reply(sock)
        elapsed = time.monotonic() - began
    assert "timed out after 2s" in json.loads(reply)["error"]
    assert sent < len(message), "the server waited for the whole trickled request"
    assert elapsed >= 1.9  # the limit is the request's, from the moment it connected


# -- many clients --------------------------------------------------------------------------------


def test_idle_clients_cost_no_thread(server):
    assert request(server.path, {"cmd": "status"})["ok"]
    threads = threading.active_count()
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(10)]
    try:
        for sock in idle:
            sock.connect(str(server.path))
        # accepted in order: this reply means the ten before it have been accepted
        assert request(server.path, {"cmd": "status"})["ok"]
        assert threading.active_count() <= threads  # old threads may end meanwhile, none begin
    finally:
        for sock in idle:
            sock.close()


def test_the_seventeenth_client_is_told_busy_and_the_client_tries_again(tmp_path):
    srv = ControlServer(tmp_path / "s.sock", handler, timeout_s=600)
    srv.start()
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(16)]
    try:
        for sock in idle:
            sock.connect(str(srv.path))
        reply = json.loads(raw(srv.path, b'{"cmd": "status"}\n'))
        assert is_busy(reply), reply
        answered: list[dict] = []
        worker = threading.Thread(
            target=lambda: answered.append(request(srv.path, {"cmd": "toggle"}, timeout=120))
        )
        worker.start()
        for sock in idle:
            sock.close()
        worker.join(180)
        assert answered == [{"ok": True, "echo": "toggle"}]
    finally:
        for sock in idle:
            sock.close()
        srv.stop()


def test_a_flood_waits_in_a_deep_backlog_and_every_client_is_answered_or_busy(tmp_path):
    path = tmp_path / "s.sock"
    child = Child("serve", str(path))
    try:
        stopped(child)  # nothing is accepted while it is stopped: the backlog alone holds them
        queued = fill_backlog(path)
        assert len(queued) >= 64
        os.kill(child.process.pid, signal.SIGCONT)
        replies = []
        for sock in queued:
            sock.setblocking(True)
            sock.settimeout(60)
            replies.append(json.loads(read_reply(sock)))
            sock.close()
        assert all(r == {"ok": True, "echo": "status"} or is_busy(r) for r in replies), replies
        assert request(path, {"cmd": "status"})["ok"]
    finally:
        child.kill()


def test_the_client_retries_while_the_backlog_is_full(tmp_path):
    path = tmp_path / "s.sock"
    child = Child("serve", str(path))
    attempts: list[str] | None = None  # the hook is quiet until the backlog is full

    def resume_on_the_second_attempt(event, args):
        # the client's second connect is a retry: the first met a full backlog
        if event == "socket.connect" and attempts is not None and str(args[1]) == str(path):
            attempts.append(args[1])
            if len(attempts) == 2:
                os.kill(child.process.pid, signal.SIGCONT)

    sys.addaudithook(resume_on_the_second_attempt)  # cannot be removed: it goes quiet after
    try:
        stopped(child)
        queued = fill_backlog(path)
        attempts = []
        assert request(path, {"cmd": "status"}, timeout=120) == {"ok": True, "echo": "status"}
        assert len(attempts) >= 2
        for sock in queued:
            sock.close()
    finally:
        attempts = None
        child.kill()


def test_running_out_of_file_descriptors_in_accept_is_logged_and_survived(tmp_path):
    path = tmp_path / "s.sock"
    child = Child("serve", str(path))
    try:
        child.say("fill")
        reply = json.loads(raw(path, b'{"cmd": "status"}\n'))
        assert is_busy(reply), reply
        child.say("release")
        assert request(path, {"cmd": "status"}, timeout=60) == {"ok": True, "echo": "status"}
        child.process.stdin.close()
        child.process.wait(timeout=60)
        err = child.process.stderr.read()
        assert child.process.returncode == 0, err
        assert "accept" in err and "Too many open files" in err
    finally:
        child.kill()


# -- one daemon per socket -------------------------------------------------------------------


def lock_of(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def is_locked(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_is_held_while_serving_and_released_at_stop(tmp_path):
    srv = ControlServer(tmp_path / "s.sock", handler)
    srv.start()
    try:
        assert is_locked(lock_of(srv.path))
    finally:
        srv.stop()
    assert not is_locked(lock_of(srv.path))
    assert not srv.path.exists()


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path):
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a daemon that died
    first = ControlServer(path, handler)
    first.start()
    try:
        with pytest.raises(ControlError, match="another swictationd is running"):
            ControlServer(path, handler).start()
        assert request(path, {"cmd": "status"})["ok"]
    finally:
        first.stop()
    assert not path.exists()


def test_a_socket_whose_lock_is_held_is_never_reclaimed_even_when_it_does_not_answer(tmp_path):
    """A stalled daemon (here: one that holds the lock and answers nothing) keeps its socket."""
    path = tmp_path / "s.sock"
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.bind(str(path))
    stalled.listen(1)
    inode = os.stat(path).st_ino
    fd = os.open(lock_of(path), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(ControlError, match="another swictationd is running"):
            ControlServer(path, handler).start()
        assert os.stat(path).st_ino == inode
    finally:
        os.close(fd)
        stalled.close()


def test_a_regular_file_in_the_way_is_left_alone(tmp_path):
    path = tmp_path / "s.sock"
    path.write_text("mine")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(path, handler).start()
    assert path.read_text() == "mine"


# -- who may serve and who is trusted -----------------------------------------------------------


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
def test_a_socket_directory_others_can_enter_is_refused(tmp_path, mode):
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(ControlError, match="0700") as raised:
        ControlServer(directory / "s.sock", handler).start()
    assert "\n" not in str(raised.value)
    assert list(directory.iterdir()) == []


def test_a_socket_directory_owned_by_another_user_is_refused(tmp_path):
    if os.getuid() == 0:
        directory = tmp_path / "theirs"
        directory.mkdir(mode=0o700)
        os.chown(directory, NOBODY, NOBODY)
        owner = NOBODY
    else:
        directory, owner = Path("/"), 0  # root's, and never this user's
    with pytest.raises(ControlError, match=f"owned by uid {owner}") as raised:
        ControlServer(directory / "s.sock", handler).start()
    assert "\n" not in str(raised.value)
    assert not (directory / "s.sock").exists()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to listen as another user")
def test_the_client_does_not_trust_a_server_of_another_uid(tmp_path):
    path = tmp_path / "s.sock"
    child = Child("foreign", str(path), str(NOBODY))
    try:
        with pytest.raises(ControlError, match=f"uid {NOBODY}"):
            request(path, {"cmd": "status"}, timeout=60)
    finally:
        child.kill()


def test_another_users_connection_is_refused(tmp_path):
    srv = ControlServer(tmp_path / "s.sock", handler, allowed_uid=os.getuid() + 4242)
    srv.start()
    try:
        reply = raw(srv.path, b'{"cmd": "status"}\n')
    finally:
        srv.stop()
    assert json.loads(reply) == {"ok": False, "error": "permission denied: not the same user"}


def test_no_daemon(tmp_path):
    with pytest.raises(ControlError, match="no daemon is running"):
        request(tmp_path / "nothing.sock", {"cmd": "status"})


def test_default_path_prefers_xdg_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == tmp_path / "swictation.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_path().parent.name == f"swictation-{os.getuid()}"


def test_a_lock_handed_in_outlives_the_server_until_its_taker_releases_it(tmp_path):
    """The daemon takes the lock before its models load and keeps it past the server's stop
    (while it spools), so no second daemon starts on a half-stopped one."""
    path = tmp_path / "s.sock"
    lock = SocketLock.take(path)
    srv = ControlServer(path, handler, lock=lock)
    srv.start()
    srv.stop()
    assert not path.exists()
    assert is_locked(lock_of(path))
    with pytest.raises(ControlError, match="another swictationd is running"):
        SocketLock.take(path)
    lock.release()
    assert not is_locked(lock_of(path))
