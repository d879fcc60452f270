"""The one-daemon-per-socket lock across a re-execution (giving up the GPU, taking it back,
SIGHUP): a real process takes the lock, hands its descriptor over and execs a new program
image, which adopts it. Another would-be daemon trying all the while never gets the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from swictation.adapters.control_socket import ControlError, SocketLock, lock_path

ROOT = Path(__file__).parents[2]

# The first image: takes the lock, waits for "go", hands it over and execs the second.
FIRST = """
import os, sys
from swictation.adapters.control_socket import SocketLock
path = sys.argv[1]
lock = SocketLock.take(path)
print("taken", flush=True)
sys.stdin.readline()
fd = lock.hand_over()
lock.release()  # no longer closes the handed-over descriptor
os.environ["LOCK_FD"] = str(fd)
print("exec", flush=True)
os.execv(sys.executable, [sys.executable, "-c", sys.argv[2], path])
"""

# The second image (the same pid): adopts the descriptor, says so, holds it until "quit".
SECOND = """
import os, sys
from swictation.adapters.control_socket import SocketLock
lock = SocketLock.adopt(sys.argv[1], int(os.environ["LOCK_FD"]))
print("adopted", os.getpid(), flush=True)
sys.stdin.readline()
lock.release()
"""


def _child(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", FIRST, str(path), SECOND],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_lock_is_never_free_while_the_daemon_re_executes_itself(tmp_path):
    directory = tmp_path / "ctl"
    directory.mkdir(mode=0o700)
    path = directory / "s.sock"
    child = _child(path)
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "taken"
        won: list[str] = []
        tries = 0
        done = threading.Event()

        def contend() -> None:
            nonlocal tries
            while not done.is_set():
                tries += 1
                try:
                    SocketLock.take(path).release()
                    won.append("a second daemon took the lock")
                except ControlError as error:
                    assert "another swictationd is running" in str(error)

        contender = threading.Thread(target=contend)
        contender.start()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "exec"
        adopted = child.stdout.readline().split()
        done.set()
        contender.join(10)
        assert adopted == ["adopted", str(child.pid)]  # the same process, a new image
        assert won == []
        assert tries > 10  # it really tried, through the whole exec
        with pytest.raises(ControlError, match="another swictationd is running"):
            SocketLock.take(path)
        child.stdin.write("quit\n")
        child.stdin.flush()
        assert child.wait(30) == 0
    finally:
        child.kill()
    SocketLock.take(path).release()  # free once the holder has gone


def test_a_descriptor_that_is_not_the_lock_is_refused(tmp_path):
    directory = tmp_path / "ctl"
    directory.mkdir(mode=0o700)
    path = directory / "s.sock"
    SocketLock.take(path).release()
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ControlError, match="is not this lock file"):
            SocketLock.adopt(path, other)
    finally:
        os.close(other)
    with pytest.raises(ControlError, match="the inherited lock is gone"):
        SocketLock.adopt(path, 987)


def test_a_descriptor_of_the_lock_file_that_another_holds_is_refused(tmp_path):
    directory = tmp_path / "ctl"
    directory.mkdir(mode=0o700)
    path = directory / "s.sock"
    holder = SocketLock.take(path)
    stray = os.open(lock_path(path), os.O_RDWR)
    try:
        with pytest.raises(ControlError, match="does not hold the lock"):
            SocketLock.adopt(path, stray)
    finally:
        os.close(stray)
        holder.release()
