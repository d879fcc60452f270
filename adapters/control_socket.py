"""The control socket: one JSON request per line over a Unix socket, mode 0600, same user only.

What it promises (docs/daemon.md, "The control socket"): a whole request within 2 s; at most
16 clients at once (the others are told `busy`); one thread for every idle client together (a
selector loop) and one for the handler; a backlog of 128; accept errors reported and survived;
nesting limited; one daemon per socket (an exclusive flock beside it, held for the daemon's
life); a private directory; and a client that retries a full backlog and trusts only a server
of its own uid.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import fcntl
import json
import logging
import os
import queue
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swictation.ports import FailureReport

log = logging.getLogger("swictation.control")

MAX_REQUEST = 4096
MAX_REPLY = 1 << 20
MAX_DEPTH = 32
TIMEOUT_S = 2.0  # for the whole request, from the moment the client is accepted
MAX_CLIENTS = 16
BACKLOG = 128
CLIENT_TIMEOUT_S = 5.0
ACCEPT_PAUSE_S = 0.1  # after an accept error that the spare descriptor could not absorb
FAILURE_PAUSE_S = 0.05  # after a turn of the loop failed: a failure that repeats must not spin

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Spawn = Callable[[Callable[[], None]], None]


class ControlError(RuntimeError):
    """The socket cannot be used, said in one line."""


def default_socket_path() -> Path:
    """$XDG_RUNTIME_DIR/swictation.sock; without XDG_RUNTIME_DIR, a private directory
    /tmp/swictation-$UID (mode 0700) holds it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "swictation.sock"
    return Path(f"/tmp/swictation-{os.getuid()}") / "swictation.sock"


def lock_path(socket_path: str | Path) -> Path:
    path = Path(socket_path)
    return path.with_name(path.name + ".lock")


