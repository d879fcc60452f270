"""Speculative endpointing, the pure part: when to transcribe in advance, when that work is
used or thrown away, and that no audio is delivered twice or lost whatever the timing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swictation.domain.segmenter import (
    Deliver,
    Discard,
    Endpointer,
    Partial,
    Segmenter,
    Span,
    Speculate,
    VadSettings,
    ends_sentence,
)

RATE = 16000
BLOCK = 512  # 32 ms


def blocks(seconds: float) -> int:
    return round(seconds * RATE / BLOCK)


def run(probs, vad=None, sentence_end_after: int | None = None):
    """Feeds the probabilities; with `sentence_end_after`, the advance transcription of each
    speculated span is reported as ending a sentence that many blocks after it was asked."""
    ep = Endpointer(vad or VadSettings(), RATE)
    actions = []
    asked: dict[Span, int] = {}
    for i, p in enumerate(probs):
        if sentence_end_after is not None:
            for span, at in list(asked.items()):
                if i - at >= sentence_end_after:
                    del asked[span]
                    actions += ep.sentence_ended(span)
        step = ep.push(BLOCK, p)
        for action in step:
            if isinstance(action, Speculate):
                asked[action.span] = i
        actions += step
    return actions + ep.flush(), ep


def test_a_pause_of_speculate_after_starts_the_transcription_that_the_end_then_uses():
    probs = [0.0] * blocks(0.5) + [0.9] * blocks(2) + [0.0] * blocks(1.5)
    actions, _ = run(probs)
    speculate, deliver = actions
    assert isinstance(speculate, Speculate)
    assert deliver == Deliver(speculate.span, speculated=True)
    before, after = int(VadSettings().speech_pad_s * RATE), int(VadSettings().end_pad_s * RATE)
    assert speculate.span == Span(blocks(0.5) * BLOCK - before, blocks(2.5) * BLOCK + after)


def test_the_advance_span_is_exactly_the_one_the_confirmed_pause_delivers():
    """Same audio, so the advance transcript is the final one (whatever the pause length)."""
    for pause in (0.3, 0.5, 0.79):
        probs = [0.9] * blocks(1) + [0.0] * blocks(pause) + [0.0] * blocks(1)
        plain = Segmenter(VadSettings(), RATE)
        spans = [s for p in probs for s in plain.push(BLOCK, p)]
        actions, _ = run(probs)
        assert [a.span for a in actions if isinstance(a, Deliver)] == spans
        assert next(a for a in actions if isinstance(a, Deliver)).speculated


def test_speech_resuming_throws_the_advance_work_away_and_the_utterance_goes_on():
    probs = [0.9] * blocks(1) + [0.0] * blocks(0.4) + [0.9] * blocks(1) + [0.0] * blocks(1.5)
    actions, _ = run(probs)
    first, dropped, second, delivered = actions
    assert isinstance(first, Speculate) and dropped == Discard(first.span)
    assert isinstance(second, Speculate) and delivered == Deliver(second.span, True)
    assert delivered.span.start == first.span.start  # one utterance, not two


def test_no_speculation_before_the_pause_reaches_the_setting_or_when_off():
    probs = [0.9] * blocks(1) + [0.0] * blocks(0.2) + [0.9] * blocks(1) + [0.0] * blocks(1.5)
    actions, _ = run(probs, VadSettings(speculate_after_s=0.3))
    assert sum(isinstance(a, Speculate) for a in actions) == 1  # only the final pause
    actions, _ = run(probs, VadSettings(speculate_after_s=0))
    assert actions == [Deliver(actions[0].span, speculated=False)]


def test_a_click_is_never_speculated():
    actions, _ = run([0.0] * 10 + [0.9] * 2 + [0.0] * blocks(1))
    assert actions == []


def test_speculation_waits_for_the_padding_after_speech():
    """speculate_after_s below end_pad_s: the advance span still ends where the final one
    will (the padding must have been heard first)."""
    vad = VadSettings(speculate_after_s=0.1, end_pad_s=0.3)
    probs = [0.9] * blocks(1) + [0.0] * blocks(1.5)
    ep = Endpointer(vad, RATE)
    for i, p in enumerate(probs):
        for action in ep.push(BLOCK, p):
            if isinstance(action, Speculate):
                assert (i + 1) * BLOCK >= action.span.end
                assert (i + 1) * BLOCK - blocks(1) * BLOCK >= 0.3 * RATE


def test_a_sentence_end_delivers_at_once_and_what_follows_is_a_new_utterance():
    vad = VadSettings(sentence_end_s=0.3)
    probs = [0.9] * blocks(1) + [0.0] * blocks(0.4) + [0.9] * blocks(1) + [0.0] * blocks(1.5)
    actions, _ = run(probs, vad, sentence_end_after=2)
    delivered = [a for a in actions if isinstance(a, Deliver)]
    assert len(delivered) == 2 and all(d.speculated for d in delivered)
    first, second = delivered
    assert first.span.end <= second.span.start
    assert not any(isinstance(a, Discard) for a in actions)


def test_a_sentence_end_is_ignored_when_off_or_when_speech_has_resumed():
    probs = [0.9] * blocks(1) + [0.0] * blocks(0.4) + [0.9] * blocks(1) + [0.0] * blocks(1.5)
    actions, _ = run(probs, VadSettings(sentence_end_s=0), sentence_end_after=2)
    assert len([a for a in actions if isinstance(a, Deliver)]) == 1
    ep = Endpointer(VadSettings(sentence_end_s=0.3), RATE)
    asked = [a for p in probs[: blocks(1) + blocks(0.4)] for a in ep.push(BLOCK, p)]
    (speculate,) = asked
    resumed = [a for p in [0.9] * 3 for a in ep.push(BLOCK, p)]
    assert resumed == [Discard(speculate.span)]
    assert ep.sentence_ended(speculate.span) == []  # too late: the utterance went on


def test_a_sentence_end_waits_for_its_pause_then_ends_the_utterance_there():
    """Told at 0.25 s of pause that the advance transcript ends a sentence, with
    sentence_end_s = 0.5: nothing until the pause reaches 0.5 s, then the span it asked."""
    vad = VadSettings(sentence_end_s=0.5)
    ep = Endpointer(vad, RATE)
    asked = [a for p in [0.9] * blocks(1) + [0.0] * blocks(0.25) for a in ep.push(BLOCK, p)]
    (speculate,) = asked
    assert ep.sentence_ended(speculate.span) == []
    quiet = [ep.push(BLOCK, 0.0) for _ in range(blocks(0.25))]
    assert all(step == [] for step in quiet[:-1])
    assert quiet[-1] == [Deliver(speculate.span, speculated=True)]
    assert not ep.segmenter.in_speech and ep.speculating is None


def test_a_split_by_the_length_limit_during_a_pause_discards_the_advance_work():
    vad = VadSettings(max_utterance_s=2.0)
    probs = [0.9] * blocks(1.6) + [0.0] * blocks(1.0)
    actions, _ = run(probs, vad)
    kinds = [type(a) for a in actions]
    assert kinds[:3] == [Speculate, Discard, Deliver]
    assert actions[1].span == actions[0].span and actions[2].span.split


def test_reset_discards_the_advance_work():
    ep = Endpointer(VadSettings(), RATE)
    (speculate,) = [a for p in [0.9] * blocks(1) + [0.0] * blocks(0.4) for a in ep.push(BLOCK, p)]
    assert ep.reset(100 * BLOCK) == [Discard(speculate.span)]
    assert ep.speculating is None


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("Open the window.", True),
        ("Is it ready?", True),
        ('He said "stop!"', True),
        ("Remember to buy milk,", False),
        ("and then", False),
        ("", False),
        ("Ten o'clock. ", True),
    ],
)
def test_ends_sentence(text, ends):
    assert ends_sentence(text) is ends


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(st.tuples(st.booleans(), st.integers(1, 40)), min_size=1, max_size=30),
    sentence_end_after=st.one_of(st.none(), st.integers(0, 12)),
    speculate_after_s=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
    sentence_end_s=st.sampled_from([0.1, 0.3, 0.5]),
)
def test_every_speculation_is_answered_once_and_delivered_audio_is_disjoint_and_complete(
    runs, sentence_end_after, speculate_after_s, sentence_end_s
):
    probs = [0.95 if voiced else 0.02 for voiced, n in runs for _ in range(n)]
    vad = VadSettings(
        max_utterance_s=3,
        speculate_after_s=speculate_after_s,
        sentence_end_s=0.0 if sentence_end_after is None else sentence_end_s,
    )
    actions, ep = run(probs, vad, sentence_end_after)
    open_: set[Span] = set()
    delivered: list[Span] = []
    for action in actions:
        if isinstance(action, Speculate):
            assert action.span not in open_
            open_.add(action.span)
        elif isinstance(action, Discard):
            open_.remove(action.span)  # only what was asked, once
        else:
            if action.speculated:
                open_.remove(action.span)  # the advance work is of exactly this span
            delivered.append(action.span)
    assert not open_ and ep.speculating is None  # nothing left hanging at the end
    total = len(probs) * BLOCK
    for a, b in itertools.pairwise(delivered):
        assert a.end <= b.start  # never the same audio twice, in order
    assert all(0 <= s.start < s.end <= total for s in delivered)
    min_blocks = int(vad.min_speech_s * RATE / BLOCK) + 1
    i = 0
    for voiced, n in runs:
        if voiced and n >= min_blocks:  # every real stretch of speech is typed, whole
            start, end = i * BLOCK, (i + n) * BLOCK
            covered = sum(max(0, min(end, s.end) - max(start, s.start)) for s in delivered)
            assert covered == end - start
        i += n


def test_a_long_utterance_gets_a_pass_every_partial_every_s_while_it_is_spoken():
    vad = VadSettings(partial_every_s=1.0)
    probs = [0.0] * blocks(0.5) + [0.9] * blocks(3.5) + [0.0] * blocks(1.5)
    actions, _ = run(probs, vad)
    partial = [a for a in actions if isinstance(a, Partial)]
    start = blocks(0.5) * BLOCK - int(VadSettings().speech_pad_s * RATE)
    assert [p.span.start for p in partial] == [start] * 3  # the whole utterance so far
    ends = [p.span.end for p in partial]
    assert all(abs((b - a) - RATE) < BLOCK for a, b in itertools.pairwise([start, *ends]))
    # None in the pause at the end: the speculation and the delivery are of all of it.
    assert ends[-1] <= blocks(4.0) * BLOCK
    assert isinstance(actions[-1], Deliver) and actions[-1].speculated


def test_no_pass_while_partial_text_is_off():
    probs = [0.9] * blocks(10) + [0.0] * blocks(1.5)
    actions, _ = run(probs)
    assert not [a for a in actions if isinstance(a, Partial)]
