"""One status, three views: the log line, the final report and `swictation status`."""

from __future__ import annotations

from swictation.application.entrypoints.presenters import status_line, status_text

STATUS = {
    "listening": True,
    "level": "WARNING",
    "usage": 0.831,
    "used_mib": 6807.4,
    "total_mib": 8192.0,
    "top_processes": [{"pid": 7, "name": "game", "used_mib": 5000.0}],
    "models": {
        "vad": {"placement": "gpu", "size_mib": 2.1, "cpu_fallback": False},
        "stt": {"placement": "cpu", "size_mib": 1520.4, "cpu_fallback": True},
    },
    "errors": {"stt": {"failures": 3}, "vad": {"failures": 0}},
    "utterances": 12,
    "queued": 1,
    "spooled": 0,
    "latency_p50_s": 0.41,
    "latency_p95_s": 0.474,
}


def test_status_text_has_one_aligned_line_per_part():
    assert status_text(STATUS).splitlines() == [
        "listening:  yes",
        "memory:     WARNING at 83.1% (6,807 of 8,192 MiB)",
        "top:        game 5,000 MiB",
        "model:      vad on gpu, 2.1 MiB",
        "model:      stt on cpu, 1,520.4 MiB (CPU fallback)",
        "errors:     stt 3",
        "utterances: 12 (queued 1, spooled 0)",
        "latency:    p50 0.41 s, p95 0.47 s",
    ]


def test_the_log_line_says_the_same_in_one_line():
    line = status_line("final report", STATUS)
    assert "\n" not in line
    assert line.startswith("final report: listening yes; memory WARNING at 83.1%")
    for text in status_text(STATUS).splitlines():
        assert text.split(":", 1)[1].strip() in line


def test_speculation_and_words_typed_early_are_counted():
    status = {
        **STATUS,
        "speculation": {
            "asked": 30,
            "used": 20,
            "wasted": 6,
            "early_pieces": 14,
            "early_revised": 1,
            "partial_passes": 0,
        },
    }
    (line,) = [x for x in status_text(status).splitlines() if x.startswith("early text:")]
    assert line == (
        "early text: 30 advance transcriptions, 20 used, 6 thrown away; "
        "14 typed early (1 not begun by the final text)"
    )
    assert "early text:" not in status_text(STATUS)  # none asked: nothing to say


def test_a_device_that_cannot_be_read_and_a_quiet_start():
    quiet = {
        "listening": False,
        "level": "NORMAL",
        "usage": None,
        "utterances": 0,
        "queued": 0,
        "spooled": 0,
    }
    assert status_text(quiet).splitlines() == [
        "listening:  no",
        "memory:     NORMAL (device unknown)",
        "utterances: 0 (queued 0, spooled 0)",
    ]


def test_audio_lost_by_capture_is_reported():
    """Issue 13: overflows and device losses reach `status` and the final report."""
    status = {**STATUS, "capture_lost_blocks": 5, "capture_device_losses": 1}
    assert "capture:    5 block(s) lost to overflow, device lost 1 time(s)" in (
        status_text(status).splitlines()
    )
    assert "capture 5 block(s) lost to overflow" in status_line("final report", status)
