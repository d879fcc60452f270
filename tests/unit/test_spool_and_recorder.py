"""The spool and the flight recorder when the disk misbehaves: a spool that cannot be
written falls back or says what was lost, stale and unreadable files never stop a start,
and the recorder appends across restarts, rotates, and drops events rather than raise
(`/dev/full` stands in for a full disk)."""

from __future__ import annotations

import json
import logging

import numpy as np

from swictation.adapters.events import JsonlEventSink
from swictation.adapters.spool import Spool
from swictation.adapters.text_output import FileOutput
from swictation.adapters.traces import read_trace
from swictation.domain.model import Event

TONE = (0.3 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 200)).astype(np.float32)


def test_an_unwritable_spool_falls_back_to_a_private_directory(tmp_path, caplog):
    not_a_dir = tmp_path / "spool"
    not_a_dir.write_text("a file where the spool should be")
    fallback = tmp_path / "runtime" / "swictation" / "spool"
    spool = Spool(not_a_dir, fallback=fallback)
    with caplog.at_level(logging.WARNING):
        first = spool.put(TONE)
        second = spool.put(TONE)
    assert first is not None and first.parent == fallback
    assert second is not None and second.parent == fallback
    assert oct(fallback.stat().st_mode & 0o777) == "0o700"
    assert caplog.text.count(f"spooling to {fallback} instead") == 1
    assert spool.backlog() == sorted([first, second])


def test_when_nothing_can_be_written_one_line_says_how_much_audio_was_lost(tmp_path, caplog):
    for name in ("spool", "fallback"):
        (tmp_path / name).write_text("not a directory")
    spool = Spool(tmp_path / "spool", fallback=tmp_path / "fallback")
    with caplog.at_level(logging.ERROR):
        assert spool.put(TONE) is None
    assert spool.lost_s == 0.5
    (line,) = caplog.messages
    assert line.startswith("0.5 s of audio lost: it could be spooled nowhere")
    assert not list(tmp_path.rglob("*.part"))


def test_stale_partial_files_go_and_an_unreadable_file_is_moved_aside(tmp_path):
    spool = Spool(tmp_path / "spool", fallback=tmp_path / "fallback")
    good = spool.put(TONE)
    (tmp_path / "spool" / "20200101-000000.000-1-000001.wav.part").write_bytes(b"half")
    bad = tmp_path / "spool" / "20200101-000000.000-1-000002.wav"
    bad.write_bytes(b"RIFF, but no audio")
    backlog = spool.backlog()
    assert backlog == [bad, good]
    assert not list((tmp_path / "spool").glob("*.part"))
    assert spool.load(bad) is None
    assert bad.with_suffix(".unreadable").exists()
    assert len(spool.load(good)) == len(TONE)
    assert spool.backlog() == [good]


def test_speech_in_progress_is_on_disk_as_raw_samples(tmp_path):
    spool = Spool(tmp_path / "spool")
    stream = spool.open(0)
    assert stream is not None
    stream.append(TONE)
    stream.append(TONE)
    (pcm,) = spool.backlog()
    loaded = spool.load(pcm)
    assert len(loaded) == 2 * len(TONE)
    assert np.abs(loaded[: len(TONE)] - TONE).max() < 1e-3
    stream.discard()
    assert spool.backlog() == []


def event(t: float, used: float) -> Event:
    detail = {"used_mib": used, "total_mib": 8192}
    return Event(t, "sample", "NORMAL", usage=used / 8192, detail=detail)


def test_the_recorder_appends_across_restarts_and_replays_as_one_trace(tmp_path):
    path = tmp_path / "events.jsonl"
    for _ in range(2):  # two runs of the daemon, each with times from 0
        sink = JsonlEventSink(path, append=True)
        for i in range(3):
            sink.emit(event(float(i), 1000.0 + i))
        sink.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in records].count("start") == 2
    assert len([r for r in records if r["type"] == "sample"]) == 6
    trace = read_trace(path)  # the second run laid after the first, not "going backwards"
    assert list(trace.times) == [0.0, 1.0, 2.0, 2.0, 3.0, 4.0]
    assert list(trace.used_mib) == [1000.0, 1001.0, 1002.0] * 2


def test_the_recorder_rotates_at_its_size_cap(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlEventSink(path, append=True, max_bytes=2000, keep=2)
    for i in range(200):
        sink.emit(event(float(i), 1000.0))
    sink.close()
    rotated = tmp_path / "events.jsonl.1"
    assert path.stat().st_size <= 2000 and rotated.stat().st_size <= 2000
    assert not (tmp_path / "events.jsonl.2").exists()
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["t"] == 199.0


def test_a_full_disk_drops_events_with_one_warning_and_a_count(caplog):
    sink = JsonlEventSink("/dev/full", append=True)
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            sink.emit(event(float(i), 1000.0))
        sink.close()
    assert sink.dropped == 5
    assert caplog.text.count("flight recorder cannot write") == 1
    assert "5 events dropped" in caplog.text


def test_a_full_disk_under_output_file_raises_for_the_delivery_to_retry():
    out = FileOutput("/dev/full")
    try:
        out.emit("hello")
    except OSError as error:
        assert error.errno == 28
    else:
        raise AssertionError("a full disk must not pass for delivered text")


def test_a_crash_between_the_whole_utterance_and_its_removed_partial_reads_it_once(tmp_path):
    """SIGKILL after an utterance was written whole but before its `.pcm` (written ahead
    while it was spoken) was removed: the restart transcribes it once, not twice."""
    import numpy as np

    spool = Spool(tmp_path / "spool", tmp_path / "fallback")
    speech = np.full(16000, 0.1, np.float32)
    partial = spool.open(0)
    assert partial is not None
    partial.append(speech)
    whole = spool.put(speech, twin=partial.path)
    assert whole is not None and whole.stem == partial.path.stem
    # (killed here: the .pcm is never discarded)
    restarted = Spool(tmp_path / "spool", tmp_path / "fallback")
    assert restarted.backlog() == [whole]
    assert not partial.path.exists()
