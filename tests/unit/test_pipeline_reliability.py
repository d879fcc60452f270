"""Issue 8, words are never lost: toggles cut open speech, a failing output waits and
retries in order, a failing worker goes on, utterances are on disk from the moment they
are queued, and an earlier run's spool is read one file at a time beside live speech."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from swictation.adapters.memory import ListAudioSource, ListOutput, ScriptedRecognizer
from swictation.adapters.spool import Spool
from swictation.application.services.delivery import Delivery, Pending
from swictation.application.services.workers import Workers
from swictation.domain.segmenter import VadSettings
from swictation.ports import AudioBlock
from tests.unit.parts import BLOCK, RATE, audio, build, run_all


class FlakyOutput(ListOutput):
    """Fails its first `failures` calls, as a typing tool without a display would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.left = failures
        self.calls = 0

    def emit(self, text: str, ends: bool = True) -> None:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise RuntimeError(f"wtype failed (1): cannot open display (call {self.calls})")
        super().emit(text, ends)


class ToggledSource(ListAudioSource):
    """Clears `enabled` (a toggle off, or `stop`) when block `at` is next."""

    def __init__(self, blocks, pipeline_box, at):
        super().__init__(blocks)
        self._box, self._at = pipeline_box, at

    def blocks(self):
        for i, block in enumerate(super().blocks()):
            if i == self._at:
                self._box[0].enabled.clear()
            yield block


def toggled(blocks, at_s, texts, tmp_path):
    box: list = []
    source = ToggledSource(blocks, box, round(at_s * RATE / BLOCK))
    pipeline, output, stt, _, _ = build([], texts, tmp_path)
    pipeline._source = source
    box.append(pipeline)
    return pipeline, output, stt


def test_a_toggle_mid_sentence_transcribes_the_sentence_so_far(tmp_path):
    blocks = audio(("silence", 0.3), ("speech", 2.0), ("silence", 1.0))
    pipeline, output, stt = toggled(blocks, 1.3, ["half a sentence"], tmp_path)
    run_all(pipeline)
    assert output.lines == ["half a sentence"]
    (heard,) = stt.heard
    # Cut at the toggle: from the padding before the speech to the toggle, 1.2 s in all.
    assert len(heard.samples) / RATE == pytest.approx(1.0 + 0.2, abs=0.05)


def test_a_toggle_just_after_a_sentence_keeps_the_sentence(tmp_path):
    # The toggle comes 0.25 s after the speech, inside the 0.8 s end-of-utterance pause.
    blocks = audio(("silence", 0.3), ("speech", 1.0), ("silence", 2.0))
    pipeline, output, stt = toggled(blocks, 1.55, ["the whole sentence"], tmp_path)
    run_all(pipeline)
    assert output.lines == ["the whole sentence"]
    pads = VadSettings().speech_pad_s + VadSettings().end_pad_s  # before and after it
    assert len(stt.heard[0].samples) / RATE == pytest.approx(1.0 + pads, abs=0.05)


def test_a_failing_output_is_retried_in_order_and_the_worker_goes_on(tmp_path):
    blocks = audio(*[p for _ in range(3) for p in (("speech", 0.6), ("silence", 1.0))])
    output = FlakyOutput(failures=2)
    pipeline, _, _, _, _ = build(blocks, ["one", "two", "three"], tmp_path, output=output)
    run_all(pipeline)
    assert output.lines == ["one", "two", "three"]
    assert pipeline.delivery.retry_delays[:2] == [0.01, 0.02]
    assert pipeline.workers.snapshot()["output"]["errors"] == 2
    assert pipeline.workers.all_alive()
    assert list((tmp_path / "spool").iterdir()) == []  # delivered: nothing left to redo


