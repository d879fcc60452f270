"""The dictation pipeline: audio -> VAD -> utterances -> speech-to-text -> text.

Three workers: capture (source, VAD, segmenter) on the caller's thread, speech-to-text and
output on their own, with queues between them, so no utterance is dropped while the
recogniser is busy, a model is moving or the output is failing. Every model call goes
through the recovery runner. Utterances are written to the spool when they are queued (and
speech still being spoken as it arrives) and removed once their text is delivered, so a
stop, a crash or a re-execution loses at most the last second; a restart transcribes what
was left, one file at a time: before any newer speech when it is short (the words are typed
in the order they were said), beside live speech when it is long (never holding live speech
back by more than one utterance).

Speculative endpointing (vad.speculate_after_s): the Endpointer in the domain decides; here a
short pause queues an advance transcription of the utterance so far, which the utterance
uses when the pause is confirmed and which is thrown away (skipped, if it has not started)
when speech resumes. Only a delivered utterance is typed, once.

Early words (vad.early_words): the words of an advance transcription are typed as soon as it
is ready, while the pause is still under way; the punctuation that closes it and the end of
the line wait for the pause to be confirmed. If speech resumes, the utterance goes on and only
what its final transcript adds after the typed words is typed (typed text is never revised;
when the final transcript does not begin with them, the audio after them is transcribed
alone). Typed words leave the spool: a crash then transcribes only what follows them.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import math
import queue
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from swictation.application.services.delivery import Delivery, Pending
from swictation.application.services.recovery import RecoveringRunner
from swictation.application.services.workers import Workers
from swictation.domain.early_text import TypedPrefix, after_typed, agreed, early_piece
from swictation.domain.model import Event
from swictation.domain.segmenter import (
    SAMPLE_RATE,
    Action,
    Deliver,
    Discard,
    EarlyWords,
    Endpointer,
    Partial,
    Span,
    Speculate,
    VadSettings,
    ends_sentence,
)
from swictation.ports import (
    AudioBlock,
    AudioSource,
    CaptureHealth,
    EventSink,
    SpeechRecognizer,
    TextOutput,
    VoiceDetector,
    WordRecognizer,
)
from swictation.ports.spool import OpenUtterance, Spool

log = logging.getLogger("swictation.pipeline")
RATE = SAMPLE_RATE


@attrs.frozen
class Utterance:
    id: int
    samples: Any
    start_s: float
    closed_at: float  # monotonic time the VAD ended it
    speech_end_wall: float | None = None  # when its last voiced sample was heard (live/paced)
    spooled: Path | None = None  # its file in the spool (written when it was queued)
    from_backlog: bool = False  # left by an earlier run
    advance: Advance | None = None  # its transcription, asked for during the pause
    typed: TypedPrefix | None = None  # its words typed early, while it was being spoken

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE


class AdvanceState(enum.Enum):
    QUEUED = "queued"  # waiting for the speech-to-text worker
    RUNNING = "running"
    DONE = "done"  # transcribed (or failed)


class Advance:
    """A speculative transcription of `span`: queued, run by the speech-to-text worker, then
    either used by the utterance it became or thrown away (once, whichever comes first)."""

    def __init__(self, span: Span, samples: Any) -> None:
        self.span = span
        self.samples = samples
        self.text: str | None = None
        self.stt_s = 0.0
        self.ends_sentence = False
        self.reported = False  # its sentence end was told to the endpointer
        self.claimed = False  # a delivered utterance uses it (set under the line lock)
        self.typed_early = False  # its words were typed while the pause went on
        self.finished = threading.Event()  # transcribed (or failed)
        self._lock = threading.Lock()
        self._state = AdvanceState.QUEUED
        self._cancelled = False

    def start(self) -> bool:
        """The worker takes it: False when it was thrown away while queued."""
        with self._lock:
            if self._cancelled:
                return False
            self._state = AdvanceState.RUNNING
            return True

    def finish(self, text: str | None, stt_s: float) -> bool:
        """Its result; True when it was thrown away while running (the work is wasted)."""
        with self._lock:
            self.text, self.stt_s = text, stt_s
            self._state = AdvanceState.DONE
            self.finished.set()
            return self._cancelled

    def cancel(self) -> AdvanceState | None:
        """Speech resumed: returns what the work had come to (queued: skipped; running: the
        worker counts it when it ends; done: wasted), None if already cancelled."""
        with self._lock:
            if self._cancelled:
                return None
            self._cancelled = True
            return self._state

    @property
    def cancelled(self) -> bool:
        with self._lock:
            return self._cancelled


@attrs.frozen
class Pass:
    """A pass over an utterance still being spoken (vad.partial_every_s)."""

    span: Span
    samples: Any


@attrs.define
class Stats:
    utterances: int = 0
    words: int = 0
    spooled: int = 0  # left in the spool at the stop, for the next start
    latencies: list[float] = attrs.field(factory=list)  # VAD end -> text
    speech_latencies: list[float] = attrs.field(factory=list)  # last voiced sample -> text
    audio_s: float = 0.0
    stt_s: float = 0.0
    devices: dict[str, int] = attrs.field(factory=dict)
    rejected_blocks: int = 0  # NaN or Inf samples, never fed to a model
    undelivered: int = 0
    undelivered_file: str | None = None
    speculations: int = 0  # advance transcriptions asked for
    speculations_run: int = 0  # transcribed in advance (used, wasted or still waiting)
    speculations_used: int = 0
    speculations_wasted: int = 0  # run, then thrown away: speech resumed
    speculations_skipped: int = 0  # thrown away before they ran
    speculation_wasted_s: float = 0.0  # speech-to-text time thrown away
    early_pieces: int = 0  # words typed from an advance before the pause was confirmed
    early_disagreed: int = 0  # final transcripts that did not begin with the typed words
    partials: int = 0  # passes over speech still being spoken asked for (partial_every_s)
    partial_passes: int = 0  # run
    partial_skipped: int = 0  # not run: the worker was busy, or the utterance had ended

    def percentiles(self, values: list[float] | None = None) -> tuple[float, float] | None:
        values = self.latencies if values is None else values
        if not values:
            return None
        if len(values) == 1:
            return values[0], values[0]
        cuts = statistics.quantiles(values, n=20, method="inclusive")
        return statistics.median(values), cuts[18]


KeepUndelivered = Callable[[list[str]], "Path | None"]


def _log_undelivered(texts: list[str]) -> Path | None:
    for text in texts:
        log.error("undelivered text: %s", text)
    return None


# A backlog up to this much audio is transcribed before newer speech (the order in which
# words are typed is kept); a longer one would hold live speech back for too long.
BACKLOG_IN_ORDER_S = 60.0


def _partial_passes_possible(stt: SpeechRecognizer, settings: VadSettings) -> bool:
    """Whether vad.partial_every_s can type anything; says once why not when it is set."""
    if settings.partial_every_s <= 0:
        return False
    if settings.early_words is EarlyWords.OFF:
        log.warning("vad.partial_every_s is ignored: vad.early_words = off types nothing early")
        return False
    if not isinstance(stt, WordRecognizer):
        log.warning(
            "vad.partial_every_s needs a recognizer that gives word times (whisper); "
            "%s does not: no text while an utterance is spoken",
            stt.name,
        )
        return False
    return True


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
        workers: Workers | None = None,
        keep_undelivered: KeepUndelivered = _log_undelivered,
        retry_s: tuple[float, float] = (0.5, 30.0),
        backlog_in_order_s: float = BACKLOG_IN_ORDER_S,
    ) -> None:
        self._source = source
        self._vad = vad
        self._stt = stt
        self._output = output
        self._runner = runner
        self._events = events
        self._spool = spool
        self._endpointer = Endpointer(settings or VadSettings(), RATE)
        self._segmenter = self._endpointer.segmenter
        self._advance: dict[Span, Advance] = {}  # asked for, not yet used or thrown away
        # The line being typed early (vad.early_words): set by the speech-to-text worker,
        # read by capture (what to spool) under the lock, ended with its utterance.
        self._line: TypedPrefix | None = None
        self._line_lock = threading.Lock()
        self._mid_line = False  # the output typed words early, not yet their line's end
        self._spoken: int | None = None  # start of the utterance partial passes are about
        self._last_pass: tuple[int, list[str]] = (-1, [])  # its last pass's words
        self._words = _partial_passes_possible(stt, self._segmenter.settings)
        gate_dbfs = self._segmenter.settings.energy_gate_dbfs
        self._gate = 10 ** (gate_dbfs / 10)  # mean square below which a block is silence
        self.gated_blocks = 0
        self._gated = False
        self._realtime = realtime
        self._t0 = start_time
        self._keep_undelivered = keep_undelivered
        self.workers = workers or Workers()
        self.delivery = Delivery(
            output,
            on_delivered=self._delivered,
            on_error=lambda error: self.workers.error("output", error),
            first_retry_s=retry_s[0],
            max_retry_s=retry_s[1],
        )
        self._queue: queue.Queue[Utterance | Advance | Pass | None] = queue.Queue()
        self._backlog: list[Path] = []
        self._backlog_lock = threading.Lock()
        self._backlog_in_order_s = backlog_in_order_s
        self._backlog_first = False  # a short backlog goes before any newer speech
        self._ids = itertools.count(1)
        self._blocks: list[AudioBlock] = []
        self._open: OpenUtterance | None = None
        self._open_failed = False
        self._stop_capture = threading.Event()
        self._abandon = threading.Event()  # stop transcribing: leave the rest in the spool
        self._transcribing = threading.Event()
        self._listening = True
        self.enabled = threading.Event()
        self.enabled.set()
        self.stats = Stats()
        self._capture_began: float | None = None
        self._vad_failed = False
        self._started = False
        self._warmed = False
        # Called on the speech-to-text thread after an utterance when no other waits: the
        # models are free until the next one (the guard may move them then; the next
        # utterance waits for that and loses nothing).
        self.on_gap: Callable[[], None] | None = None

    # -- state for the guard and the control socket --------------------------------------

    @property
    def busy(self) -> bool:
        """An utterance is being spoken, waiting, or transcribed: no model restore now."""
        return self._segmenter.in_speech or not self._queue.empty() or self._transcribing.is_set()

    @property
    def in_speech(self) -> bool:
        """Speech is being spoken (or is in its end-of-utterance pause): no gap to stop at."""
        return self._segmenter.in_speech

    @property
    def runner(self) -> RecoveringRunner:
        return self._runner

    @property
    def spool(self) -> Spool:
        return self._spool

    @property
    def queued(self) -> int:
        with self._queue.mutex:  # advance transcriptions are work, not utterances waiting
            waiting = sum(isinstance(item, Utterance) for item in self._queue.queue)
        return waiting + len(self._backlog)

    # -- running ----------------------------------------------------------------------------

    def start_worker(self) -> None:
        """Starts the speech-to-text and output workers (the spool's backlog is read first)."""
        if self._started:
            return
        self._started = True
        if not self._backlog:
            self.replay_spool()
        self.workers.spawn("stt", self._warm_then_work)
        self.workers.spawn("output", self.delivery.run)

    def warm_up(self) -> None:
        """One inference of each model at load, so the first utterance is as fast as the
        rest (lazy allocations, kernel selection and caches are paid here, not by the user).
        The speech-to-text worker does it first thing, while capture is already listening."""
        import numpy as np

        if self._warmed:
            return
        self._warmed = True
        quiet = AudioBlock(0.0, np.zeros(512, np.float32), RATE)
        began = time.monotonic()
        try:
            self._runner.run("vad", lambda device: self._vad.speech_probability(quiet))
            self._vad.reset()
            warm = getattr(self._stt, "warm_up", None)
            if warm is not None:
                self._runner.run("stt", lambda device: warm())
        except Exception as error:  # a cold start is slower, never fatal
            log.warning("warm-up failed (%s); the first utterance may be slower", error)
            return
        log.info("models warmed up in %.2f s", time.monotonic() - began)

    def replay_spool(self) -> int:
        """Files left by an earlier run are transcribed before new audio, one at a time. A
        line it left open (it stopped between words typed early and their line's end) is
        ended first, so the next words do not run into it."""
        if self._spool.was_line_open():
            self._mid_line = True
            self.delivery.put(Pending(0, "", None, ends=True))
        backlog = self._spool.backlog()
        seconds = sum(self._spool.seconds(path) for path in backlog)
        with self._backlog_lock:
            self._backlog = backlog
            self._backlog_first = seconds <= self._backlog_in_order_s
        if backlog:
            log.warning(
                "transcribing %d spooled utterance(s) (%.0f s) from an earlier run %s",
                len(backlog),
                seconds,
                "before any new speech"
                if self._backlog_first
                else f"between new utterances (over {self._backlog_in_order_s:g} s: new "
                "speech is not held back for it)",
            )
        return len(backlog)

    def capture(self) -> None:
        """Reads the source until it ends or capture is stopped; then flushes open speech.
        A failure restarts the capture where the source left off."""
        self._capture_began = time.monotonic()
        describe = getattr(self._source, "describe", None)
        log.info("listening: %s", describe() if describe is not None else "capture began")
        try:
            self.workers.run_here("capture", self._capture_once)
        finally:
            self._end_speech()
            self._blocks.clear()

    def _capture_once(self) -> None:
        for block in self._source.blocks():
            if self._stop_capture.is_set():
                break
            if not self.enabled.is_set():
                self._pause(block)
                continue
            self._listening = True
            self._listen(block)

    def _listen(self, block: AudioBlock) -> None:
        import numpy as np

        if not np.isfinite(block.samples).all():
            # Unreadable audio is never fed to a model: the block is heard as silence.
            self.stats.rejected_blocks += 1
            if self.stats.rejected_blocks == 1:
                log.error("audio with NaN or Inf samples rejected (heard as silence)")
            self.workers.error("capture", "audio with NaN or Inf samples")
            block = AudioBlock(block.t, np.zeros_like(block.samples), block.rate)
        self._blocks.append(block)
        self._sentence_ended()
        probability = self._probability(block)
        self._act(self._endpointer.push(len(block.samples), probability))
        self._write_ahead(block)
        self._trim()

    def _probability(self, block: AudioBlock) -> float:
        import numpy as np

        samples = block.samples
        if len(samples) and float(np.dot(samples, samples)) / len(samples) < self._gate:
            self.gated_blocks += 1
            self._gated = True
            return 0.0  # a quiet room: silence, without waking the model
        if self._gated:
            # The VAD did not hear the quiet: its memory is of the sound before it, so a click
            # after a pause would be judged as the speech before the pause went on.
            self._gated = False
            with contextlib.suppress(Exception):
                self._vad.reset()
        try:
            probability = self._runner.run(
                "vad", lambda device: self._vad.speech_probability(block)
            )
        except Exception as error:
            # Keep the audio rather than lose words: an unreadable block counts as speech.
            self.workers.error("vad", error)
            if not self._vad_failed:
                log.error("VAD failed (%s); treating audio as speech until it recovers", error)
                self._vad_failed = True
            return 1.0
        if self._vad_failed:
            log.warning("VAD recovered")
            self._vad_failed = False
        return float(probability) if math.isfinite(probability) else 1.0

    def _pause(self, block: AudioBlock) -> None:
        """Toggled off: speech in progress (or in its end-of-utterance pause) is cut and
        transcribed as at a stop; the audio from here on is not listened to, and the
        segmenter stays aligned with the stream so that speech after the toggle is cut from
        the right samples."""
        if self._listening:
            self._listening = False
            self._end_speech()
            self._vad.reset()
        self._blocks.clear()
        self._act(self._endpointer.reset(round(block.t * RATE) + len(block.samples)))

    def _end_speech(self) -> None:
        self._act(self._endpointer.flush())
        with self._line_lock:
            self._close_open()

    # -- speculative endpointing ------------------------------------------------------------

    def _act(self, actions: list[Action]) -> None:
        if not actions:
            return
        with self._line_lock:  # an early piece is typed before or after, never during
            for action in actions:
                if isinstance(action, Speculate):
                    advance = Advance(action.span, self._cut(action.span))
                    self._advance[action.span] = advance
                    self.stats.speculations += 1
                    self._queue.put(advance)
                elif isinstance(action, Discard):
                    self._throw_away(self._advance.pop(action.span))
                elif isinstance(action, Deliver):
                    used = self._advance.pop(action.span, None) if action.speculated else None
                    if used is not None:
                        used.claimed = True
                    self._spoken = None
                    self._enqueue(action.span, used)
                elif isinstance(action, Partial):
                    self.stats.partials += 1
                    self._spoken = action.span.start
                    idle = self._queue.empty() and not self._transcribing.is_set()
                    if idle and self._words:  # never a cause of waiting for live text
                        self._queue.put(Pass(action.span, self._cut(action.span)))
                    else:
                        self.stats.partial_skipped += 1

    def _throw_away(self, advance: Advance) -> None:
        state = advance.cancel()
        if state is AdvanceState.QUEUED:
            self.stats.speculations_skipped += 1
            self._speculation_event(advance, used=False, ran=False)
        elif state is AdvanceState.DONE and advance.typed_early:
            self._typed_then_resumed(advance)
        elif state is AdvanceState.DONE:
            self._wasted(advance)
        # running: the worker counts it when it ends

    def _typed_then_resumed(self, advance: Advance) -> None:
        """Speech resumed after its words were typed: used (for those words), not wasted."""
        self.stats.speculations_used += 1
        self._speculation_event(advance, used=True, ran=True)

    def _wasted(self, advance: Advance) -> None:
        self.stats.speculations_wasted += 1
        self.stats.speculation_wasted_s += advance.stt_s
        self._speculation_event(advance, used=False, ran=True)

    def _speculation_event(self, advance: Advance, used: bool, ran: bool) -> None:
        detail = {
            "start_s": round(advance.span.start / RATE, 3),
            "duration_s": round((advance.span.end - advance.span.start) / RATE, 3),
            "stt_s": round(advance.stt_s, 3),
            "used": used,
            "ran": ran,
        }
        self._events.emit(
            Event(time.monotonic() - self._t0, "speculation", model="stt", detail=detail)
        )

    def _sentence_ended(self) -> None:
        """Tells the endpointer, once, that the advance transcript ends a sentence (with
        vad.sentence_end_s, a shorter pause then ends the utterance)."""
        span = self._endpointer.speculating
        advance = self._advance.get(span) if span is not None else None
        if advance is None or advance.reported or not advance.finished.is_set():
            return
        if advance.ends_sentence:
            advance.reported = True
            self._act(self._endpointer.sentence_ended(advance.span))

    def _speculate(self, advance: Advance) -> None:
        """Runs on the speech-to-text worker; a failure leaves the utterance to transcribe
        itself."""
        if not advance.start():
            return
        block = AudioBlock(advance.span.start / RATE, advance.samples, RATE)
        began = time.monotonic()
        text: str | None = None
        self._transcribing.set()
        try:
            text = self._runner.run("stt", lambda device: self._stt.transcribe(block))
        except Exception as error:
            log.warning("advance transcription failed (%s); the utterance will retry", error)
        finally:
            self._transcribing.clear()
        if text is not None and self._segmenter.settings.sentence_end_s > 0:
            advance.ends_sentence = ends_sentence(text)
        when = self._segmenter.settings.early_words
        if text and when is not EarlyWords.OFF:
            span = advance.span
            advance.typed_early = self._type_words(
                span.start,
                span.end,
                text,
                advance.samples,
                when,
                lambda: not advance.cancelled and not advance.claimed,
            )
        wasted = advance.finish(text, time.monotonic() - began)
        self.stats.speculations_run += 1
        if wasted and advance.typed_early:
            self._typed_then_resumed(advance)
        elif wasted:
            self._wasted(advance)

    def _type_words(
        self,
        start: int,
        until: int,
        text: str,
        samples: Any,
        when: EarlyWords,
        current: Callable[[], bool],
    ) -> bool:
        """Types the words of `text` (the transcript of stream samples [`start`, `until`))
        that are not typed yet, if `current()` still holds (the pause is under way; the
        utterance is still spoken). Their audio becomes a spool entry of its own first (the
        speech written ahead is cut there, so no sample is in two files): a crash before
        they are typed transcribes them again, after, never."""
        with self._line_lock:
            if not current():
                return False
            line = self._line_of(start)
            if line is not None and until <= line.until:
                return False
            piece = early_piece(line, text, when)
            if piece is None:
                return False
            since = line.until if line is not None else start
            spooled = self._split_open(since, until)
            if spooled is None:  # nothing written ahead from there: the words on their own
                spooled = self._spool.put(samples[since - start : until - start])
            if spooled is None:
                return False  # not kept anywhere yet: it waits for the whole utterance
            typed = (line.text if line is not None else "") + piece
            self._line = TypedPrefix(start, until, typed, time.monotonic())
            self.stats.early_pieces += 1
        self.delivery.put(Pending(0, piece, spooled, ends=False))  # 0: not an utterance
        return True

    def _partial_pass(self, item: Pass) -> None:
        """Transcribes the utterance so far, with word times; the words this pass and the
        one before agree on are typed (the last word heard is never: it may be cut)."""
        start = item.span.start
        if self._spoken != start:
            self.stats.partial_skipped += 1  # ended meanwhile: its own transcription follows
            return
        block = AudioBlock(start / RATE, item.samples, RATE)
        stt = self._stt
        assert isinstance(stt, WordRecognizer)
        self._transcribing.set()
        self.stats.partial_passes += 1  # run (a failure included)
        try:
            words = self._runner.run("stt", lambda device: stt.transcribe_words(block))
        except Exception as error:
            log.warning("a pass over speech in progress failed (%s)", error)
            return
        finally:
            self._transcribing.clear()
        texts = [word.text for word in words]
        before = self._last_pass[1] if self._last_pass[0] == start else []
        self._last_pass = (start, texts)
        count = agreed(before, texts)
        if count == 0:
            return
        # The typed words end between the last agreed word and the next one.
        gap = (words[count - 1].end_s + words[count].start_s) / 2
        until = min(item.span.end, start + max(0, round(gap * RATE)))
        text = "".join(texts[:count]).strip()
        self._type_words(
            start, until, text, item.samples, EarlyWords.ALWAYS, lambda: self._spoken == start
        )

    def _split_open(self, since: int, until: int) -> Path | None:
        """The speech written ahead, cut at `until` when it begins at `since` (under the line
        lock, which capture holds to write ahead): the file holding [since, until)."""
        opened = self._open
        if opened is None or opened.start_sample != since or until <= since:
            return None
        split = self._spool.split(opened, until)
        if split is None:
            return None
        path, self._open = split
        self._spool.written_bytes += opened.bytes
        return path

    def _end_line(self) -> None:
        """Ends a line typed early whose utterance will not be (it failed, or the run
        stops): what was spoken after the typed words stays in the spool."""
        with self._line_lock:
            line, self._line = self._line, None
        if line is not None:
            self.delivery.put(Pending(0, "", None, ends=True))

    def _spool_start(self) -> int | None:
        """Where the spool's copy of the speech in progress begins: after its words typed
        early, if any."""
        start = self._segmenter.open_start()
        line = self._line_of(start)
        return start if start is None or line is None else max(start, line.until)

    def _line_of(self, start: int | None) -> TypedPrefix | None:
        """The line typed early for the utterance that begins at `start`, if any."""
        line = self._line
        return line if line is not None and line.start == start else None

    # -- write-ahead ----------------------------------------------------------------------------

    def _write_ahead(self, block: AudioBlock) -> None:
        """Speech being spoken goes to the spool as it arrives (under the line lock: words
        typed early cut the file from the worker's thread)."""
        with self._line_lock:
            self._write_ahead_locked(block)

    def _write_ahead_locked(self, block: AudioBlock) -> None:
        start = self._spool_start()
        if start is None:
            self._close_open()
            self._open_failed = False
            return
        if self._open is not None and self._open.start_sample != start:
            self._close_open()  # split by the length limit: a new utterance goes on
        if self._open_failed:
            return
        try:
            if self._open is None:
                self._open = self._spool.open(start)
                if self._open is None:
                    self._open_failed = True
                    return
                self._open.append(self._cut(Span(start, self._segmenter.position)))
            else:
                self._open.append(block.samples)
        except OSError as error:
            self._open_failed = True
            self._close_open()
            self.workers.error("capture", error)
            log.error("speech in progress cannot be spooled (%s); kept in memory", error)

    def _close_open(self) -> None:
        if self._open is not None:
            self._spool.written_bytes += self._open.bytes
            try:
                self._open.discard()
            except OSError as error:
                log.error("cannot remove %s (%s)", self._open.path, error)
            self._open = None

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

    def _enqueue(self, span: Span, advance: Advance | None = None) -> None:
        """Queues a delivered utterance (called under the line lock). Only the audio after
        words typed early is spooled: they are not typed again after a crash."""
        samples = advance.samples if advance is not None else self._cut(span)
        if len(samples) == 0:
            return
        pad = int(self._segmenter.settings.end_pad_s * RATE)
        typed = self._line_of(span.start)
        since = typed.until if typed is not None else span.start
        opened = self._open
        twin = opened.path if opened is not None and opened.start_sample == since else None
        rest = samples[since - span.start :]
        spooled = self._spool.put(rest, twin=twin) if len(rest) else None
        speech_end_wall = None
        if self._realtime and self._capture_began is not None:
            speech_end_wall = self._capture_began + max(span.start, span.end - pad) / RATE
        utterance = Utterance(
            next(self._ids),
            samples,
            span.start / RATE,
            time.monotonic(),
            speech_end_wall,
            spooled=spooled,
            advance=advance,
            typed=typed,
        )
        self._queue.put(utterance)

    # -- speech-to-text ---------------------------------------------------------------------------

    def _next(self) -> Utterance | Advance | Pass | None:
        """A short backlog (what a crash or a re-execution leaves) first, in the order it was
        said, so no newer speech is typed before it; otherwise live speech (and its advance
        transcriptions) first and the next file of a long backlog between live utterances."""
        if self._backlog_first:
            backlog = self._from_backlog()
            if backlog is not None:
                return backlog
            self._backlog_first = False
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._line is None:  # never in the middle of a line typed early
            backlog = self._from_backlog()
            if backlog is not None:
                return backlog
        return self._queue.get()

    def _from_backlog(self) -> Utterance | None:
        while not self._abandon.is_set():
            with self._backlog_lock:
                if not self._backlog:
                    return None
                path = self._backlog.pop(0)
            samples = self._spool.load(path)
            if samples is None or len(samples) == 0:
                if samples is not None:
                    self._spool.done(path)
                continue
            return Utterance(
                next(self._ids),
                samples,
                0.0,
                time.monotonic(),
                spooled=path,
                from_backlog=True,
            )
        return None

    def _warm_then_work(self) -> None:
        with self._backlog_lock:
            backlog = bool(self._backlog)
        if not backlog:  # an earlier run's spool goes first, and warms the models itself
            self.warm_up()
        self._work()

    def _work(self) -> None:
        while True:
            utterance = self._next()
            if isinstance(utterance, Advance):
                if not self._abandon.is_set():
                    self._speculate(utterance)
                continue
            if isinstance(utterance, Pass):
                if not self._abandon.is_set():
                    self._partial_pass(utterance)
                continue
            if utterance is None:
                # Stopping: what is left of the backlog is transcribed unless abandoned.
                rest = self._from_backlog()
                if rest is None:
                    return
                utterance = rest
                self._queue.put(None)
            if self._abandon.is_set():
                self._keep(utterance)
                continue
            self._transcribing.set()
            try:
                self._transcribe(utterance)
            except Exception as error:  # one utterance's failure never ends the worker
                self.workers.error("stt", error)
                log.error(
                    "utterance %d could not be transcribed (%s); kept in the spool",
                    utterance.id,
                    error,
                )
                self._keep(utterance)
                self._end_line()
            finally:
                self._transcribing.clear()
            self._gap()

    def _gap(self) -> None:
        if self.on_gap is None or not self._queue.empty():
            return
        try:
            self.on_gap()
        except Exception as error:
            self.workers.error("stt", error)
            log.error("between utterances: %s", error)

    def _transcribe(self, utterance: Utterance) -> None:
        block = AudioBlock(utterance.start_s, utterance.samples, RATE)
        began = time.monotonic()
        devices: list[str] = []

        def run(device: str) -> str:
            devices.append(device)
            return self._stt.transcribe(block)

        advance = utterance.advance
        if advance is not None and advance.finished.is_set() and advance.text is not None:
            text = advance.text  # transcribed during the pause: exactly these samples
            began -= advance.stt_s
            self.stats.speculations_used += 1
            self._speculation_event(advance, used=True, ran=True)
        else:
            text = self._runner.run("stt", run)
        text = text.strip()
        typed = utterance.typed
        rest = text if typed is None else self._after_typed(utterance, typed, text)
        done = time.monotonic()
        text_at = done  # when its last word was handed to the output
        if typed is not None:
            with self._line_lock:
                self._line = None
            self.delivery.put(Pending(utterance.id, rest, utterance.spooled))  # ends the line
            if not any(ch.isalnum() for ch in rest):
                text_at = typed.typed_at  # its last word was typed early
        elif text:
            self.delivery.put(Pending(utterance.id, text, utterance.spooled))
        elif utterance.spooled is not None:
            self._spool.done(utterance.spooled)
        stats = self.stats
        stats.utterances += 1
        stats.words += len(text.split())
        stats.audio_s += utterance.duration_s
        stats.stt_s += done - began
        latency = max(0.0, text_at - utterance.closed_at)  # 0: typed before its pause ended
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
            since_speech = text_at - utterance.speech_end_wall
            stats.speech_latencies.append(since_speech)
            detail["speech_end_to_text_s"] = round(since_speech, 3)
        if utterance.from_backlog and utterance.spooled is not None:
            detail["from_spool"] = utterance.spooled.name
        self._events.emit(Event(done - self._t0, "utterance", model="stt", detail=detail))

    def _after_typed(self, utterance: Utterance, typed: TypedPrefix, text: str) -> str:
        """What the utterance adds after its words typed early: the end of its transcript
        when that begins with them; otherwise the audio after them, transcribed alone."""
        rest = after_typed(typed.text, text)
        if rest is not None:
            return rest
        self.stats.early_disagreed += 1
        since = typed.until - round(utterance.start_s * RATE)
        block = AudioBlock(typed.until / RATE, utterance.samples[since:], RATE)
        log.info("the final transcript revises words typed early; transcribing the rest alone")
        alone = self._runner.run("stt", lambda device: self._stt.transcribe(block)).strip()
        return " " + alone if alone else ""

    def _keep(self, utterance: Utterance) -> None:
        """Left for the next start: already in the spool, or written now (or counted lost).
        Words typed early are not: only the audio after them is kept."""
        if utterance.spooled is None:
            samples = utterance.samples
            if utterance.typed is not None:
                samples = samples[utterance.typed.until - round(utterance.start_s * RATE) :]
            if len(samples) == 0 or self._spool.put(samples) is None:
                return
        self.stats.spooled += 1

    def _delivered(self, item: Pending) -> None:
        if not item.ends and not self._mid_line:
            self._mid_line = True
            self._spool.line_open(True)
        elif item.ends and self._mid_line:
            self._mid_line = False
            self._spool.line_open(False)
        if item.spooled is not None:
            self._spool.done(item.spooled)

    # -- stopping ---------------------------------------------------------------------------

    def abandon(self) -> None:
        """Stop transcribing at once: what is queued (or still being spoken) stays spooled."""
        self._abandon.set()

    def stop_capture(self) -> None:
        self._stop_capture.set()
        self._source.close()

    def capture_health(self) -> CaptureHealth:
        return self._source.health()

    def finish(
        self,
        drain_timeout_s: float | None,
        spool_now: bool = False,
        deliver_within_s: float = 10.0,
    ) -> None:
        """After capture: let the worker drain the queue (up to `drain_timeout_s`), leave
        whatever is left in the spool (`spool_now`: everything not yet started), deliver the
        text that is ready, and keep what could not be delivered."""
        if spool_now:
            self._abandon.set()
        self._queue.put(None)
        if self._started and not self.workers.join("stt", drain_timeout_s):
            self._abandon.set()
            log.warning(
                "transcription did not finish in %.0f s; spooling the rest", drain_timeout_s or 0
            )
            self.workers.join("stt", 30)
        while True:  # anything still queued stays in the spool
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Utterance):
                self._keep(item)
        with self._backlog_lock:
            self.stats.spooled += len(self._backlog)
            self._backlog = []
        self._end_line()
        self.workers.stopping()
        self.delivery.close(deliver_within_s)
        if self._started:
            self.workers.join("output", deliver_within_s + 35)
        self._save_undelivered()
        closer = getattr(self._output, "close", None)
        if closer is not None:
            try:
                closer()
            except Exception as error:
                log.error("closing the output: %s", error)

    def _save_undelivered(self) -> None:
        left = self.delivery.undelivered()
        if not left:
            return
        lines = [""]  # words typed early and the rest of their utterance make one line
        for item in left:
            lines[-1] += item.text
            if item.ends:
                lines.append("")
        lines = [line for line in lines if line.strip()]
        path = self._keep_undelivered(lines)
        self.stats.undelivered = len(lines)
        if path is None:
            return
        self.stats.undelivered_file = str(path)
        log.error("%d undelivered utterance(s) appended to %s", len(lines), path)
        for item in left:  # kept as text now: not transcribed again at the next start
            if item.spooled is not None:
                self._spool.done(item.spooled)
