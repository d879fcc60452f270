"""Cuts a stream of voice probabilities into utterances: hysteresis on the probability, a
minimum silence to end one, padding around speech, and a maximum length that splits long
speech so memory stays bounded. Works in sample counts; holds no audio.

The Endpointer adds speculative endpointing on top: a pause shorter than the one that ends
an utterance already starts its transcription (`Speculate`), which is used if the pause is
confirmed (`Deliver` with `speculated`) and thrown away if speech resumes (`Discard`)."""

from __future__ import annotations

import enum
import re
from typing import Any, TypeAlias

import attrs
from attrs import field, validators

SAMPLE_RATE = 16_000  # Hz, mono: what every audio source delivers and the models expect


def _within(low: float, high: float) -> Any:
    return validators.and_(validators.ge(low), validators.le(high))


class EarlyWords(enum.StrEnum):
    """When an advance transcript's words are typed before the pause is confirmed."""

    OFF = "off"  # never: the whole text when the pause is confirmed
    SENTENCE = "sentence"  # when the advance transcript ends a sentence (. ? !)
    ALWAYS = "always"  # at every pause long enough to transcribe


@attrs.frozen
class VadSettings:
    """The [vad] section of the configuration; the ranges are the ones users may set."""

    threshold: float = field(default=0.5, validator=_within(0.05, 0.95))
    # Speech continues until the probability falls below threshold - hysteresis.
    hysteresis: float = field(default=0.15, validator=_within(0.0, 0.5))
    min_silence_s: float = field(default=0.8, validator=_within(0.05, 10.0))
    # Audio kept before the speech: 0.2 s (with 0.15 s, Whisper tiny.en mishears more:
    # "milk, drink and coffee", "The meeting will be line teams target").
    speech_pad_s: float = field(default=0.2, validator=_within(0.0, 2.0))
    # Audio kept after it: 0.15 s is enough for Whisper to hear the end of the last word
    # and punctuate it; more delays the speculative transcription below, which waits for it.
    end_pad_s: float = field(default=0.15, validator=_within(0.0, 2.0))
    min_speech_s: float = field(default=0.25, validator=_within(0.0, 5.0))
    max_utterance_s: float = field(default=20.0, validator=_within(2.0, 120.0))
    # Blocks quieter than this (RMS, dB below full scale) are silence without asking the VAD.
    energy_gate_dbfs: float = field(default=-60.0, validator=_within(-120.0, 0.0))
    # A pause this long starts transcribing the utterance so far (0: off). Never earlier than
    # end_pad_s, so the advance transcription hears exactly what the final one would.
    speculate_after_s: float = field(default=0.15, validator=_within(0.0, 10.0))
    # A pause this long already ends an utterance whose advance transcript ends a sentence
    # (. ? !); what follows is a new utterance. 0: off (only min_silence_s ends one).
    sentence_end_s: float = field(default=0.0, validator=_within(0.0, 10.0))
    # Type an advance transcript's words at once, while the pause goes on (when it ends a
    # sentence, always, or off); its closing punctuation and the end of the line wait for
    # min_silence_s (typed text is never revised: if speech resumes, only what follows the
    # typed words is typed).
    early_words: EarlyWords = field(default=EarlyWords.SENTENCE, converter=EarlyWords)
    # While a long utterance is spoken, transcribe it every this many seconds and type the
    # words two consecutive passes agree on (never revised). 0: off.
    partial_every_s: float = field(default=0.0, validator=_within(0.0, 60.0))

    @partial_every_s.validator
    def _partial_at_least_a_second(self, attribute: Any, value: float) -> None:
        if 0 < value < 1.0:
            raise ValueError(f"{attribute.name} must be 0 (off) or 1 to 60")


@attrs.frozen
class Span:
    """Samples [start, end) of the stream that form one utterance."""

    start: int
    end: int
    split: bool = False  # ended by the length limit, not by silence


