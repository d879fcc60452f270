"""The dictation pipeline: audio -> VAD -> utterances -> speech-to-text -> text.

Capture and transcription run on separate threads with an unbounded queue between them, so
no utterance is dropped while the recogniser is busy or a model is moving. Every model call
goes through the recovery runner (the model's lock, CUDA error recovery, the same input
retried). On stop, speech not yet ended becomes an utterance; what cannot be transcribed in
time is spooled to disk and transcribed first at the next start.
"""

from __future__ import annotations

import itertools
import logging
import queue
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from swictation.adapters.spool import Spool
from swictation.application.services.recovery import RecoveringRunner
from swictation.domain.model import Event
from swictation.domain.segmenter import SAMPLE_RATE, Segmenter, Span, VadSettings
from swictation.ports import (
    AudioBlock,
    AudioSource,
    EventSink,
    SpeechRecognizer,
    TextOutput,
    VoiceDetector,
)

log = logging.getLogger("swictation.pipeline")
RATE = SAMPLE_RATE


@attrs.frozen
class Utterance:
    id: int
    samples: Any
    start_s: float
    closed_at: float  # monotonic time the VAD ended it
    speech_end_wall: float | None = None  # when its last voiced sample was heard (live/paced)
    spooled: Path | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE


@attrs.define
class Stats:
    utterances: int = 0
    words: int = 0
    spooled: int = 0
    latencies: list[float] = attrs.field(factory=list)  # VAD end -> text
    speech_latencies: list[float] = attrs.field(factory=list)  # last voiced sample -> text
    audio_s: float = 0.0
    stt_s: float = 0.0
    devices: dict[str, int] = attrs.field(factory=dict)

    def percentiles(self, values: list[float] | None = None) -> tuple[float, float] | None:
        values = self.latencies if values is None else values
        if not values:
            return None
        if len(values) == 1:
            return values[0], values[0]
        cuts = statistics.quantiles(values, n=20, method="inclusive")
        return statistics.median(values), cuts[18]