def check_private_dir(directory: Path) -> None:
    """The socket's directory must be this user's and closed to everyone else: otherwise
    another user could replace the socket, or reach it."""
    try:
        info = os.stat(directory)
    except OSError as error:
        raise ControlError(f"{directory}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ControlError(f"{directory}: not a directory; cannot hold the control socket")
    uid = os.getuid()
    if info.st_uid != uid:
        raise ControlError(
            f"{directory}: owned by uid {info.st_uid}, not by you (uid {uid}); refusing to "
            "put the control socket there"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ControlError(
            f"{directory}: mode {mode:04o} lets other users in; the control socket's "
            f"directory must be 0700 (chmod 0700 {directory})"
        )


class SocketLock:
    """An exclusive flock on `<socket>.lock`, held for the daemon's life: only its holder may
    remove, bind or serve the socket, so a stalled daemon keeps its socket."""

    def __init__(self, socket_path: Path, fd: int) -> None:
        self.socket_path = socket_path
        self.path = lock_path(socket_path)
        self._fd: int | None = fd

    @classmethod
    def take(cls, socket_path: str | Path) -> SocketLock:
        """Checks the directory (creating it 0700 if missing), takes the lock, and removes a
        socket left by a daemon that died. ControlError, in one line, when any of it fails."""
        path = Path(socket_path)
        directory = path.parent
        if not directory.exists():
            try:
                directory.mkdir(parents=True, mode=0o700)
            except OSError as error:
                raise ControlError(f"{directory}: cannot create it: {error.strerror}") from None
        check_private_dir(directory)
        where = lock_path(path)
        try:
            fd = os.open(where, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            raise ControlError(f"{where}: cannot open the lock file: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise ControlError(
                f"{path}: another swictationd is running{who}; it holds {where.name}"
            ) from None
        lock = cls(path, fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            lock._reclaim_stale_socket()
        except BaseException:
            lock.release()
            raise
        return lock

    def _reclaim_stale_socket(self) -> None:
        path = self.socket_path
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError(f"{path}: exists and is not a socket; not touching it")
        path.unlink()  # the lock was free: the daemon that made it is gone
        log.info("control: removed the stale socket %s", path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def hand_over(self) -> int | None:
        """For a re-execution of this process: the lock's descriptor, now inherited across
        exec (the flock belongs to the open file, so the lock is never free in between);
        `release` no longer closes it."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.set_inheritable(fd, True)
        return fd

    @classmethod
    def adopt(cls, socket_path: str | Path, fd: int) -> SocketLock:
        """The lock handed over by the process this one replaced (same pid, same open file),
        checked to be the lock file of `socket_path` and held; ControlError otherwise."""
        path = Path(socket_path)
        where = lock_path(path)
        try:
            held, named = os.fstat(fd), os.stat(where)
        except OSError as error:
            raise ControlError(f"{where}: the inherited lock is gone: {error.strerror}") from None
        if (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino):
            raise ControlError(f"{where}: descriptor {fd} is not this lock file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already: a no-op
        except BlockingIOError:
            raise ControlError(f"{where}: descriptor {fd} does not hold the lock") from None
        os.set_inheritable(fd, False)
        check_private_dir(path.parent)
        lock = cls(path, fd)
        lock._reclaim_stale_socket()
        return lock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than `limit` outside strings; json.loads would recurse
    once per level (and fail with RecursionError, not a JSON error, past ~1,000)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_request(line: bytes) -> dict[str, Any] | str:
    """The request as a dict, or the error to send back."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "malformed request: expected one JSON object per line"
    if json_depth_exceeds(text, MAX_DEPTH):
        return f"malformed request: nested too deep (over {MAX_DEPTH} levels)"
    try:
        request = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return "malformed request: expected one JSON object per line"
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return 'malformed request: expected {"cmd": "..."}'
    return request


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply).encode() + b"\n"


def _error(text: str) -> bytes:
    return _encode({"ok": False, "error": text})


class _Client:
    """One accepted connection: reading its request, waiting for the handler, or writing."""

    def __init__(self, conn: socket.socket, deadline: float) -> None:
        self.conn = conn
        self.deadline: float | None = deadline
        self.inbox = bytearray()
        self.outbox = b""


class _LogFailures(FailureReport):
    """For a server nobody supervises: each failure it survives is logged."""

    def failed(self, where: str, error: BaseException) -> None:
        log.error("control: %s failed (%s); going on", where, error, exc_info=True)

    def succeeded(self, where: str) -> None:
        return None


def _thread(loop: Callable[[], None]) -> None:
    threading.Thread(target=loop, name="swictation-control", daemon=True).start()


class ControlServer:
    """Serves `handler` (a dict in, a dict out) on a Unix socket from one selector loop;
    handlers run one at a time on one worker thread, so a slow handler never stalls the
    socket.

    Whoever runs it supervises it: `spawn(loop)` starts the loop on a thread of its choosing
    (the daemon's workers restart a loop that ends), and `report` hears of every failure the
    socket survives (an accept, one turn of the loop, a handler) and of each success after."""

    def __init__(
        self,
        path: str | Path,
        handler: Handler,
        allowed_uid: int | None = None,
        lock: SocketLock | None = None,
        timeout_s: float = TIMEOUT_S,
        max_clients: int = MAX_CLIENTS,
        report: FailureReport | None = None,
        spawn: Spawn = _thread,
        failure_pause_s: float = FAILURE_PAUSE_S,
    ) -> None:
        self.path = Path(path)
        self._handler = handler
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._lock = lock
        self._owns_lock = False  # a lock handed in is released by whoever took it
        self._timeout_s = timeout_s
        self._max_clients = max_clients
        self._report = report or _LogFailures()
        self._spawn = spawn
        self._failure_pause_s = failure_pause_s
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._spare_fd: int | None = None
        self._clients: dict[socket.socket, _Client] = {}
        self._replies: queue.SimpleQueue[tuple[_Client, bytes]] = queue.SimpleQueue()
        self._handlers: concurrent.futures.ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._in_loop = threading.Lock()  # held while the loop runs: `stop` waits for it
        self._paused_until: float | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._lock is None:
            self._lock = SocketLock.take(self.path)
            self._owns_lock = True
        try:
            self._listen()
        except BaseException:
            self.stop()
            raise

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # the socket is created 0600: no window with wider access
        try:
            sock.bind(str(self.path))
        except OSError as error:
            sock.close()
            raise ControlError(f"{self.path}: cannot bind: {error.strerror or error}") from None
        finally:
            os.umask(old)
        self._sock = sock  # from here on, stop() removes the socket file
        os.chmod(self.path, 0o600)
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._spare_fd = _spare()
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ, "listener")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._handlers = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="swictation-control-handler"
        )
        self._spawn(self.serve)

    def stop(self) -> None:
        """Stops serving (the loop returns), removes the socket, then releases the lock if it
        took it; safe to call twice."""
        self._stop.set()
        self._wake()
        # Torn down once the loop has returned; a loop restarted meanwhile finds it stopped.
        held = self._in_loop.acquire(timeout=5)
        try:
            if self._handlers is not None:
                self._handlers.shutdown(wait=False, cancel_futures=True)
                self._handlers = None
            for client in list(self._clients.values()):
                self._close(client)
            if self._selector is not None:
                self._selector.close()
                self._selector = None
            for sock in (self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._wake_r = self._wake_w = None
            if self._spare_fd is not None:
                os.close(self._spare_fd)
                self._spare_fd = None
            if self._sock is not None:
                self._sock.close()
                self._sock = None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            if held:
                self._in_loop.release()
        if self._lock is not None and self._owns_lock:
            self._lock.release()
            self._lock = None

    # -- the loop ------------------------------------------------------------------------------

    def serve(self) -> None:
        """The loop, until `stop`: what fails in one turn is reported and the loop goes on;
        anything that escapes it (not an Exception) ends it, for its supervisor to restart:
        the clients and the listener stay as they were."""
        with self._in_loop:
            while not self._stop.is_set():
                try:
                    self._turn()
                except Exception as error:  # the socket outlives any bug in one client's handling
                    self._report.failed("loop", error)
                    self._stop.wait(self._failure_pause_s)
                else:
                    self._report.succeeded("loop")
            if self._selector is not None:
                self._deliver_replies()  # a last reply (e.g. to `quit`) still goes out

    def _turn(self) -> None:
        assert self._selector is not None
        events = self._selector.select(self._next_timeout())
        for key, mask in events:
            if key.data == "listener":
                self._accept()
            elif key.data == "wake":
                self._drain_wake()
            elif mask & selectors.EVENT_READ:
                self._read(key.data)
            else:
                self._write(key.data)
        self._deliver_replies()
        self._expire()

    def _next_timeout(self) -> float | None:
        deadlines = [c.deadline for c in self._clients.values() if c.deadline is not None]
        if self._paused_until is not None:
            deadlines.append(self._paused_until)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _expire(self) -> None:
        now = time.monotonic()
        if self._paused_until is not None and now >= self._paused_until:
            self._paused_until = None
            assert self._selector is not None and self._sock is not None
            self._selector.register(self._sock, selectors.EVENT_READ, "listener")
        for client in list(self._clients.values()):
            if client.deadline is not None and now >= client.deadline:
                if not client.outbox:  # still reading: tell it why it is cut off
                    _send_once(client.conn, _error(f"request timed out after {self._timeout_s:g}s"))
                self._close(client)

    # -- accepting -----------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._sock is not None
        for _ in range(BACKLOG):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                self._report.failed("accept", error)
                self._accept_failed(error)
                return
            self._report.succeeded("accept")
            self._admit(conn)

    def _accept_failed(self, error: OSError) -> None:
        if error.errno in (errno.EMFILE, errno.ENFILE) and self._spare_fd is not None:
            # Give the spare descriptor back for one accept, so the client hears why instead
            # of the listener staying readable (and the loop spinning) until one frees up.
            os.close(self._spare_fd)
            self._spare_fd = None
            assert self._sock is not None
            with contextlib.suppress(OSError):
                conn, _ = self._sock.accept()
                with conn:
                    _refuse(conn, "busy: the daemon is out of file descriptors; try again")
            self._spare_fd = _spare()
            return
        if self._paused_until is None:  # nothing to give back: wait a little, then retry
            assert self._selector is not None and self._sock is not None
            self._selector.unregister(self._sock)
            self._paused_until = time.monotonic() + ACCEPT_PAUSE_S

    def _admit(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            uid = _peer_uid(conn)
        except OSError:
            conn.close()
            return
        if uid != self._uid:
            log.warning("control: refused a connection from uid %d", uid)
            _refuse(conn, "permission denied: not the same user")
            conn.close()
            return
        if len(self._clients) >= self._max_clients:
            _refuse(conn, f"busy: {self._max_clients} clients at once; try again")
            conn.close()
            return
        client = _Client(conn, time.monotonic() + self._timeout_s)
        self._clients[conn] = client
        assert self._selector is not None
        self._selector.register(conn, selectors.EVENT_READ, client)

    # -- one client ----------------------------------------------------------------------------

    def _read(self, client: _Client) -> None:
        try:
            chunk = client.conn.recv(MAX_REQUEST + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        client.inbox += chunk
        complete = b"\n" in client.inbox
        line = bytes(client.inbox.split(b"\n", 1)[0])
        if len(line) > MAX_REQUEST:
            self._reply(client, _error(f"request too large (over {MAX_REQUEST} bytes)"))
        elif complete or not chunk:
            if not line and not complete:  # gone without a word
                self._close(client)
                return
            request = parse_request(line)
            if isinstance(request, str):
                self._reply(client, _error(request))
            else:
                self._handle(client, request)

    def _handle(self, client: _Client, request: dict[str, Any]) -> None:
        assert self._selector is not None and self._handlers is not None
        self._selector.unregister(client.conn)
        client.deadline = None  # the request is in: the handler has no deadline of ours
        try:
            self._handlers.submit(self._run_handler, client, request)
        except RuntimeError:  # shutting down
            self._close(client)

    def _run_handler(self, client: _Client, request: dict[str, Any]) -> None:
        try:
            reply = _encode(self._handler(request))
        except Exception as error:  # a bug in a handler must not take the daemon down
            self._report.failed("handler", error)
            reply = _error(f"internal error: {error}")
        else:
            self._report.succeeded("handler")
        self._replies.put((client, reply))
        self._wake()

    def _deliver_replies(self) -> None:
        while True:
            try:
                client, reply = self._replies.get_nowait()
            except queue.Empty:
                return
            if client.conn in self._clients:
                self._reply(client, reply, registered=False)

    def _reply(self, client: _Client, reply: bytes, registered: bool = True) -> None:
        client.outbox = reply
        client.deadline = time.monotonic() + self._timeout_s
        assert self._selector is not None
        if registered:
            self._selector.modify(client.conn, selectors.EVENT_WRITE, client)
        else:
            self._selector.register(client.conn, selectors.EVENT_WRITE, client)
        self._write(client)

    def _write(self, client: _Client) -> None:
        try:
            sent = client.conn.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            self._close(client)  # one request, one reply

    def _close(self, client: _Client) -> None:
        self._clients.pop(client.conn, None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(client.conn)
        client.conn.close()

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass


def _spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _send_once(conn: socket.socket, data: bytes) -> None:
    """A short reply to a client about to be closed: it fits the socket's buffer."""
    with contextlib.suppress(OSError):
        conn.send(data)


def _refuse(conn: socket.socket, text: str) -> None:
    # Read what the client already sent: closing a Unix socket with unread data makes the
    # client's read fail with ECONNRESET instead of returning our reply.
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.recv(MAX_REQUEST + 1)
    _send_once(conn, _error(text))


# -- the client ----------------------------------------------------------------------------------


def request(
    path: str | Path, message: dict[str, Any], timeout: float = CLIENT_TIMEOUT_S
) -> dict[str, Any]:
    """One request, one reply, within `timeout` seconds in all. A full backlog (EAGAIN) and
    a `busy` reply (the request was never read) are tried again until then. ControlError
    when no daemon answers, or when the one answering is not this user's."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        reply = _exchange(path, message, deadline)
        if reply is not None:
            busy = reply.get("ok") is False and str(reply.get("error", "")).startswith("busy")
            if not busy or time.monotonic() + pause >= deadline:
                return reply
        elif time.monotonic() + pause >= deadline:
            raise ControlError(f"{path}: the daemon's backlog stayed full for {timeout:g}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _exchange(path: Path, message: dict[str, Any], deadline: float) -> dict[str, Any] | None:
    """None when the backlog is full (try again)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        data = _talk(sock, path, message, deadline)
    except OSError as error:
        raise _unreachable(path, error) from None
    finally:
        sock.close()
    if data is None:
        return None
    try:
        reply = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ControlError(f"{path}: the daemon's answer is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the daemon's answer is not a JSON object")
    return reply


def _talk(
    sock: socket.socket, path: Path, message: dict[str, Any], deadline: float
) -> bytes | None:
    sock.settimeout(_left(deadline, path))
    try:
        sock.connect(str(path))
    except BlockingIOError:
        return None
    uid = _peer_uid(sock)
    if uid != os.getuid():
        raise ControlError(
            f"{path}: answered by a process of uid {uid}, not yours (uid {os.getuid()}); "
            "not trusting it"
        )
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(_encode(message))  # refused at once: the reply is still there
    data = b""
    while not data.endswith(b"\n"):
        sock.settimeout(_left(deadline, path))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REPLY:
            raise ControlError(f"{path}: the daemon's answer is too large")
    return data


def _unreachable(path: Path, error: OSError) -> ControlError:
    if isinstance(error, FileNotFoundError):
        return ControlError(f"no daemon is running (no socket at {path})")
    if isinstance(error, ConnectionRefusedError):
        return ControlError(f"no daemon is running (nothing listens on {path})")
    if isinstance(error, PermissionError):
        return ControlError(f"{path}: permission denied (another user's daemon?)")
    if isinstance(error, TimeoutError):
        return ControlError(f"{path}: the daemon did not answer in time")
    return ControlError(f"{path}: the daemon did not answer ({error.strerror})")


def _left(deadline: float, path: Path) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ControlError(f"{path}: the daemon did not answer in time")
    return left
