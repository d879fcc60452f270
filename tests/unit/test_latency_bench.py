"""How benchmarks/latency.py reads the daemon's stdout: words typed early are stamped when
they arrive, before the end of their line, and a line counts as cut in the middle of a
sentence only when the next line goes on with that sentence."""

from __future__ import annotations

from pathlib import Path

from benchmarks.latency import Item, LineClock, Run, Seen, Session, figures

ITEMS = (Item(Path("one.wav"), "Let me know if you need anything. Thank you. That is all."),)
# The session: the recording from 0 s to 10 s; the sentences end at 3 s, 5 s and 8 s.
SESSION = Session(Path("s.wav"), ((0.0, 10.0),), ((0.5, 3.0), (3.5, 5.0), (5.5, 8.0)), 10.0)


def run(*lines: Seen) -> Run:
    return Run(100.0, lines, 1.0, (), 0)


def test_words_typed_early_are_stamped_when_they_arrive_and_the_line_when_it_ends():
    clock = LineClock()
    clock.feed("Let me know", 1.0)
    clock.feed(" if you can", 2.0)
    clock.feed(".\nNext", 3.0)
    clock.feed(".\n", 4.0)
    assert clock.lines == [
        Seen(2.0, 3.0, "Let me know if you can."),  # the last word came at 2.0 s
        Seen(3.0, 4.0, "Next."),  # its word came with the end of the line before
    ]


def test_latency_runs_to_the_last_word_and_the_end_of_the_line_is_reported_apart():
    result = figures(
        SESSION,
        run(
            Seen(103.4, 103.8, "Let me know if you need anything."),
            Seen(105.3, 105.8, "Thank you."),
            Seen(108.5, 108.8, "That is all."),
        ),
        ITEMS,
    )
    assert [round(x, 2) for x in result.latencies] == [0.4, 0.3, 0.5]
    assert round(result.line_end_p50_s, 2) == 0.8
    assert result.mid_sentence == 0 and result.wer == 0


def test_a_sentence_cut_in_two_lines_counts_and_a_misheard_end_does_not():
    cut = figures(
        SESSION,
        run(
            Seen(102.0, 102.0, "Let me know."),
            Seen(103.4, 103.8, "If you need anything."),
            Seen(105.3, 105.8, "Thank you."),
            Seen(108.5, 108.8, "That is all."),
        ),
        ITEMS,
    )
    assert cut.mid_sentence == 1
    misheard = figures(
        SESSION,
        run(
            Seen(103.4, 103.8, "Let me know if you need the help."),  # "need" ends it
            Seen(105.3, 105.8, "Thank you."),
            Seen(108.5, 108.8, "That is all."),
        ),
        ITEMS,
    )
    assert misheard.mid_sentence == 0
