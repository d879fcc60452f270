"""The control socket over real Unix sockets: requests, malformed input, permissions."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from swictation.adapters.control_socket import (
    MAX_REQUEST,
    ControlError,
    ControlServer,
    default_socket_path,
    request,
)


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
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


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
    ],
)
def test_malformed_input_gets_an_error_object_and_the_server_lives_on(server, payload, error):
    import json

    reply = json.loads(raw(server.path, payload))
    assert reply["ok"] is False
    assert error in reply["error"]
    assert request(server.path, {"cmd": "status"})["ok"]


def test_oversized_requests_are_refused(server):
    import json

    reply = json.loads(raw(server.path, b"x" * (MAX_REQUEST + 100)))
    assert "too large" in reply["error"]


def test_a_silent_client_times_out_without_blocking_others(server):
    import json

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(server.path))
        assert request(server.path, {"cmd": "status"})["ok"]
        idle.settimeout(5)
        reply = json.loads(idle.recv(4096))
    assert "timed out" in reply["error"]


def test_another_users_connection_is_refused(tmp_path):
    srv = ControlServer(tmp_path / "s.sock", handler, allowed_uid=os.getuid() + 4242)
    srv.start()
    try:
        reply = request(srv.path, {"cmd": "status"})
    finally:
        srv.stop()
    assert reply == {"ok": False, "error": "permission denied: not the same user"}


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
    finally:
        first.stop()
    assert not path.exists()


def test_a_regular_file_in_the_way_is_left_alone(tmp_path):
    path = tmp_path / "s.sock"
    path.write_text("mine")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(path, handler).start()
    assert path.read_text() == "mine"


def test_no_daemon(tmp_path):
    with pytest.raises(ControlError, match="no daemon is running"):
        request(tmp_path / "nothing.sock", {"cmd": "status"})


def test_default_path_prefers_xdg_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == tmp_path / "swictation.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_path().parent.name == f"swictation-{os.getuid()}"