def test_text_that_cannot_be_delivered_is_kept_at_the_stop(tmp_path):
    blocks = audio(("speech", 0.6), ("silence", 1.0), ("speech", 0.6), ("silence", 1.0))
    kept: list[str] = []
    pipeline, _output, _, _, _ = build(
        blocks, ["first", "second"], tmp_path, output=FlakyOutput(10**6), kept=kept
    )
    run_all(pipeline)
    assert kept == ["first", "second"]
    assert pipeline.stats.undelivered == 2
    assert pipeline.stats.undelivered_file == str(tmp_path / "undelivered.txt")
    # Kept as text: not transcribed (and typed) a second time at the next start.
    assert list((tmp_path / "spool").iterdir()) == []


def test_delivery_says_it_is_failing_and_backs_off_to_its_ceiling():
    output = FlakyOutput(6)
    delivery = Delivery(output, first_retry_s=0.001, max_retry_s=0.004)
    delivery.put(Pending(1, "hello"))
    states = []
    output_emit = output.emit

    def watching(text, ends=True):
        states.append(delivery.state())
        output_emit(text, ends)

    output.emit = watching  # type: ignore[method-assign]
    delivery.put(Pending(2, "world"))
    worker = threading.Thread(target=delivery.run)
    worker.start()
    delivery.close(within_s=10)
    worker.join(10)
    assert output.lines == ["hello", "world"]
    assert delivery.retry_delays == [0.001, 0.002, 0.004, 0.004, 0.004, 0.004]
    failing = states[3]
    assert failing.failing_since is not None and failing.waiting == 2
    assert failing.describe().startswith("failing since ")
    assert failing.describe().endswith("2 waiting: wtype failed (1): cannot open display (call 3)")
    assert delivery.state().describe() == "ok"


def test_the_default_back_off_starts_within_a_second_and_is_capped_at_30_s():
    delivery = Delivery(ListOutput())
    assert delivery._first <= 1.0 and delivery._max == 30.0


class BrokenOnce(ScriptedRecognizer):
    """Fails on the first utterance's audio, each time it is asked (its advance transcription
    during the pause too, issue 11)."""

    def transcribe(self, block):
        if not self.heard or block.t == self.heard[0].t:
            self.heard.append(block)
            raise ValueError("the model produced garbage")
        return super().transcribe(block)


def test_a_failed_transcription_keeps_the_audio_and_the_worker_goes_on(tmp_path):
    blocks = audio(("speech", 0.6), ("silence", 1.0), ("speech", 0.6), ("silence", 1.0))
    pipeline, output, _, _, _ = build(blocks, [], tmp_path, stt=BrokenOnce(["second"]))
    run_all(pipeline)
    assert output.lines == ["second"]
    assert pipeline.workers.snapshot()["stt"]["errors"] == 1
    assert pipeline.stats.spooled == 1
    assert len(list((tmp_path / "spool").glob("*.wav"))) == 1  # for the next start


def test_utterances_are_on_disk_from_the_moment_they_are_queued(tmp_path):
    blocks = audio(("speech", 0.7), ("silence", 1.0), ("speech", 2.5))
    seen: dict[str, list[str]] = {}
    box: list = []

    class Watching(ListAudioSource):
        def blocks(self):
            for i, block in enumerate(super().blocks()):
                if i == len(self._blocks) - 1:  # 2.5 s into the second sentence
                    spool = tmp_path / "spool"
                    seen["files"] = sorted(p.suffix for p in spool.iterdir())
                    (pcm,) = spool.glob("*.pcm")
                    seen["pcm_s"] = [str(pcm.stat().st_size / 2 / RATE)]
                yield block

    pipeline, _, _, _, _ = build([], [], tmp_path)
    pipeline._source = Watching(blocks)
    box.append(pipeline)
    pipeline.capture()  # no worker: nothing transcribed, as if the process were killed
    assert seen["files"] == [".pcm", ".wav"]
    # Speech in progress is on disk up to the block before the last (at most 1 s behind).
    assert float(seen["pcm_s"][0]) >= 2.5 + 0.2 - 1.0


