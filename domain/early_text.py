"""Early words: the words of an advance transcription are typed while the pause that may end
the utterance is still under way; what ends the line (the closing punctuation, and the end of
the line itself) waits until the pause is confirmed. Typed text is never revised: when speech
resumes, the utterance goes on, and only what its final transcript adds after the words
already typed is typed (when the two agree; otherwise the caller transcribes the rest alone).

Pure functions over text, and the value that says what an open line has typed."""

from __future__ import annotations

import re

import attrs

from swictation.domain.segmenter import EarlyWords, ends_sentence

# Punctuation that may close a phrase: held back until the pause is confirmed.
_CLOSING = re.compile(r"[\s.,;:?!\"')\]…-]*$")
_WORD = re.compile(r"\S+")
_CORE = re.compile(r"\w+(?:'\w+)*")  # an apostrophe inside a word, not a quote


@attrs.frozen
class TypedPrefix:
    """What an utterance still being spoken has typed: `text`, the words of samples
    [`start`, `until`) of the stream; `typed_at` (monotonic) when the last of them was."""

    start: int
    until: int
    text: str
    typed_at: float = 0.0


def split_closing(text: str) -> tuple[str, str]:
    """(words, closing): the text without the punctuation that ends it, and that punctuation.
    `"When you get home,"` -> `("When you get home", ",")`."""
    text = text.strip()
    closing = _CLOSING.search(text)
    cut = closing.start() if closing is not None else len(text)
    return text[:cut], text[cut:].strip()


def _norm(word: str) -> str:
    return "".join(_CORE.findall(word.lower()))


def after_typed(typed: str, full: str) -> str | None:
    """The part of `full` that comes after the words of `typed`, when `full` begins with the
    same words (compared without case or punctuation); None when they disagree. The part
    keeps its own punctuation and leading space: `after_typed("Let me know", "Let me know if
    you can.")` is `" if you can."`; `after_typed("home", "home, please")` is `", please"`."""
    want = [w for w in (_norm(t) for t in typed.split()) if w]
    full = full.strip()
    if not want:
        return (" " + full) if full else ""
    matched = 0
    for token in _WORD.finditer(full):
        word = _norm(token.group())
        if not word:
            continue  # a lone mark ("-") between words
        if word != want[matched]:
            return None
        matched += 1
        if matched == len(want):
            # After the last typed word as it was typed ("100%", "C++"), else after its
            # letters ("home" of "home,").
            last = typed.rsplit(maxsplit=1)[-1]
            if token.group().lower().startswith(last.lower()):
                return full[token.start() + len(last) :]
            core = list(_CORE.finditer(token.group()))
            return full[token.start() + core[-1].end() :]
    return None


def agreed(previous: list[str], current: list[str]) -> int:
    """How many leading words of `current` the `previous` pass over the same speech also
    began with (compared without case or punctuation); never the last word of `current`,
    which may be cut by the end of the audio heard so far."""
    count = 0
    for before, now in zip(previous, current[:-1], strict=False):
        if _norm(before) != _norm(now) or not _norm(now):
            break
        count += 1
    return count


def early_piece(
    typed: TypedPrefix | None, advance: str, when: EarlyWords = EarlyWords.ALWAYS
) -> str | None:
    """What to type now from an advance transcript: its words after those already typed,
    without its closing punctuation. None when there is nothing new, when the advance no
    longer begins with what is typed (nothing is typed then: the final transcript decides),
    or when `when` says not now (off; `sentence` and the advance does not end one)."""
    if when is EarlyWords.OFF or (when is EarlyWords.SENTENCE and not ends_sentence(advance)):
        return None
    rest = after_typed(typed.text, advance) if typed is not None else advance.strip()
    if rest is None:
        return None
    words, _ = split_closing(rest)
    if not _CORE.search(words):
        return None
    lead = rest[: len(rest) - len(rest.lstrip())] if typed is not None else ""
    return lead + words
