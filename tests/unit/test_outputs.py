"""Text outputs. wtype and xdotool need a display this machine lacks: stand-in programs of
the same names record the arguments they were given instead of typing."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest

from swictation.adapters.text_output import (
    FileOutput,
    OutputError,
    StdoutOutput,
    TypingOutput,
    printable,
    wtype_output,
    xdotool_output,
)


def test_control_characters_never_pass():
    assert printable("hello\x1b[31m world\x07\n") == "hello[31m world"
    assert printable("tab\there") == "tab here"
    assert printable("café  ") == "café"
    # The rest of a line whose first words were typed early keeps its leading space.
    assert printable(" if you can.") == " if you can."


def test_stdout_is_one_line_per_utterance():
    stream = io.StringIO()
    out = StdoutOutput(stream)
    out.emit("Open the window.")
    out.emit("Close\nthe door.")
    assert stream.getvalue() == "Open the window.\nClose the door.\n"


def test_file_output_appends_and_flushes(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("earlier\n")
    out = FileOutput(path)
    out.emit("first")
    assert path.read_text() == "earlier\nfirst\n"  # flushed at once
    out.emit("second")
    out.close()
    assert path.read_text().splitlines() == ["earlier", "first", "second"]


def test_file_output_writes_words_typed_early_then_ends_the_line(tmp_path):
    path = tmp_path / "notes.txt"
    out = FileOutput(path)
    out.emit("Let me know", ends=False)
    assert path.read_text() == "Let me know"  # at once, before the rest
    out.emit(" if you can.")
    out.emit("Next.")
    assert path.read_text() == "Let me know if you can.\nNext.\n"


def test_file_output_after_a_crash_mid_line_starts_a_new_line(tmp_path):
    """A run killed between words typed early and the end of their line left the file
    mid-line; the next run's text must not be glued to it."""
    path = tmp_path / "notes.txt"
    path.write_text("done.\nGood morning")
    out = FileOutput(path)
    out.emit("Please open a new document.")
    out.emit("Thanks.")
    assert path.read_text().splitlines() == [
        "done.",
        "Good morning",
        "Please open a new document.",
        "Thanks.",
    ]


def test_typing_output_types_early_words_without_the_space_that_ends_an_utterance(tmp_path):
    typed = tmp_path / "typed"
    tool = tmp_path / "wtype"
    tool.write_text(f"#!/bin/sh\nprintf '%s|' \"$2\" >> {typed}\n")
    tool.chmod(0o755)
    out = TypingOutput(str(tool), ("--",))
    out.emit("Let me know", ends=False)
    out.emit(" if you can.")
    out.emit("", ends=True)  # a line whose words were all typed early: just its space
    assert typed.read_text() == "Let me know| if you can. | |"


def test_file_output_that_cannot_be_opened(tmp_path):
    with pytest.raises(OutputError, match="cannot append"):
        FileOutput(tmp_path / "missing-dir" / "x.txt")


def stand_in(tmp_path, name):
    log = tmp_path / f"{name}.log"
    script = tmp_path / name
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.mark.parametrize(
    ("name", "factory", "prefix"),
    [
        ("wtype", wtype_output, ["--"]),
        ("xdotool", xdotool_output, ["type", "--clearmodifiers", "--delay", "4", "--"]),
    ],
)
def test_typing_tools_get_the_text_as_one_argument(tmp_path, monkeypatch, name, factory, prefix):
    log = stand_in(tmp_path, name)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    out = factory()
    out.emit("-rf $(reboot); `ls` 'quoted'\n")
    (argv,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert argv == [*prefix, "-rf $(reboot); `ls` 'quoted' "]


def test_a_missing_typing_tool_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OutputError, match="wtype program is not on PATH"):
        wtype_output()