def test_a_short_backlog_is_typed_before_newer_live_speech(tmp_path):
    """What a SIGKILL or a re-execution leaves is typed first: the words come out in the
    order they were said, even when new speech is queued while the spool is transcribed."""
    spool = Spool(tmp_path / "spool")
    tone = (0.3 * np.sin(np.arange(RATE) / RATE * 2 * np.pi * 200)).astype(np.float32)
    spool.put(tone[: int(0.5 * RATE)])
    spool.put(tone[: int(0.7 * RATE)])
    capture_done = threading.Event()

    class Heard(ScriptedRecognizer):
        def transcribe(self, block):
            capture_done.wait(10)  # new speech is queued before the first file is done
            lengths = {int(0.5 * RATE): "older", int(0.7 * RATE): "old"}
            return lengths.get(len(block.samples), "new")

    pipeline, output, _, _, _ = build(
        audio(("speech", 0.6), ("silence", 1.0)), [], tmp_path, stt=Heard([])
    )
    pipeline.start_worker()
    pipeline.capture()
    capture_done.set()
    pipeline.finish(drain_timeout_s=None)
    assert output.lines == ["older", "old", "new"]
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_long_backlog_is_read_one_file_at_a_time_and_live_speech_goes_first(tmp_path):
    spool = Spool(tmp_path / "spool")
    tone = (0.3 * np.sin(np.arange(int(0.6 * RATE)) / RATE * 2 * np.pi * 200)).astype(np.float32)
    for _ in range(50):
        spool.put(tone)
    capture_done = threading.Event()

    class Order(ScriptedRecognizer):
        def transcribe(self, block):
            capture_done.wait(10)  # the live utterance is queued before the first is done
            return super().transcribe(block)

    texts = ["old"] + ["live"] + ["old"] * 49
    pipeline, output, _, _, _ = build(
        audio(("speech", 0.6), ("silence", 1.0)), [], tmp_path, stt=Order(texts)
    )
    pipeline._backlog_in_order_s = 20.0  # 50 files of 0.6 s: a long backlog
    loaded: list[int] = []
    original = pipeline._spool.load
    pipeline._spool.load = lambda path: loaded.append(pipeline.queued) or original(path)
    pipeline.start_worker()
    pipeline.capture()
    capture_done.set()
    pipeline.finish(drain_timeout_s=None)
    assert output.lines[:2] == ["old", "live"]  # held back by one utterance at most
    assert len(output.lines) == 51
    assert len(loaded) == 50  # each file loaded once, when its turn came
    assert list((tmp_path / "spool").iterdir()) == []


def test_audio_with_nan_or_inf_never_reaches_a_model(tmp_path):
    blocks = audio(("speech", 0.6), ("silence", 1.0))
    poisoned = blocks[3].samples.copy()
    poisoned[10], poisoned[20] = np.nan, np.inf
    blocks[3] = AudioBlock(blocks[3].t, poisoned)
    pipeline, output, stt, _, _ = build(blocks, ["heard"], tmp_path)
    run_all(pipeline)
    assert output.lines == ["heard"]
    assert all(np.isfinite(b.samples).all() for b in stt.heard)
    assert pipeline.stats.rejected_blocks == 1


def test_a_worker_is_restarted_and_one_that_cannot_be_stops_the_daemon():
    fatal: list[str] = []
    workers = Workers(on_fatal=fatal.append, max_restarts=2, backoff_s=0.0)
    attempts = {"flaky": 0, "broken": 0}

    def flaky():
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise OSError("device went away")

    def broken():
        attempts["broken"] += 1
        raise RuntimeError("always")

    workers.spawn("flaky", flaky)
    assert workers.join("flaky", 10)
    assert workers.snapshot()["flaky"] == {
        "state": "done",
        "errors": 2,
        "restarts": 2,
        "last_error": "OSError: device went away",
    }
    assert workers.all_alive() and fatal == []
    workers.spawn("broken", broken)
    assert workers.join("broken", 10)
    assert attempts["broken"] == 3
    assert not workers.all_alive()
    assert fatal == ["worker broken failed and cannot be restarted: RuntimeError: always"]