class Segmenter:
    def __init__(self, settings: VadSettings | None = None, rate: int = SAMPLE_RATE) -> None:
        self.settings = settings or VadSettings()
        s = self.settings
        self._pad = int(s.speech_pad_s * rate)  # before the speech
        self._end_pad = int(s.end_pad_s * rate)  # after it
        self._min_silence = int(s.min_silence_s * rate)
        self._min_speech = int(s.min_speech_s * rate)
        self._max = int(s.max_utterance_s * rate)
        self._rate = rate
        self._start: int | None = None  # first sample of speech in the open utterance
        self._last_voice = 0  # end of the last block that was speech
        self._voiced = 0  # voiced samples in the open utterance
        self._continued = False  # the open utterance continues one cut by the length limit
        self._position = 0
        # Where the last span handed out ended: padding never reaches back before it, so no
        # sample is transcribed twice.
        self._floor = 0

    @property
    def in_speech(self) -> bool:
        return self._start is not None

    @property
    def position(self) -> int:
        return self._position

    @property
    def silence(self) -> int:
        """Samples since the last voiced block of the open utterance (0 when none is open)."""
        return 0 if self._start is None else self._position - self._last_voice

    def open_start(self) -> int | None:
        """Where the utterance in progress begins (with padding), if one is open."""
        return None if self._start is None else max(self._floor, self._start - self._pad)

    def reset(self, position: int) -> None:
        """Forget any open speech and go on from stream sample `position` (audio between was
        not listened to, e.g. while dictation was toggled off)."""
        self._start = None
        self._voiced = 0
        self._continued = False
        self._position = position
        self._last_voice = position
        self._floor = position

    def push(self, samples: int, probability: float) -> list[Span]:
        """Feed one block of `samples` with its speech probability; returns finished spans."""
        s = self.settings
        begin, end = self._position, self._position + samples
        self._position = end
        done: list[Span] = []
        if self._start is None:
            if probability >= s.threshold:
                self._start = begin
                self._last_voice = end
                self._voiced = samples
            return done
        if probability >= s.threshold - s.hysteresis:
            self._last_voice = end
            self._voiced += samples
        elif end - self._last_voice >= self._min_silence:
            span = self._close(self._last_voice + self._end_pad)
            if span is not None:
                done.append(span)
            return done
        opened = self.open_start()
        if opened is not None and end - opened >= self._max:
            # Long speech: cut here and go on with a new utterance at once.
            done.append(Span(opened, end, split=True))
            self._floor = self._start = end
            self._voiced = 0
            self._continued = True
        return done

    def speculation(self) -> Span | None:
        """The span that ends the open utterance if the pause under way is confirmed; None
        while speech goes on, before the pause reaches `speculate_after_s` (and the padding
        after the speech is all heard), or when the close would keep nothing."""
        s = self.settings
        if self._start is None or s.speculate_after_s <= 0:
            return None
        end = self._last_voice + self._end_pad
        silence = self._position - self._last_voice
        if silence < s.speculate_after_s * self._rate or self._position < end:
            return None
        if self._voiced == 0 or (self._voiced < self._min_speech and not self._continued):
            return None
        start = self.open_start()
        assert start is not None
        return Span(start, end)

    def commit(self, span: Span) -> Span | None:
        """End the open utterance at `span` now (its advance transcript ended a sentence);
        what follows is a new utterance. None when `span` is no longer the one that would end
        it (speech resumed, or it was closed)."""
        if self.speculation() != span:
            return None
        return self._close(span.end)

    def flush(self) -> list[Span]:
        """End of stream: speech not yet ended is an utterance, not discarded."""
        if self._start is None:
            return []
        span = self._close(min(self._position, self._last_voice + self._end_pad), at_end=True)
        return [span] if span is not None else []

    def _close(self, end: int, at_end: bool = False) -> Span | None:
        start = self.open_start()
        voiced, continued = self._voiced, self._continued
        self._start = None
        self._voiced = 0
        self._continued = False
        assert start is not None
        end = min(end, self._position)
        if voiced == 0 or (voiced < self._min_speech and not (at_end or continued)):
            return None  # a click or a cough, not speech
        self._floor = end
        return Span(start, end)


# -- speculative endpointing ------------------------------------------------------------------


@attrs.frozen
class Speculate:
    """Transcribe `span` now, in advance: the pause after it may end the utterance."""

    span: Span


