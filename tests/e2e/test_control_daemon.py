"""The control socket of a running `swictationd`: one daemon per socket (a second one, even
beside a stalled first one, exits 1 in one line before loading a model), a flood of
`swictation status` calls, a socket directory others can enter, and `status` with no daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from swictation.adapters.control_socket import request
from tests.e2e.conftest import BIN, run_command

DICTATION = Path(__file__).parents[2] / "examples" / "audio" / "dictation.wav"
CLI = (
    "import sys\n"
    "from swictation.application.entrypoints.cli import main\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def wait_for(predicate, timeout: float = 180.0) -> None:
    """Polls until predicate() holds; the timeout is only an upper bound."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def answers(sock: Path) -> bool:
    try:
        return bool(request(sock, {"cmd": "status"}, timeout=30)["ok"])
    except Exception:
        return False


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def daemon_args(sock: Path, audio: Path, spool: Path) -> list[str]:
    return [
        "--audio-file",
        str(audio),
        "--realtime",
        "--probe",
        "none",
        "--socket",
        str(sock),
        "--spool-dir",
        str(spool),
    ]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A daemon listening to a quarter of an hour of silence at real-time pace."""
    import soundfile

    root = tmp_path_factory.mktemp("control")
    silence = root / "silence.wav"
    soundfile.write(silence, np.zeros(16000 * 900, dtype=np.int16), 16000, subtype="PCM_16")
    sock = root / "run" / "swictation.sock"
    args = daemon_args(sock, silence, root / "spool")
    process = subprocess.Popen(
        [str(BIN / "swictationd"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: process.poll() is not None or answers(sock))
        assert process.poll() is None, process.communicate()[1]
        yield process, sock, args
    finally:
        os.kill(process.pid, signal.SIGCONT)
        if answers(sock):
            request(sock, {"cmd": "quit"}, timeout=30)
        try:
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert process.returncode == 0
    assert not sock.exists()


def one_line_refusal(result, first_pid: int) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 1, result.err
    assert len(lines) == 1, result.err  # and so no model was loaded: loading logs each model
    assert "another swictationd is running" in lines[0]
    assert f"pid {first_pid}" in lines[0]
    return lines[0]


def test_a_second_daemon_exits_1_in_one_line_before_loading_a_model(running):
    first, sock, args = running
    inode = os.stat(sock).st_ino
    second = run_command("swictationd", *args, timeout=300)
    one_line_refusal(second, first.pid)
    assert os.stat(sock).st_ino == inode
    assert answers(sock)


def test_a_stalled_first_daemon_keeps_its_socket(running):
    first, sock, args = running
    inode = os.stat(sock).st_ino
    os.kill(first.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: state_of(first.pid) in ("T", "t"))
        second = run_command("swictationd", *args, timeout=300)
        one_line_refusal(second, first.pid)
        assert os.stat(sock).st_ino == inode
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert answers(sock)


def test_a_flood_of_status_calls_is_answered_or_told_busy(running):
    _, sock, _ = running
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLI, "status", "--socket", str(sock)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(24)
    ]
    try:
        for client in clients:  # every one imported and waiting: then all at once
            assert client.stdout.readline().strip() == "ready"
        for client in clients:
            client.stdin.write("\n")
            client.stdin.flush()
        results = [(c.wait(timeout=300), *c.communicate()) for c in clients]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
    for code, out, err in results:
        answered = code == 0 and "listening:" in out
        busy = code == 1 and "busy" in err
        assert answered or busy, (code, out, err)


def test_status_without_a_daemon_says_so_on_stdout_and_fails(tmp_path):
    sock = str(tmp_path / "nothing.sock")
    text = run_command("swictation", "status", "--socket", sock)
    assert text.code != 0
    assert "no daemon is running" in text.out
    as_json = run_command("swictation", "status", "--json", "--socket", sock)
    assert as_json.code != 0
    reply = json.loads(as_json.out)
    assert reply["ok"] is False and reply["running"] is False


@pytest.mark.parametrize("mode", [0o750, 0o755])
def test_a_socket_directory_others_can_enter_stops_the_daemon_before_any_model(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    args = daemon_args(shared / "s.sock", DICTATION, tmp_path / "spool")
    result = run_command("swictationd", *args, timeout=300)
    lines = result.err.strip().splitlines()
    assert result.code == 1, result.err
    assert len(lines) == 1 and "must be 0700" in lines[0], result.err
    assert list(shared.iterdir()) == []
