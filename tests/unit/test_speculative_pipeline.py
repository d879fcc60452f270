"""Speculative endpointing carried out by the pipeline (issue 11), with in-memory parts: the
advance transcription is used once, thrown away when speech resumes, and with
vad.sentence_end_s a finished sentence is typed before the pause is confirmed. The source
waits for the worker where the timing matters, so nothing races the wall clock."""

from __future__ import annotations

from swictation.application.services.pipeline import DictationPipeline
from swictation.domain.segmenter import VadSettings
from swictation.ports import AudioBlock, SpeechRecognizer
from tests.unit.parts import RATE, Waiting, audio, block_at, build, run_all


class Measuring(SpeechRecognizer):
    """Says where the audio it heard begins and how long it is: '0.00+1.40.' (a sentence)."""

    name = "measuring"

    def __init__(self, period: bool = True) -> None:
        self.heard: list[tuple[float, float]] = []
        self._end = "." if period else ""

    def transcribe(self, block: AudioBlock) -> str:
        self.heard.append((block.t, len(block.samples) / RATE))
        return f"{block.t:.2f}+{len(block.samples) / RATE:.2f}{self._end}"


# The times these tests read (0.2 s of padding, a quarter-second pause to speculate), pinned
# so that the defaults may move.
TIMES = {"speech_pad_s": 0.2, "end_pad_s": 0.2, "speculate_after_s": 0.25}


def spans(lines: list[str]) -> list[tuple[float, float]]:
    """'0.00+1.19.' -> (0.0, 1.19): where each typed line's audio begins and ends."""
    out = []
    for line in lines:
        start, length = line.rstrip(".").split("+")
        out.append((float(start), round(float(start) + float(length), 2)))
    return out


def near(value: float, expected: float) -> bool:
    return abs(value - expected) <= 0.05  # a 32 ms block


def run(blocks, stt, tmp_path, at, ready_when, vad=None):
    box: list[DictationPipeline] = []
    source = Waiting(blocks, {at: lambda: ready_when(box[0])})
    pipeline, output, _, events, _ = build(
        [], [], tmp_path, source=source, stt=stt, settings=vad or VadSettings(**TIMES)
    )
    box.append(pipeline)
    run_all(pipeline)
    return pipeline, output, events


def resumed_after_half_a_second(stt, tmp_path, vad=None):
    """A second of speech, half a second of pause, another second: the audio held at 1.48 s
    (in the pause) until the advance transcription ran. Early words are off unless `vad`
    says otherwise: these tests read where each line's audio begins and ends."""
    blocks = audio(("speech", 1.0), ("silence", 0.5), ("speech", 1.0), ("silence", 1.2))
    vad = vad or VadSettings(early_words="off", **TIMES)
    return run(blocks, stt, tmp_path, block_at(1.48), lambda p: p.stats.speculations_run >= 1, vad)


def test_a_confirmed_pause_types_the_advance_transcript_and_transcribes_nothing_twice(tmp_path):
    blocks = audio(("speech", 1.0), ("silence", 1.2), ("speech", 1.0), ("silence", 1.2))
    stt = Measuring()
    # Hold the audio at 0.5 s into the first pause until the advance transcription ran.
    pipeline, output, events = run(
        blocks, stt, tmp_path, block_at(1.5), lambda p: p.stats.speculations_run >= 1
    )
    (a0, a1), (b0, b1) = spans(output.lines)
    assert a0 == 0 and near(a1, 1.2) and near(b0, 2.0) and near(b1, 3.4)
    assert len(stt.heard) == 2  # each utterance once: its advance transcription
    stats = pipeline.stats
    assert (stats.speculations, stats.speculations_used, stats.speculations_wasted) == (2, 2, 0)
    used = [e for e in events.events if e.type == "speculation"]
    assert [e.detail["used"] for e in used] == [True, True]


def test_speech_resuming_throws_the_advance_away_and_the_sentence_stays_whole(tmp_path):
    stt = Measuring()
    pipeline, output, _ = resumed_after_half_a_second(stt, tmp_path)
    ((start, end),) = spans(output.lines)  # one utterance, all of it
    assert start == 0 and near(end, 2.7)
    assert stt.heard[0][0] == 0 and near(stt.heard[0][1], 1.2)  # the advance work, wasted
    stats = pipeline.stats
    assert (stats.speculations, stats.speculations_used, stats.speculations_wasted) == (2, 1, 1)
    assert stats.speculation_wasted_s >= 0


def test_an_advance_transcript_that_ends_a_sentence_is_typed_before_the_pause_ends(tmp_path):
    vad = VadSettings(sentence_end_s=0.25, early_words="off", **TIMES)
    stt = Measuring(period=True)
    pipeline, output, _ = resumed_after_half_a_second(stt, tmp_path, vad)
    # The first sentence ended where its pause began; what followed is a new utterance whose
    # leading padding starts where the first one ended: no sample typed twice, none lost.
    (a0, a1), (b0, b1) = spans(output.lines)
    assert a0 == 0 and near(a1, 1.2)
    assert a1 <= b0 < 1.5 and near(b1, 2.7)
    assert len(stt.heard) == 2
    assert pipeline.stats.speculations_wasted == 0


def test_without_a_sentence_end_the_utterance_waits_for_the_pause(tmp_path):
    vad = VadSettings(sentence_end_s=0.25, early_words="off", **TIMES)
    stt = Measuring(period=False)
    _, output, _ = resumed_after_half_a_second(stt, tmp_path, vad)
    ((start, end),) = spans(output.lines)
    assert start == 0 and near(end, 2.7)


def test_speculation_off_transcribes_once_when_the_pause_ends(tmp_path):
    vad = VadSettings(speculate_after_s=0, speech_pad_s=0.2, end_pad_s=0.2)
    blocks = audio(("speech", 1.0), ("silence", 1.2))
    stt = Measuring()
    pipeline, output, _ = run(blocks, stt, tmp_path, 0, lambda p: True, vad)
    ((start, end),) = spans(output.lines)
    assert start == 0 and near(end, 1.2)
    assert pipeline.stats.speculations == 0 and len(stt.heard) == 1
