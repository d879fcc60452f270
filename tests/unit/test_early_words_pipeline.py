"""Early words carried out by the pipeline (issue 11), with in-memory parts: an advance
transcript's words are typed while the pause goes on, its closing punctuation and the end of
the line when the pause is confirmed; when speech resumes only what the final transcript adds
is typed, and typed words leave the spool. The audio is held where the timing matters (the
worker must have done its part), so nothing races the wall clock."""

from __future__ import annotations

import logging
from pathlib import Path

from swictation.adapters.memory import ListOutput
from swictation.adapters.spool import Spool
from swictation.application.services.pipeline import DictationPipeline, Utterance
from swictation.domain.early_text import TypedPrefix
from swictation.domain.segmenter import VadSettings
from swictation.ports import AudioBlock, SpeechRecognizer, Word
from tests.unit.parts import RATE, Waiting, audio, block_at, build, run_all

PAD = VadSettings().end_pad_s  # the audio kept after speech: where typed words end
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


class ByLength(SpeechRecognizer):
    """Two words per second heard, and a full stop: a longer span's transcript begins with
    a shorter one's, as a real recogniser's mostly does. `revise`: the transcripts of spans
    longer than that (seconds) change the second word. `stop`: whether it ends a sentence."""

    name = "by-length"

    def __init__(self, revise: float | None = None, stop: str = ".") -> None:
        self.heard: list[tuple[float, float]] = []
        self._revise = revise
        self._stop = stop

    def transcribe(self, block: AudioBlock) -> str:
        seconds = len(block.samples) / RATE
        self.heard.append((round(block.t, 2), round(seconds, 2)))
        said = WORDS[int(block.t * 2) : int(block.t * 2) + int(seconds * 2)]
        if self._revise is not None and seconds > self._revise and len(said) > 1:
            said[1] = said[1].upper() + "X"
        return " ".join(said) + self._stop


def dictate(blocks, stt, tmp_path, points, settings=None):
    box: list[DictationPipeline] = []
    held = {at: (lambda ready=ready: ready(box[0])) for at, ready in points.items()}
    pipeline, output, _, events, _ = build(
        [], [], tmp_path, source=Waiting(blocks, held), stt=stt, settings=settings
    )
    box.append(pipeline)
    run_all(pipeline)
    return pipeline, output, events


def typed(pipeline: DictationPipeline) -> bool:
    return pipeline.delivery.delivered >= 1


def test_the_words_are_typed_before_the_pause_is_confirmed_and_the_stop_after(tmp_path):
    # Held half a second into the pause (the 0.8 s that ends the utterance is not yet
    # heard) until a piece is typed: it must come from the advance transcription.
    blocks = audio(("speech", 1.0), ("silence", 1.2))
    stt = ByLength()
    pipeline, output, _ = dictate(blocks, stt, tmp_path, {block_at(1.5): typed})
    assert output.pieces == [("alpha beta", False), (".", True)]
    assert output.lines == ["alpha beta."]
    assert len(stt.heard) == 1  # transcribed once, in advance
    assert pipeline.stats.early_pieces == 1 and pipeline.stats.speculations_wasted == 0


def test_when_speech_resumes_only_what_the_final_transcript_adds_is_typed(tmp_path):
    blocks = audio(("speech", 1.0), ("silence", 0.5), ("speech", 1.0), ("silence", 1.2))
    stt = ByLength()
    pipeline, output, events = dictate(blocks, stt, tmp_path, {block_at(1.45): typed})
    assert output.lines == ["alpha beta gamma delta epsilon."]  # one line: one sentence
    assert output.pieces[0] == ("alpha beta", False)
    assert output.pieces[-1][1] is True
    assert "".join(text for text, _ in output.pieces) == output.lines[0]
    assert pipeline.stats.early_disagreed == 0
    start, seconds = stt.heard[-1]  # the whole utterance, for its context
    assert start == 0 and abs(seconds - (2.5 + PAD)) <= 0.05
    # The advance whose words were typed is not counted as work thrown away: it was used.
    stats = pipeline.stats
    assert stats.speculations_wasted == 0
    assert stats.speculations == stats.speculations_used + stats.speculations_skipped
    assert next(e.detail["used"] for e in events.of_type("speculation")) is True


