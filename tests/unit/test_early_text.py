"""Early words in the domain (issue 11): what is typed while a pause goes on, and what the
final transcript adds after it. Typed text is never revised, so the pieces must add up to
the final transcript exactly when the two agree, and nothing may be typed when they do not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swictation.domain.early_text import (
    TypedPrefix,
    after_typed,
    agreed,
    early_piece,
    split_closing,
)
from swictation.domain.segmenter import EarlyWords, VadSettings


def test_closing_punctuation_is_held_back():
    assert split_closing(" When you get home,") == ("When you get home", ",")
    assert split_closing('Is it ready?"') == ("Is it ready", '?"')
    assert split_closing("no punctuation") == ("no punctuation", "")
    assert split_closing(".") == ("", ".")


def test_what_the_final_transcript_adds_keeps_its_own_punctuation_and_spaces():
    assert after_typed("When you get home", "When you get home, please feed the cat.") == (
        ", please feed the cat."
    )
    assert after_typed("Let me know", " Let me know if you need anything else.") == (
        " if you need anything else."
    )
    assert after_typed("The package should arrive", "The package should arrive.") == "."
    assert after_typed("I don't know", "I don't know.") == "."
    # Marks that belong to the typed word are not typed again.
    assert after_typed("It is 100%", "It is 100%.") == "."
    assert after_typed("I like C++", "I like C++ a lot.") == " a lot."
    # Case and punctuation inside the typed words do not count: the words do.
    assert after_typed("good morning", "Good morning. Please sit.") == ". Please sit."


def test_a_final_transcript_that_revises_a_typed_word_disagrees():
    assert after_typed("I would like to order", "I would like to ordered a pizza.") is None
    assert after_typed("The train to", "A train to the airport.") is None
    assert after_typed("three words here", "three words") is None  # shorter than typed


def test_an_early_piece_is_the_new_words_without_their_closing_punctuation():
    assert early_piece(None, " The package should arrive.") == "The package should arrive"
    typed = TypedPrefix(0, 16000, "When you get home")
    assert early_piece(typed, "When you get home, please feed") == ", please feed"
    assert early_piece(typed, "When you get home, please feed.") == ", please feed"
    assert early_piece(typed, "When you get home.") is None  # nothing new
    assert early_piece(typed, "Once you get home, please feed") is None  # disagrees: wait
    assert early_piece(None, "...") is None


WORD = st.text(alphabet="abcdefghij'%+#&", min_size=1, max_size=6).filter(
    lambda w: any(ch.isalpha() for ch in w)
)
MARK = st.sampled_from(["", "", "", ",", ".", "?", "!", ";"])


@given(st.lists(st.tuples(WORD, MARK), min_size=1, max_size=12), st.data())
def test_pieces_typed_early_and_the_rest_add_up_to_the_final_transcript(tokens, data):
    """Whatever points the pauses fall at, the typed pieces followed by what the final
    transcript adds are exactly that transcript (when each advance is a prefix of it)."""
    full = " ".join(word + mark for word, mark in tokens)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(tokens)), max_size=4)))
    typed: TypedPrefix | None = None
    pieces: list[str] = []
    for cut in cuts:
        advance = " ".join(word + mark for word, mark in tokens[:cut])
        piece = early_piece(typed, advance)
        if piece is None:
            continue
        pieces.append(piece)
        typed = TypedPrefix(0, cut, (typed.text if typed else "") + piece)
    if typed is None:
        return
    rest = after_typed(typed.text, full)
    assert rest is not None
    assert "".join(pieces) + rest == full


def test_by_default_words_are_typed_early_only_when_the_advance_ends_a_sentence():
    """Whisper transcribes a phrase cut at a pause inside a sentence less well than a whole
    sentence ('The meeting with' heard as 'The meeting will be'), and typed words stay."""
    assert VadSettings().early_words is EarlyWords.SENTENCE
    assert early_piece(None, "When you get home,", EarlyWords.SENTENCE) is None
    assert early_piece(None, "The package should arrive.", EarlyWords.SENTENCE) == (
        "The package should arrive"
    )
    assert early_piece(None, "When you get home,", EarlyWords.ALWAYS) == "When you get home"
    assert early_piece(None, "Done.", EarlyWords.OFF) is None


def test_two_passes_agree_on_their_common_first_words_but_never_the_last_one_heard():
    assert agreed([" Alpha", " beta"], [" alpha", " beta,", " gam"]) == 2
    assert agreed([" alpha", " beta"], [" alpha", " beta"]) == 1  # "beta" may be cut
    assert agreed([" alfa", " beta"], [" alpha", " beta", " gamma"]) == 0
    assert agreed([], [" alpha", " beta"]) == 0
