"""`swictationd --stt nemo` with a Canary-class model: the tiny multitask archive of
tests/nemo_canary.py in place of nvidia/canary-1b-flash, and the default model's fetch
failing in one line where no model hub can be reached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.nemo_canary import build_tiny_canary

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"

pytestmark = pytest.mark.slow


def test_the_daemon_transcribes_with_a_canary_model(tmp_path, swictationd):
    """In-process (NeMo imported once for the session; the container loads the archive)."""
    model = build_tiny_canary(tmp_path / "model")
    events = tmp_path / "events.jsonl"
    result = swictationd(
        "--audio-file",
        str(AUDIO / "pair.wav"),
        "--probe",
        "none",
        "--stt",
        "nemo",
        "--stt-model",
        str(model),
        "--events",
        str(events),
        "--spool-dir",
        str(tmp_path / "spool"),
    )
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    utterances = [
        e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "utterance"
    ]
    # Both sentences went through the Canary model (random weights: the words are noise).
    assert len(utterances) == 2
    assert all(u["device"] == "cpu" for u in utterances)
    assert "utterances 2" in result.err


def test_the_default_canary_needs_the_hub_and_says_so_in_one_line(tmp_path, swictationd):
    """In-process: the session runs offline (tests/conftest.py sets HF_HUB_OFFLINE before
    the hub library is imported), as a machine without the hub would."""
    result = swictationd(
        "--audio-file",
        str(AUDIO / "voice-us.wav"),
        "--probe",
        "none",
        "--stt",
        "nemo",
        "--spool-dir",
        str(tmp_path / "spool"),
    )
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    (line,) = [line for line in result.err.splitlines() if line.startswith("swictationd: error")]
    assert "cannot fetch nvidia/canary-1b-flash" in line
    assert "--stt-model FILE.nemo" in line