def test_a_final_transcript_that_revises_typed_words_leaves_them_and_adds_the_rest(tmp_path):
    blocks = audio(("speech", 1.0), ("silence", 0.5), ("speech", 1.0), ("silence", 1.2))
    stt = ByLength(revise=2.0)  # the whole utterance is heard as "alpha BETAX gamma ..."
    pipeline, output, _ = dictate(blocks, stt, tmp_path, {block_at(1.45): typed})
    # "alpha beta" stays as typed; the audio after it (from the end of the first speech and
    # its padding to the end of the second) is transcribed alone.
    assert output.pieces[0] == ("alpha beta", False)
    start, seconds = stt.heard[-1]
    assert abs(start - (1.0 + PAD)) <= 0.05 and abs(seconds - 1.5) <= 0.05
    assert output.lines == ["alpha beta " + " ".join(WORDS[2:5]) + "."]
    assert pipeline.stats.early_disagreed == 1


def test_typed_words_leave_the_spool_so_a_crash_never_types_them_twice(tmp_path):
    """What a crash would leave is read from the spool while the speech goes on: after the
    early words are typed, only the audio after them is there to be transcribed again."""
    blocks = audio(("speech", 1.0), ("silence", 0.5), ("speech", 1.5), ("silence", 1.2))
    left: list[float] = []

    def look(pipeline: DictationPipeline) -> bool:
        spool = pipeline.spool
        files = spool.backlog()
        if len(files) != 1:
            return False  # the typed words' own file goes once the output has typed them
        left.append(spool.seconds(files[0]))
        return True

    _, output, _ = dictate(
        blocks, ByLength(), tmp_path, {block_at(1.45): typed, block_at(2.6): look}
    )
    # 2.6 s into the audio the speech began at 0 and its words up to 1 s (and the padding
    # after) are typed: the spool holds the rest to 2.6 s (within a block), not all 2.6 s.
    assert len(left) == 1 and abs(left[0] - (2.6 - 1.0 - PAD)) <= 0.07, left
    assert output.lines == ["alpha beta gamma delta epsilon zeta."]
    assert list((tmp_path / "spool").iterdir()) == []  # all delivered


class Inspecting(ListOutput):
    """Reads the spool at the moment each piece is typed: what a crash then would leave."""

    def __init__(self, spool_dir: Path) -> None:
        super().__init__()
        self._spool = Spool(spool_dir)
        self.seen: list[float] = []

    def emit(self, text: str, ends: bool = True) -> None:
        if not ends:
            self.seen.append(sum(self._spool.seconds(p) for p in self._spool.backlog()))
        super().emit(text, ends)


def test_at_the_moment_words_are_typed_early_no_sample_is_in_the_spool_twice(tmp_path):
    """The audio held up to 1.5 s while the words are typed: the spool (the typed words'
    own file and the speech written ahead after them) holds at most those 1.5 s, not the
    typed audio twice (once on its own, once in the speech written ahead)."""
    blocks = audio(("speech", 1.0), ("silence", 1.2))
    output = Inspecting(tmp_path / "spool")
    box: list[DictationPipeline] = []
    pipeline, _, _, _, _ = build(
        [],
        [],
        tmp_path,
        source=Waiting(blocks, {block_at(1.5): lambda: typed(box[0])}),
        stt=ByLength(),
        output=output,
    )
    box.append(pipeline)
    run_all(pipeline)
    (seconds,) = output.seen
    assert 1.0 + PAD - 0.05 <= seconds <= 1.5 + 0.05, seconds
    assert output.lines == ["alpha beta."]


def test_early_words_off_types_each_utterance_once(tmp_path):
    blocks = audio(("speech", 1.0), ("silence", 1.2))
    pipeline, output, _ = dictate(
        blocks,
        ByLength(),
        tmp_path,
        {block_at(1.5): lambda p: p.stats.speculations_run >= 1},
        VadSettings(early_words="off"),
    )
    assert output.pieces == [("alpha beta.", True)]
    assert pipeline.stats.early_pieces == 0


def test_without_a_sentence_end_the_words_wait_unless_early_words_is_always(tmp_path):
    blocks = audio(("speech", 1.0), ("silence", 1.2))
    ran = {block_at(1.5): lambda p: p.stats.speculations_run >= 1}
    _, output, _ = dictate(blocks, ByLength(stop=","), tmp_path / "sentence", ran)
    assert output.pieces == [("alpha beta,", True)]  # typed when the pause was confirmed
    always = VadSettings(early_words="always")
    _, output, _ = dictate(blocks, ByLength(stop=","), tmp_path / "always", ran, always)
    assert output.pieces == [("alpha beta", False), (",", True)]


