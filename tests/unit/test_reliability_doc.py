"""docs/RELIABILITY.md names, for each fault, the test that shows it: each must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_test_the_reliability_table_names_exists_where_it_says():
    text = (ROOT / "docs" / "RELIABILITY.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)", text)
    assert len(named) > 40
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not (ROOT / path).exists()
        or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert missing == []
    bare = re.findall(r"(?<![:/\w])`(test_\w+)", text)
    assert bare == [], "name the file too: tests/...::test_name"
