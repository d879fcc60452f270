"""The utterance segmenter: silence ends speech, padding, splitting, nothing lost at the end."""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from swictation.domain.segmenter import Segmenter, Span, VadSettings

RATE = 16000
BLOCK = 512  # 32 ms


def feed(probabilities, vad=None):
    seg = Segmenter(vad or VadSettings(), RATE)
    spans = []
    for p in probabilities:
        spans += seg.push(BLOCK, p)
    return spans, seg


def blocks(seconds: float) -> int:
    return round(seconds * RATE / BLOCK)


def test_speech_then_silence_is_one_padded_utterance():
    probs = [0.0] * blocks(1) + [0.9] * blocks(2) + [0.0] * blocks(1.5)
    spans, seg = feed(probs)
    (span,) = spans
    before, after = int(VadSettings().speech_pad_s * RATE), int(VadSettings().end_pad_s * RATE)
    assert span.start == blocks(1) * BLOCK - before
    assert span.end == (blocks(1) + blocks(2)) * BLOCK + after
    assert not seg.in_speech


def test_a_short_pause_does_not_end_the_utterance():
    probs = [0.9] * blocks(1) + [0.0] * blocks(0.5) + [0.9] * blocks(1) + [0.0] * blocks(1)
    spans, _ = feed(probs)
    assert len(spans) == 1


def test_hysteresis_keeps_a_dip_inside_speech():
    probs = [0.9] * blocks(1) + [0.4] * blocks(1.0) + [0.9] * blocks(1) + [0.0] * blocks(1)
    spans, _ = feed(probs)
    assert len(spans) == 1


def test_a_click_is_not_an_utterance():
    spans, _ = feed([0.0] * 10 + [0.9] * 2 + [0.0] * blocks(1))
    assert spans == []


def test_long_speech_is_split_at_the_limit_without_losing_samples():
    vad = VadSettings(max_utterance_s=5)
    spans, seg = feed([0.9] * blocks(12), vad)
    spans += seg.flush()
    assert len(spans) == 3
    assert all(s.end - s.start <= 5 * RATE + BLOCK for s in spans)
    assert spans[0].split and spans[1].split
    for a, b in itertools.pairwise(spans):
        assert a.end == b.start  # contiguous: nothing dropped at the cuts


def test_speech_not_yet_ended_is_flushed_at_the_end():
    spans, seg = feed([0.0] * 5 + [0.9] * blocks(1))
    assert spans == []
    (span,) = seg.flush()
    assert span.end == seg.position
    assert seg.flush() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 80)), min_size=1, max_size=30))
# Issue 14: a length split inside the closing silence, then a one-block click flushed at the
# end, gave a span whose padding reached back into the split span (the audio twice).
@example(runs=[(True, 70), (False, 25), (True, 1)])
def test_spans_are_ordered_disjoint_and_cover_every_real_stretch_of_speech(runs):
    probs = [0.95 if voiced else 0.02 for voiced, n in runs for _ in range(n)]
    vad = VadSettings(max_utterance_s=3)
    spans, seg = feed(probs, vad)
    spans += seg.flush()
    total = len(probs) * BLOCK
    for span in spans:
        assert 0 <= span.start < span.end <= total
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start
    min_blocks = int(vad.min_speech_s * RATE / BLOCK) + 1
    i = 0
    for voiced, n in runs:
        if voiced and n >= min_blocks:
            start, end = i * BLOCK, (i + n) * BLOCK
            covered = sum(max(0, min(end, s.end) - max(start, s.start)) for s in spans)
            assert covered == end - start, (start, end, spans)
        i += n
    assert all(isinstance(s, Span) for s in spans)


def test_padding_never_reaches_back_into_the_previous_utterance():
    """Speech that resumes just after an utterance ends: its leading padding stops where the
    previous span ended, so no sample goes to the recognizer twice."""
    vad = VadSettings(min_silence_s=0.1, speech_pad_s=0.5, end_pad_s=0.5)
    probs = [0.9] * blocks(1) + [0.0] * blocks(0.15) + [0.9] * blocks(1) + [0.0] * blocks(1)
    spans, _ = feed(probs, vad)
    first, second = spans
    assert first.end == second.start
