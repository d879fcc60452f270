"""The state diagrams in docs/MEMORY_PROTECTION.md are the machines' own: stale text fails.

`SWICTATION_WRITE_DIAGRAMS=1 pytest tests/unit/test_diagrams.py` rewrites them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from swictation.domain.diagrams import gpu_mode_diagram, pressure_diagram, residency_diagram

DOC = Path(__file__).resolve().parents[2] / "docs" / "MEMORY_PROTECTION.md"


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- diagram: {name} -->\n```mermaid\n)(.*?)(```)", re.S)


@pytest.mark.parametrize(
    ("name", "generate"),
    [("pressure", pressure_diagram), ("residency", residency_diagram), ("gpu", gpu_mode_diagram)],
)
def test_the_documented_diagram_is_the_machine(name, generate):
    text = DOC.read_text(encoding="utf-8")
    match = _block(name).search(text)
    assert match, f"no '<!-- diagram: {name} -->' mermaid block in {DOC.name}"
    expected = generate()
    if os.environ.get("SWICTATION_WRITE_DIAGRAMS") == "1" and match.group(2) != expected:
        DOC.write_text(text[: match.start(2)] + expected + text[match.end(2) :], encoding="utf-8")
        text = DOC.read_text(encoding="utf-8")
        match = _block(name).search(text)
        assert match
    assert match.group(2) == expected, (
        f"the {name} diagram in {DOC.name} is stale: rerun this test with "
        "SWICTATION_WRITE_DIAGRAMS=1"
    )


def test_every_trigger_of_the_residency_machine_is_drawn():
    drawn = residency_diagram()
    for trigger in ("offload", "restore", "pin", "reset", "cool_down", "pressure_returned"):
        assert f": {trigger}\n" in drawn
