"""The day-in-the-life benchmark's verdict (`benchmarks/day_bench.py`): typed lines are
aligned in order to what was said, and each way of going wrong is told apart."""

from __future__ import annotations

import numpy as np

from benchmarks.day_bench import Clip, Day, Run, Said, score, typed_utterances

A = Clip("a", "Open the window.", np.zeros(16000, np.float32))
B = Clip("b", "Close the door behind you.", np.zeros(16000, np.float32))
C = Clip("c", "Please send the report to the team before lunch.", np.zeros(16000, np.float32))


class Started:
    """A process that began listening at wall time 1000 with the day's second 0."""

    def __init__(self) -> None:
        self.segments = [(0.0, 1000.0)]
        self.reexecs: list[float] = []


def scored(tmp_path, said, typed):
    day = Day(np.zeros(16000, np.float32), said, [], (0.0, 0.0), 0.0)
    path = tmp_path / "typed.tsv"
    # As the stand-in typing tool records them: the daemon types a space after each utterance.
    path.write_text("".join(f"{at}\t{text} \n" for at, text in typed))
    run = Run(day, tmp_path, tmp_path / "s", path, tmp_path / "outage", {})
    run.daemons.append(Started())  # type: ignore[arg-type]
    return score(run)


def test_every_sentence_once_in_order_is_clean(tmp_path):
    said = [Said(0, A, 0.0), Said(1, B, 5.0), Said(2, C, 10.0)]
    typed = [(1002.0, "Open the window."), (1007.0, "Close the door behind you."),
             (1012.0, "Please send the report to the team before lunch.")]  # fmt: skip
    result = scored(tmp_path, said, typed)
    assert result["missing_words"] == result["duplicated_words"] == 0
    assert result["order_violations"] == result["typed_while_off"] == 0
    assert result["expected_words"] == result["typed_words"] == 3 + 5 + 9


def test_a_duplicate_a_swap_a_missing_sentence_and_speech_while_off_are_each_counted(tmp_path):
    said = [Said(0, A, 0.0), Said(1, B, 5.0), Said(2, C, 10.0, "off"), Said(3, C, 15.0),
            Said(4, A, 25.0)]  # fmt: skip
    typed = [
        (1002.0, "Open the window."),
        (1003.0, "Open the window."),  # typed twice
        (1012.0, "Please send the report to the team before lunch."),  # said while off
        (1020.0, "Please send the report to the team before lunch."),
        (1021.0, "Close the door behind you."),  # said before the line above
    ]
    result = scored(tmp_path, said, typed)
    assert result["duplicated_words"] == 3
    assert result["typed_while_off"] == 1
    assert result["order_violations"] == 1
    assert result["missing"] == ["Open the window. (day 25 s)"]


def test_a_misheard_sentence_is_not_a_lost_one_but_a_fragment_is(tmp_path):
    said = [Said(0, C, 0.0), Said(1, C, 10.0)]
    typed = [(1002.0, "Pleased and the rapport to a tea before lunch."),  # all of it, misheard
             (1013.0, "lunch.")]  # fmt: skip
    result = scored(tmp_path, said, typed)
    assert result["misheard"] == 1
    assert result["missing"] == ["Please send the report to the team before lunch. (day 10 s)"]


def test_words_typed_early_and_their_line_end_make_one_utterance(tmp_path):
    path = tmp_path / "typed.tsv"
    path.write_text(
        "1001.5\tOpen the window\n1001.8\t. \n"  # early words, then the stop at the pause
        "1006.0\tClose the door\n1006.4\t behind you. \n"  # speech resumed after a pause
    )
    assert typed_utterances(path) == [
        (1001.5, "Open the window."),  # its last word came at 1001.5
        (1006.4, "Close the door behind you."),
    ]
