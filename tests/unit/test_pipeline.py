"""The pipeline with in-memory parts: utterances, queueing, recovery, stop and spool."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from swictation.adapters.memory import (
    FakeClock,
    InMemoryModelHost,
    ListAudioSource,
    ScriptedRecognizer,
)
from swictation.domain.model import ModelState
from swictation.domain.recovery import ErrorKind
from tests.unit.parts import BLOCK, RATE, audio, build, run_all


def test_two_sentences_two_lines(tmp_path):
    blocks = audio(
        ("silence", 0.5), ("speech", 1.0), ("silence", 1.5), ("speech", 0.8), ("silence", 1.2)
    )
    pipeline, output, stt, events, _ = build(
        blocks, ["Open the window.", "Close the door."], tmp_path
    )
    run_all(pipeline)
    assert output.lines == ["Open the window.", "Close the door."]
    durations = [len(b.samples) / RATE for b in stt.heard]
    assert durations[0] == pytest.approx(1.0 + 0.4, abs=0.1)  # the speech and its padding
    assert [e.detail["id"] for e in events.of_type("utterance")] == [1, 2]


def test_speech_running_at_the_end_is_not_lost(tmp_path):
    pipeline, output, _, _, _ = build(audio(("silence", 0.3), ("speech", 1.0)), ["tail"], tmp_path)
    run_all(pipeline)
    assert output.lines == ["tail"]


def test_an_oom_storm_ends_in_cpu_fallback_with_every_utterance_transcribed(tmp_path):
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("vad", 2), ModelState("stt", 1500)])
    host.inject("stt", ErrorKind.OUT_OF_MEMORY, times=5)
    parts = [("silence", 0.3)]
    for _ in range(4):
        parts += [("speech", 0.6), ("silence", 1.0)]
    pipeline, output, _, events, _ = build(audio(*parts), ["a", "b", "c", "d"], tmp_path, host=host)
    run_all(pipeline)
    assert output.lines == ["a", "b", "c", "d"]
    verdicts = [e.detail["verdict"] for e in events.of_type("error")]
    assert verdicts == ["retry", "retry", "fallback"]
    assert [e.detail["device"] for e in events.of_type("utterance")] == ["cpu"] * 4


def test_abandoned_work_is_spooled_and_picked_up_next_time(tmp_path):
    blocks = audio(("speech", 0.7), ("silence", 1.0), ("speech", 0.7), ("silence", 1.0))
    pipeline, output, _, _, _ = build(blocks, [], tmp_path)
    pipeline.capture()  # no worker (as when SHUTDOWN comes first): nothing is transcribed
    pipeline.finish(drain_timeout_s=0, spool_now=True)
    spooled = sorted((tmp_path / "spool").glob("*.wav"))
    assert len(spooled) == 2
    assert output.lines == []
    again, output2, stt2, _, _ = build([], ["first", "second"], tmp_path)
    assert again.replay_spool() == 2
    run_all(again)
    assert output2.lines == ["first", "second"]
    assert len(stt2.heard[0].samples) > 0.7 * RATE
    assert list((tmp_path / "spool").glob("*.wav")) == []


def test_busy_while_speaking_or_transcribing(tmp_path):
    release = threading.Event()

    class Slow(ScriptedRecognizer):
        def transcribe(self, block):
            release.wait(5)
            return "done"

    pipeline, output, _, _, _ = build(audio(("speech", 0.6), ("silence", 1.0)), [], tmp_path)
    pipeline._stt = Slow([])
    assert not pipeline.busy
    pipeline.start_worker()
    pipeline.capture()
    assert pipeline.busy
    release.set()
    pipeline.finish(drain_timeout_s=None)
    assert not pipeline.busy
    assert output.lines == ["done"]


def test_toggled_off_audio_is_not_transcribed(tmp_path):
    pipeline, output, _, _, _ = build(audio(("speech", 1.0), ("silence", 1.0)), ["x"], tmp_path)
    pipeline.enabled.clear()
    run_all(pipeline)
    assert output.lines == []


def test_speech_after_a_toggle_is_cut_from_the_right_samples(tmp_path):
    blocks = audio(("speech", 1.0), ("silence", 1.0), ("speech", 1.2), ("silence", 1.2))
    pipeline, output, stt, _, _ = build(blocks, ["second"], tmp_path)
    off_until = int(2.0 * RATE / BLOCK)  # listening again from 2.0 s, before the second
    source = pipeline._source

    class Toggled(ListAudioSource):
        def blocks(self):
            for i, block in enumerate(source.blocks()):
                (pipeline.enabled.clear if i < off_until else pipeline.enabled.set)()
                yield block

    pipeline._source = Toggled([])
    run_all(pipeline)
    assert output.lines == ["second"]
    (heard,) = stt.heard
    # The second utterance's audio: its 1.2 s of tone and the trailing padding (the leading
    # padding would reach back into the time it was toggled off), not silence.
    assert len(heard.samples) / RATE == pytest.approx(1.2 + 0.2, abs=0.05)
    assert np.abs(heard.samples).mean() > 0.1