@attrs.frozen
class Discard:
    """The advance transcription of `span` is wasted: speech went on."""

    span: Span


@attrs.frozen
class Deliver:
    """`span` is an utterance: its text is typed. `speculated`: its advance transcription
    (of exactly this span) is already asked for and is used instead of a new one."""

    span: Span
    speculated: bool = False


@attrs.frozen
class Partial:
    """Transcribe `span`, the utterance so far, while it is still spoken: the words two
    consecutive passes agree on may be typed (vad.partial_every_s). Needs no answer."""

    span: Span


Action: TypeAlias = Speculate | Discard | Deliver | Partial

_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


def ends_sentence(text: str) -> bool:
    """Whether a transcript ends a sentence (. ? ! and any closing quote or bracket)."""
    return bool(_SENTENCE_END.search(text.strip()))


class Endpointer:
    """A Segmenter with speculative endpointing; returns what to do as actions (data).

    Each Speculate is answered by exactly one Discard or Deliver(speculated=True) of the same
    span; delivered spans never overlap, so no audio is typed twice, and none is lost."""

    def __init__(self, settings: VadSettings | None = None, rate: int = SAMPLE_RATE) -> None:
        self.segmenter = Segmenter(settings, rate)
        self._speculated: Span | None = None
        self._sentence_end = int(self.segmenter.settings.sentence_end_s * rate)
        self._ends_sentence = False  # the advance transcript of _speculated ends a sentence
        self._partial_every = int(self.segmenter.settings.partial_every_s * rate)
        self._partial_at: tuple[int, int] | None = None  # (utterance start, last pass's end)

    @property
    def settings(self) -> VadSettings:
        return self.segmenter.settings

    @property
    def speculating(self) -> Span | None:
        return self._speculated

    def push(self, samples: int, probability: float) -> list[Action]:
        return self._partial(self._ended(self._after(self.segmenter.push(samples, probability))))

    def _partial(self, actions: list[Action]) -> list[Action]:
        """Every `partial_every_s` of an utterance, while it is spoken (not in a pause), a
        pass over all of it so far."""
        start = self.segmenter.open_start()
        if self._partial_every <= 0 or start is None or self.segmenter.silence > 0:
            return actions
        position = self.segmenter.position
        if self._partial_at is None or self._partial_at[0] != start:
            self._partial_at = (start, start)
        if position - self._partial_at[1] >= self._partial_every:
            self._partial_at = (start, position)
            actions.append(Partial(Span(start, position)))
        return actions

    def flush(self) -> list[Action]:
        return self._after(self.segmenter.flush())

    def reset(self, position: int) -> list[Action]:
        """As Segmenter.reset: open speech is forgotten (its advance work with it)."""
        self.segmenter.reset(position)
        return self._after([])

    def sentence_ended(self, span: Span) -> list[Action]:
        """The advance transcript of `span` ends a sentence: with `sentence_end_s`, the
        utterance ends once the pause reaches it (now, if it has), unless speech resumes."""
        if self._sentence_end <= 0 or span != self._speculated:
            return []
        self._ends_sentence = True
        return self._ended([])

    def _ended(self, actions: list[Action]) -> list[Action]:
        span = self._speculated
        if span is None or not self._ends_sentence:
            return actions
        if self.segmenter.silence < self._sentence_end:
            return actions
        closed = self.segmenter.commit(span)
        return actions + self._after([closed] if closed is not None else [])

    def _after(self, spans: list[Span]) -> list[Action]:
        actions: list[Action] = []
        for span in spans:
            speculated = span == self._speculated
            if self._speculated is not None and not speculated:
                actions.append(Discard(self._speculated))
            if speculated or self._speculated is not None:
                self._speculated = None
                self._ends_sentence = False
            actions.append(Deliver(span, speculated))
        wanted = self.segmenter.speculation()
        if wanted != self._speculated:
            if self._speculated is not None:
                actions.append(Discard(self._speculated))
            if wanted is not None:
                actions.append(Speculate(wanted))
            self._speculated = wanted
            self._ends_sentence = False
        return actions
