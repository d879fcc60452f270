"""Replay and the daemon hold a restore back for the same speech: replayed, the daemon's own
flight recording restores the model when the daemon did, also where the readiness falls in
the first seconds of an utterance (before its end-of-utterance pause is over)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import soundfile

from tests.e2e.conftest import GiB, write_csv

DICTATION = Path(__file__).parents[2] / "examples" / "audio" / "dictation.wav"

# The VAD ends an utterance after this much silence; meanwhile the daemon counts it busy.
PAUSE_S = 4.0
SPEECH_AT_S = 9.0  # the first words of the dictation, after a silence


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def one_sentence_after_a_silence(tmp_path: Path) -> Path:
    """9 s of silence, the dictation's first sentence (about 3 s of speech), 9 s of silence."""
    voice, rate = soundfile.read(DICTATION, dtype="float32")
    quiet = np.zeros(int(SPEECH_AT_S * rate), np.float32)
    path = tmp_path / "one-sentence.flac"
    soundfile.write(path, np.concatenate([quiet, voice[: 4 * rate], quiet]), rate)
    return path


def test_replay_restores_when_the_daemon_did_with_speech_in_flight(
    tmp_path, swictationd, swictation
):
    # The card fills (EMERGENCY: the model goes to the CPU) and is calm again from 8.8 s; the
    # room has held for the dwell at about 11 s: early in the sentence, whose pause ends
    # about 16 s in. The daemon holds the restore back while the sentence is in flight.
    trace = write_csv(
        tmp_path / "spike.csv", lambda t: 7950.0 if 1.0 <= t < 8.8 else 2900.0, 8 * GiB, 22, 0.1
    )
    config = tmp_path / "c.toml"
    config.write_text(
        "[thresholds]\ndwell_s = 2.0\ninterval_s = 0.25\n\n"
        f"[guard]\nmin_offload_mib = 16\n\n[vad]\nmin_silence_s = {PAUSE_S}\n"
    )
    flight = tmp_path / "flight.jsonl"
    daemon = swictationd(
        *("--audio-file", str(one_sentence_after_a_silence(tmp_path)), "--realtime"),
        *("--probe", "trace", "--trace", str(trace), "--config", str(config)),
        *("--events", str(flight), "--spool-dir", str(tmp_path / "spool")),
    )
    assert daemon.code == 0, daemon.err
    recorded = read_events(flight)
    (utterance,) = [e for e in recorded if e["type"] == "utterance"]
    restores = [e["t"] for e in recorded if e.get("action") == "restore"]
    assert len(restores) == 1, recorded
    replayed_events = tmp_path / "replayed.jsonl"
    replay = swictation(
        "replay", str(flight), "--config", str(config), "--events", str(replayed_events), "--json"
    )
    assert replay.code == 0, replay.err
    replayed = [e["t"] for e in read_events(replayed_events) if e.get("action") == "restore"]
    assert len(replayed) == 1, replayed
    # The daemon acts only when it polls (a busy machine spaces its polls out), and replay
    # polls on the same schedule: one poll apart at most.
    polls = [e["t"] for e in recorded if e["type"] == "sample"]
    longest_poll_s = max(later - earlier for earlier, later in itertools.pairwise(polls))
    assert abs(replayed[0] - restores[0]) <= longest_poll_s + 0.25, (
        replayed[0],
        restores[0],
        utterance,
    )


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _sample(t: float, **extra) -> dict:
    return {"t": t, "type": "sample", "used_mib": 1000.0, "total_mib": 8192.0, **extra}


def test_a_recording_is_busy_where_its_guard_saw_speech_in_flight(tmp_path):
    from swictation.adapters.traces import read_trace

    flags = [False, True, True, False, False, True]
    records = [_sample(10.0 + i, busy=b) for i, b in enumerate(flags)]
    # Its utterance says less than the guard saw (an advance transcription, a queue): the
    # guard's own flags are what the daemon decided on.
    records.insert(3, {"t": 12.5, "type": "utterance", "duration_s": 1.0, "latency_s": 0.1})
    trace = read_trace(_write(tmp_path / "flight.jsonl", records))
    assert trace.busy[0] == (1.0, 3.0)
    assert trace.busy[1][0] == 5.0 and trace.busy[1][1] > trace.duration_s


def test_an_older_recording_counts_the_pause_that_ended_each_utterance(tmp_path):
    # Recorded before the samples said what the guard saw: each utterance is busy from its
    # first voiced sample through the end-of-utterance pause (vad.min_silence_s) and the wait
    # to the end of its transcription, as the daemon's VAD held it.
    from swictation.adapters.traces import read_trace
    from swictation.domain.segmenter import VadSettings

    vad = VadSettings(min_silence_s=PAUSE_S, speech_pad_s=0.2, end_pad_s=0.2)
    records = [
        _sample(0.0),
        {"t": 20.0, "type": "utterance", "duration_s": 3.4, "latency_s": 0.5},
        _sample(30.0),
    ]
    trace = read_trace(_write(tmp_path / "old.jsonl", records), vad=vad)
    # Voiced for 3.4 s less the padding on both sides; closed 4 s after; transcribed 0.5 s on.
    (span,) = trace.busy
    assert span[1] == 20.0
    assert abs(span[0] - (20.0 - 0.5 - PAUSE_S - (3.4 - 0.4))) < 1e-9