def test_a_restart_after_early_words_types_only_what_followed_them(tmp_path):
    """A stop that abandons the speech in progress after its first words were typed: the
    next start transcribes what followed, and no word is typed twice."""
    blocks = audio(("speech", 1.0), ("silence", 0.5), ("speech", 1.0), ("silence", 1.2))

    def stop(pipeline: DictationPipeline) -> bool:
        pipeline.abandon()
        pipeline.stop_capture()
        return True

    _, output, _ = dictate(
        blocks, ByLength(), tmp_path, {block_at(1.45): typed, block_at(2.3): stop}
    )
    assert output.lines == ["alpha beta"]  # the line is ended at the stop
    backlog = Spool(tmp_path / "spool").backlog()
    assert len(backlog) == 1
    stt = ByLength()
    dictate([], stt, tmp_path, {})
    # Transcribed again: the audio after the typed words (and their padding) to the stop at
    # 2.3 s, not the 2.3 s from the start of the utterance.
    ((_, seconds),) = stt.heard
    assert abs(seconds - (2.3 - 1.0 - PAD)) <= 0.07, seconds


def test_an_utterance_kept_at_a_stop_keeps_only_the_audio_after_its_typed_words(tmp_path):
    """An abandoned utterance not yet spooled (its rest was empty when it was queued, or the
    spool failed then) is written at the stop without the words already typed."""
    import numpy as np

    pipeline = build([], [], tmp_path).pipeline
    samples = np.full(2 * RATE, 0.1, np.float32)  # 1.0 s to 3.0 s of the stream
    typed = TypedPrefix(RATE, int(2.5 * RATE), "alpha beta")
    pipeline._keep(Utterance(1, samples, 1.0, 0.0, typed=typed))
    (left,) = pipeline.spool.backlog()
    assert pipeline.spool.seconds(left) == 0.5
    typed_all = TypedPrefix(RATE, 3 * RATE, "alpha beta gamma")
    pipeline._keep(Utterance(2, samples, 1.0, 0.0, typed=typed_all))
    assert pipeline.spool.backlog() == [left]  # nothing after the typed words: nothing kept


class Timed(ByLength):
    """ByLength that also says where each word lies: word k of the stream is spoken from
    k/2 s to k/2 + 0.4 s; a word the audio cuts is heard cut ('gam')."""

    def transcribe_words(self, block: AudioBlock) -> list[Word]:
        seconds = len(block.samples) / RATE
        self.heard.append((round(block.t, 2), round(seconds, 2)))
        words = []
        k = int(block.t * 2)
        while k < len(WORDS) and k / 2 < block.t + seconds:
            begin, end = k / 2 - block.t, k / 2 + 0.4 - block.t
            text = WORDS[k] if end <= seconds else WORDS[k][:3]
            words.append(Word(" " + text, begin, min(end, seconds)))
            k += 1
        return words


def test_a_long_utterance_shows_the_words_two_passes_agree_on_while_it_is_spoken(tmp_path):
    blocks = audio(("speech", 4.0), ("silence", 1.2))
    stt = Timed()
    passes = {
        block_at(1.2): lambda p: p.stats.partial_passes >= 1,
        block_at(2.2): lambda p: p.stats.partial_passes >= 2,
        # Still speaking, 2.5 s in: the words the two passes agree on must be typed.
        block_at(2.5): typed,
    }
    pipeline, output, _ = dictate(blocks, stt, tmp_path, passes, VadSettings(partial_every_s=1.0))
    # Pass one heard "alpha beta", pass two "alpha beta gamma delta": "alpha beta" agreed
    # (the last word heard is never typed from a pass: it may be cut).
    assert output.pieces[0] == ("alpha beta", False)
    assert output.lines == [" ".join(WORDS) + "."]
    assert "".join(text for text, _ in output.pieces) == output.lines[0]
    assert pipeline.stats.partial_passes >= 2 and pipeline.stats.early_disagreed == 0
    assert list((tmp_path / "spool").iterdir()) == []


