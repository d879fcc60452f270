"""What was typed against what was said, word by word: the one measure the benchmarks and
the end-to-end tests share."""

from __future__ import annotations

import re

NUMBERS = {"10": "ten"}  # the model writes some numbers in digits, the scripts in words


def words(text: str) -> list[str]:
    """Lower case, punctuation dropped, numbers read as the scripts spell them."""
    return [NUMBERS.get(t, t) for t in re.findall(r"[a-z0-9']+", text.lower())]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """The word error rate: the edit distance per word of the reference."""
    return edit_distance(reference, hypothesis) / max(1, len(reference))
