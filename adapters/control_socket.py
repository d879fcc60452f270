"""The control socket: one JSON request per line over a Unix socket, mode 0600, same user only."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("swictation.control")
MAX_REQUEST = 4096
TIMEOUT_S = 2.0
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(RuntimeError):
    """The socket cannot be used, said in one line."""


def default_socket_path() -> Path:
    """$XDG_RUNTIME_DIR/swictation.sock; without XDG_RUNTIME_DIR, a private directory
    /tmp/swictation-$UID (mode 0700) holds it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "swictation.sock"
    return Path(f"/tmp/swictation-{os.getuid()}") / "swictation.sock"


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    def __init__(self, path: str | Path, handler: Handler, allowed_uid: int | None = None):
        self.path = Path(path)
        self._handler = handler
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ControlError(f"{self.path}: exists and is not a socket; not touching it")
            if _answers(self.path):
                raise ControlError(f"{self.path}: another swictationd is running")
            self.path.unlink()  # left behind by a daemon that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is created 0600: no window with wider access
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="swictation-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(TIMEOUT_S)
            try:
                uid = _peer_uid(conn)
                if uid != self._uid:
                    log.warning("control: refused a connection from uid %d", uid)
                    _send(conn, {"ok": False, "error": "permission denied: not the same user"})
                    return
                line = _read_line(conn)
                reply = self._dispatch(line)
            except TimeoutError:
                reply = {"ok": False, "error": f"request timed out after {TIMEOUT_S:g}s"}
            except ValueError as error:
                reply = {"ok": False, "error": str(error)}
            except OSError:
                return
            try:
                _send(conn, reply)
            except OSError:
                return

    def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"ok": False, "error": "malformed request: expected one JSON object per line"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'malformed request: expected {"cmd": "..."}'}
        try:
            return self._handler(request)
        except Exception as error:  # a bug in a handler must not take the daemon down
            log.exception("control handler failed")
            return {"ok": False, "error": f"internal error: {error}"}

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._thread is not None:
            self._thread.join(2)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError(f"request too large (over {MAX_REQUEST} bytes)")
    return data.split(b"\n", 1)[0]


def _send(conn: socket.socket, reply: dict[str, Any]) -> None:
    conn.sendall(json.dumps(reply).encode() + b"\n")


def _answers(path: Path) -> bool:
    try:
        request(path, {"cmd": "status"}, timeout=1.0)
    except ControlError:
        return False
    return True


def request(path: str | Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request, one reply; ControlError when no daemon answers."""
    path = Path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        _send(sock, message)
        line = _read_line(sock)
    except FileNotFoundError:
        raise ControlError(f"no daemon is running (no socket at {path})") from None
    except ConnectionRefusedError:
        raise ControlError(f"no daemon is running (nothing listens on {path})") from None
    except PermissionError:
        raise ControlError(f"{path}: permission denied (another user's daemon?)") from None
    except (TimeoutError, OSError) as error:
        raise ControlError(f"{path}: the daemon did not answer ({error})") from None
    finally:
        sock.close()
    try:
        reply = json.loads(line.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(f"{path}: the daemon's answer is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the daemon's answer is not a JSON object")
    return reply
