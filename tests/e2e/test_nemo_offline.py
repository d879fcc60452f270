"""`swictationd --stt nemo` with the default model on a machine that cannot reach the model
hub, and HF_HUB_OFFLINE unset: one line naming the model and what to do, no traceback."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import run_command

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"

pytestmark = pytest.mark.slow


def test_the_default_canary_without_network_or_offline_mode_is_one_line(tmp_path):
    """A process of its own: the hub library reads HF_HUB_OFFLINE when it is imported, and
    this session has set it. HF_ENDPOINT points at a local port that refuses connections
    (no network is reachable here anyway; a refusal fails at once, not after a timeout)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused
        port = closed.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SWICTATION_"))}
        env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
        result = run_command(
            "swictationd",
            *("--audio-file", str(AUDIO / "voice-us.wav"), "--probe", "none"),
            *("--stt", "nemo", "--spool-dir", str(tmp_path / "spool")),
            env=env,
        )
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    (line,) = [line for line in result.err.splitlines() if "error" in line.lower()]
    assert line.startswith("swictationd: error: cannot fetch nvidia/canary-1b-flash")
    assert "Connection refused" in line
    assert "--stt-model FILE.nemo" in line
    assert "HF_HUB_OFFLINE=1" in line