def test_passes_that_disagree_type_nothing(tmp_path):
    class Wavering(Timed):
        def transcribe_words(self, block: AudioBlock) -> list[Word]:
            words = super().transcribe_words(block)
            if len(self.heard) % 2:  # every other pass hears the first word differently
                words[0] = Word(" alfa", words[0].start_s, words[0].end_s)
            return words

    blocks = audio(("speech", 3.0), ("silence", 1.2))
    passes = {
        block_at(1.2): lambda p: p.stats.partial_passes >= 1,
        block_at(2.2): lambda p: p.stats.partial_passes >= 2,
    }
    pipeline, output, _ = dictate(
        blocks, Wavering(), tmp_path, passes, VadSettings(partial_every_s=1.0)
    )
    assert pipeline.stats.partial_passes >= 2
    assert output.pieces[0][0].startswith("alpha beta gamma delta epsilon")  # the final
    assert output.lines == [" ".join(WORDS[:6]) + "."]


def test_partial_passes_are_off_by_default(tmp_path):
    blocks = audio(("speech", 3.0), ("silence", 1.2))
    pipeline, output, _ = dictate(blocks, Timed(), tmp_path, {})
    assert pipeline.stats.partial_passes == 0 and pipeline.stats.partial_skipped == 0
    assert output.lines == [" ".join(WORDS[:6]) + "."]


def test_partial_passes_asked_of_a_recognizer_without_word_times_say_so(tmp_path, caplog):
    blocks = audio(("speech", 3.0), ("silence", 1.2))
    with caplog.at_level(logging.WARNING, logger="swictation.pipeline"):
        pipeline, output, _ = dictate(
            blocks, ByLength(), tmp_path, {}, VadSettings(partial_every_s=1.0)
        )
    assert "needs a recognizer that gives word times" in caplog.text
    assert pipeline.stats.partial_passes == 0 and pipeline.stats.partials == 2
    assert output.lines == [" ".join(WORDS[:6]) + "."]


def test_words_typed_early_count_no_negative_time(tmp_path):
    """The speech-to-text time is the work done, and the wait after the pause is never below
    zero, however early the words came."""
    blocks = audio(("speech", 1.0), ("silence", 1.2))
    pipeline, _, events = dictate(blocks, ByLength(), tmp_path, {block_at(1.5): typed})
    assert pipeline.stats.early_pieces == 1
    assert pipeline.stats.stt_s >= 0
    assert all(latency >= 0 for latency in pipeline.stats.latencies)
    (event,) = events.of_type("utterance")
    assert event.detail["stt_s"] >= 0 and event.detail["latency_s"] >= 0


def test_partial_passes_with_early_words_off_are_ignored_and_say_so(tmp_path, caplog):
    blocks = audio(("speech", 3.0), ("silence", 1.2))
    vad = VadSettings(partial_every_s=1.0, early_words="off")
    with caplog.at_level(logging.WARNING, logger="swictation.pipeline"):
        pipeline, output, _ = dictate(blocks, Timed(), tmp_path, {}, vad)
    assert "vad.partial_every_s is ignored" in caplog.text
    assert pipeline.stats.partial_passes == 0 and pipeline.stats.early_pieces == 0
    assert output.pieces == [(" ".join(WORDS[:6]) + ".", True)]


def test_a_line_left_open_by_a_crash_is_ended_before_the_next_words(tmp_path):
    """Typed at the cursor, a run killed between words typed early and their line's end
    left the cursor mid-line: the spool remembers it, and the next start ends that line (a
    space for a typing tool) before typing anything else."""
    blocks = audio(("speech", 1.0), ("silence", 0.5), ("speech", 1.0), ("silence", 1.2))
    spool = Spool(tmp_path / "spool")
    marks: list[bool] = []

    def still_open(pipeline: DictationPipeline) -> bool:
        # The words are typed, their line's end is not (it waits for the audio held here):
        # the spool must come to say so (the wait fails after 30 s if it never does).
        if not (typed(pipeline) and spool.was_line_open()):
            return False
        marks.append(True)
        return True

    dictate(blocks, ByLength(), tmp_path, {block_at(1.45): still_open})
    assert marks == [True]
    assert not spool.was_line_open()  # that run ended its line
    spool.line_open(True)  # as a run killed at that moment leaves it
    _, output, _ = dictate(audio(("speech", 1.0), ("silence", 1.2)), ByLength(), tmp_path, {})
    assert output.pieces[0] == ("", True)
    assert output.lines[1:] == ["alpha beta."]
    assert not spool.was_line_open()