class DictationPipeline:
    def __init__(
        self,
        source: AudioSource,
        vad: VoiceDetector,
        stt: SpeechRecognizer,
        output: TextOutput,
        runner: RecoveringRunner,
        events: EventSink,
        spool: Spool,
        settings: VadSettings | None = None,
        realtime: bool = False,
        start_time: float = 0.0,
    ) -> None:
        self._source = source
        self._vad = vad
        self._stt = stt
        self._output = output
        self._runner = runner
        self._events = events
        self._spool = spool
        self._segmenter = Segmenter(settings or VadSettings(), RATE)
        self._realtime = realtime
        self._t0 = start_time
        self._queue: queue.Queue[Utterance | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._blocks: list[AudioBlock] = []
        self._stop_capture = threading.Event()
        self._abandon = threading.Event()  # stop transcribing: spool what is left
        self._transcribing = threading.Event()
        self._worker: threading.Thread | None = None
        self.enabled = threading.Event()
        self.enabled.set()
        self.stats = Stats()
        self._capture_began: float | None = None
        self._vad_failed = False

    # -- state for the guard and the control socket --------------------------------------

    @property
    def busy(self) -> bool:
        """An utterance is being spoken, waiting, or transcribed: no model restore now."""
        return self._segmenter.in_speech or not self._queue.empty() or self._transcribing.is_set()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- running ----------------------------------------------------------------------------

    def start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name="swictation-stt", daemon=True)
        self._worker.start()

    def replay_spool(self) -> int:
        """Queues spooled audio from an earlier run, before any new audio."""
        count = 0
        for path in self._spool.pending():
            samples = self._spool.load(path)
            if samples is None:
                continue
            self._queue.put(
                Utterance(
                    next(self._ids),
                    samples,
                    0.0,
                    time.monotonic(),
                    spooled=path,
                )
            )
            count += 1
        if count:
            log.warning("transcribing %d spooled utterance(s) from an earlier run first", count)
        return count

    def capture(self) -> None:
        """Reads the source until it ends or capture is stopped; then flushes open speech."""
        self._capture_began = time.monotonic()
        try:
            for block in self._source.blocks():
                if self._stop_capture.is_set():
                    break
                if not self.enabled.is_set():
                    self._drop_open_speech(block)
                    continue
                self._blocks.append(block)
                probability = self._probability(block)
                for span in self._segmenter.push(len(block.samples), probability):
                    self._enqueue(span)
                self._trim()
        finally:
            for span in self._segmenter.flush():
                self._enqueue(span)
            self._blocks.clear()

    def _probability(self, block: AudioBlock) -> float:
        try:
            return self._runner.run("vad", lambda device: self._vad.speech_probability(block))
        except Exception as error:
            # Keep the audio rather than lose words: an unreadable block counts as speech.
            if not self._vad_failed:
                log.error("VAD failed (%s); treating audio as speech until it recovers", error)
                self._vad_failed = True
            return 1.0

    def _drop_open_speech(self, block: AudioBlock) -> None:
        """Toggled off: nothing is kept, and the segmenter stays aligned with the stream so
        that speech after the toggle is cut from the right samples."""
        if self._segmenter.in_speech or self._blocks:
            self._vad.reset()
            self._blocks.clear()
        self._segmenter.reset(round(block.t * RATE) + len(block.samples))

    def _trim(self) -> None:
        keep_from = self._segmenter.open_start()
        if keep_from is None:
            keep_from = max(
                0,
                self._segmenter.position - int(self._segmenter.settings.speech_pad_s * RATE) - 2048,
            )
        while self._blocks and self._blocks[0].t * RATE + len(self._blocks[0].samples) <= keep_from:
            self._blocks.pop(0)

    def _cut(self, span: Span) -> Any:
        import numpy as np

        pieces = []
        for block in self._blocks:
            first = round(block.t * RATE)
            last = first + len(block.samples)
            if last <= span.start or first >= span.end:
                continue
            pieces.append(
                block.samples[
                    max(0, span.start - first) : min(len(block.samples), span.end - first)
                ]
            )
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def _enqueue(self, span: Span) -> None:
        samples = self._cut(span)
        if len(samples) == 0:
            return
        pad = int(self._segmenter.settings.speech_pad_s * RATE)
        speech_end_wall = None
        if self._realtime and self._capture_began is not None:
            speech_end_wall = self._capture_began + max(span.start, span.end - pad) / RATE
        utterance = Utterance(
            next(self._ids),
            samples,
            span.start / RATE,
            time.monotonic(),
            speech_end_wall,
        )
        self._queue.put(utterance)

    def _work(self) -> None:
        while True:
            utterance = self._queue.get()
            if utterance is None:
                return
            if self._abandon.is_set():
                self._spool_one(utterance)
                continue
            self._transcribing.set()
            try:
                self._transcribe(utterance)
            finally:
                self._transcribing.clear()

    def _transcribe(self, utterance: Utterance) -> None:
        block = AudioBlock(utterance.start_s, utterance.samples, RATE)
        began = time.monotonic()
        devices: list[str] = []

        def run(device: str) -> str:
            devices.append(device)
            return self._stt.transcribe(block)

        try:
            text = self._runner.run("stt", run)
        except Exception as error:
            log.error("utterance %d could not be transcribed (%s); spooled", utterance.id, error)
            self._spool_one(utterance)
            return
        done = time.monotonic()
        if text:
            self._output.emit(text)
        if utterance.spooled is not None:
            self._spool.done(utterance.spooled)
        stats = self.stats
        stats.utterances += 1
        stats.words += len(text.split())
        stats.audio_s += utterance.duration_s
        stats.stt_s += done - began
        latency = done - utterance.closed_at
        stats.latencies.append(latency)
        device = devices[-1] if devices else "cpu"
        stats.devices[device] = stats.devices.get(device, 0) + 1
        detail: dict[str, object] = {
            "id": utterance.id,
            "start_s": round(utterance.start_s, 3),
            "duration_s": round(utterance.duration_s, 3),
            "stt_s": round(done - began, 3),
            "latency_s": round(latency, 3),
            "device": device,
            "attempts": len(devices),
            "words": len(text.split()),
        }
        if utterance.speech_end_wall is not None:
            since_speech = done - utterance.speech_end_wall
            stats.speech_latencies.append(since_speech)
            detail["speech_end_to_text_s"] = round(since_speech, 3)
        if utterance.spooled is not None:
            detail["from_spool"] = utterance.spooled.name
        self._events.emit(Event(done - self._t0, "utterance", model="stt", detail=detail))

    def _spool_one(self, utterance: Utterance) -> None:
        if utterance.spooled is not None:
            return  # still in the spool from an earlier run
        self._spool.put(utterance.samples)
        self.stats.spooled += 1

    # -- stopping ---------------------------------------------------------------------------

    def stop_capture(self) -> None:
        self._stop_capture.set()
        self._source.close()

    def finish(self, drain_timeout_s: float | None, spool_now: bool = False) -> None:
        """After capture: let the worker drain the queue (up to `drain_timeout_s`), then spool
        whatever is left. `spool_now` spools everything not yet started (SHUTDOWN)."""
        if spool_now:
            self._abandon.set()
        self._queue.put(None)
        worker = self._worker
        if worker is not None:
            worker.join(drain_timeout_s)
        if worker is not None and worker.is_alive():
            self._abandon.set()
            log.warning(
                "transcription did not finish in %.0f s; spooling the rest", drain_timeout_s or 0
            )
            worker.join(30)
        # Anything still queued (the worker gave up) goes to the spool.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._spool_one(item)
