"""The guard inside the running daemon: the operator's reset, and replay of the daemon's own
flight recording taking the same decisions."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import time
from pathlib import Path

from swictation.adapters.control_socket import request
from tests.e2e.conftest import BIN, GiB, write_csv

DICTATION = Path(__file__).parents[2] / "examples" / "audio" / "dictation.wav"
EXAMPLES = Path(__file__).parents[2] / "examples"


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # the last line may be half written
            out.append(json.loads(line))
    return out


def wait_until(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def dictation_then_quiet(tmp_path: Path, quiet_s: float = 900.0) -> Path:
    """The dictation, then a silence that outlasts any test (FLAC keeps it small): the daemon
    runs until the test says quit, however slowly the machine runs the commands between."""
    import numpy as np
    import soundfile

    voice, rate = soundfile.read(DICTATION, dtype="float32")
    path = tmp_path / "dictation-then-quiet.flac"
    quiet = np.zeros(int(quiet_s * rate), np.float32)
    soundfile.write(path, np.concatenate([voice, quiet]), rate, subtype="PCM_16")
    return path


def test_swictation_reset_ends_a_cpu_fallback_and_the_model_returns(tmp_path, swictation):
    calm = write_csv(tmp_path / "calm.csv", lambda t: 2900.0, 8 * GiB, 900, 0.5)
    config = tmp_path / "c.toml"
    config.write_text("[thresholds]\ndwell_s = 1.0\n\n[guard]\nmin_offload_mib = 16\n")
    events = tmp_path / "events.jsonl"
    sock = str(tmp_path / "ctl" / "swictation.sock")
    process = subprocess.Popen(
        [
            str(BIN / "swictationd"),
            *("--audio-file", str(dictation_then_quiet(tmp_path)), "--realtime"),
            *("--probe", "trace", "--trace", str(calm), "--config", str(config)),
            *("--inject-fault", "stt:oom:3", "--events", str(events)),
            *("--socket", sock, "--spool-dir", str(tmp_path / "spool")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: any(e.get("action") == "fallback_to_cpu" for e in read_events(events)),
            "the CPU fallback",
        )

        def pinned() -> bool:
            return request(sock, {"cmd": "status"})["models"]["stt"]["cpu_fallback"]

        # The guard takes the fallback in at its next step.
        wait_until(pinned, "the status to show the CPU fallback")
        unknown = swictation("reset", "nonesuch", "--socket", sock)
        assert unknown.code == 1
        assert "no model named 'nonesuch'" in unknown.err
        reset = swictation("reset", "stt", "--socket", sock)
        assert reset.code == 0, reset.err
        assert "CPU fallback ended" in reset.out
        wait_until(
            lambda: any(
                e.get("action") == "restore" and e.get("model") == "stt"
                for e in read_events(events)
            ),
            "the restore after the reset",
        )
        assert not pinned()
        assert request(sock, {"cmd": "quit"}) == {"ok": True, "quitting": True}
        assert process.wait(120) == 0
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=120)


def moves(events: list[dict]) -> list[tuple[str, str]]:
    return [
        (e["action"], e["model"])
        for e in events
        if e.get("type") == "action" and e.get("action") in ("offload", "restore")
    ]


def test_replay_of_a_flight_recording_takes_the_daemons_decisions(
    tmp_path, swictationd, swictation
):
    # The demo: EMERGENCY, offload, calm while the user is still talking, restore.
    flight = tmp_path / "flight.jsonl"
    daemon = swictationd(
        *("--audio-file", str(DICTATION), "--realtime"),
        *("--probe", "trace", "--trace", str(EXAMPLES / "traces" / "demo-emergency.csv")),
        *("--config", str(EXAMPLES / "demo.toml"), "--events", str(flight)),
        "--spool-dir",
        str(tmp_path / "spool"),
    )
    assert daemon.code == 0, daemon.err
    recorded = read_events(flight)
    assert moves(recorded) == [("offload", "stt"), ("restore", "stt")]
    assert [e for e in recorded if e["type"] == "utterance"]
    replayed_events = tmp_path / "replayed.jsonl"
    replay = swictation(
        "replay",
        str(flight),
        "--config",
        str(EXAMPLES / "demo.toml"),
        "--events",
        str(replayed_events),
        "--json",
    )
    assert replay.code == 0, replay.err
    assert moves(read_events(replayed_events)) == moves(recorded)
    assert replay.json()["final_placement"] == {"stt": "gpu", "vad": "gpu"}
    # And both restored at about the same time. The daemon acts only when it polls, and a
    # busy machine spaces its polls out; it also waits while dictation is busy, and replay
    # waits on the same busy flags its samples recorded. The margin comes from the
    # recording, not the clock.
    daemon_restore = next(e["t"] for e in recorded if e.get("action") == "restore")
    replay_restore = next(
        e["t"] for e in read_events(replayed_events) if e.get("action") == "restore"
    )
    polls = [e["t"] for e in recorded if e["type"] == "sample"]
    longest_poll_s = max(later - earlier for earlier, later in itertools.pairwise(polls))
    margin_s = longest_poll_s + 0.25
    assert abs(daemon_restore - replay_restore) < margin_s, (daemon_restore, replay_restore)
