"""Trace import's rough edges and hostile files: each is one line on stderr and exit 2 (or a
note, where the file is still readable), and `--json` output is always JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DICTATION = Path(__file__).parents[2] / "examples" / "audio" / "dictation.wav"
NVSMI = "timestamp, memory.used [MiB], memory.total [MiB]\n"


@pytest.fixture
def replay(swictation, monkeypatch):
    """`swictation replay ARGS` in this process, without the tester's SWICTATION_ settings."""
    for name in [k for k in os.environ if k.startswith("SWICTATION_")]:
        monkeypatch.delenv(name)
    return lambda *args: swictation("replay", *args)


def rows(count: int = 5) -> str:
    return "".join(f"2026/11/01 10:00:{i:02d}.000, {4000 + i}, 8192\n" for i in range(count))


def one_line_error(result, *expected: str) -> None:
    assert result.code == 2, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err
    for text in expected:
        assert text in result.err


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("2026/11/01 10:00:09.000, nan, 8192", "memory.used must be a finite number"),
        ("2026/11/01 10:00:09.000, inf, 8192", "memory.used must be a finite number"),
        ("2026/11/01 10:00:09.000, 4000, Infinity", "memory.total must be a finite number"),
        ("2026/11/01 10:00:09.000, 1" + "0" * 400 + ", 8192", "memory.used must be a finite"),
    ],
)
def test_non_finite_csv_values_name_the_line(tmp_path, line, what, replay):
    trace = tmp_path / "t.csv"
    trace.write_text(NVSMI + rows() + line + "\n")
    one_line_error(replay(str(trace), "--json"), f"{trace}:7: {what}")


def test_non_finite_timestamps_name_the_line(tmp_path, replay):
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp, memory.used, memory.total\n0, 10, 100\ninf, 10, 100\n")
    one_line_error(replay(str(trace)), f"{trace}:3: timestamp must be a finite number")


def test_the_daemons_trace_probe_refuses_them_the_same_way(tmp_path, swictationd):
    trace = tmp_path / "t.csv"
    trace.write_text(NVSMI + rows() + "2026/11/01 10:00:09.000, nan, 8192\n")
    result = swictationd("--probe", "trace", "--trace", str(trace), "--audio-file", str(DICTATION))
    assert result.code != 0
    assert f"{trace}:7: memory.used must be a finite number" in result.err
    assert "Traceback" not in result.err


def test_a_huge_single_line_a_huge_number_and_deep_json_are_one_line_errors(tmp_path, replay):
    huge = tmp_path / "huge.csv"
    with huge.open("w") as out:
        out.write(NVSMI)
        block = "9" * (1 << 20)
        for _ in range(200):  # 200 MB on one line
            out.write(block)
    one_line_error(replay(str(huge), "--json"), f"{huge}:2: a line longer than 1024 KiB")
    digits = tmp_path / "digits.jsonl"
    digits.write_text('{"t": 0, "used_mib": 1' + "0" * 399 + ', "total_mib": 8192}\n')
    one_line_error(replay(str(digits)), f"{digits}:1: used_mib must be a finite number")
    many = tmp_path / "many.jsonl"
    many.write_text('{"t": 0, "used_mib": 1' + "0" * 5000 + ', "total_mib": 8192}\n')
    one_line_error(replay(str(many)), f"{many}:1: not a trace line")
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    result = replay(str(deep), "--json")
    one_line_error(result, f"{deep}:1:")
    assert "error" in json.loads(result.out)


def test_a_cut_off_last_line_is_dropped_with_a_note(tmp_path, replay):
    trace = tmp_path / "cut.csv"
    trace.write_text(NVSMI + rows() + "2026/11/01 10:00:09.0")
    result = replay(str(trace), "--json")
    assert result.code == 0, result.err
    assert result.json()["samples"] == 5
    assert f"warning: {trace}:7: the last line is cut off; skipped" in result.err
    jsonl = tmp_path / "cut.jsonl"
    jsonl.write_text('{"t": 0, "used_mib": 10, "total_mib": 100}\n{"t": 1, "used_mi')
    result = replay(str(jsonl), "--json")
    assert result.code == 0, result.err
    assert result.json()["samples"] == 1
    # The same line cut off in the middle of the file is an error.
    middle = tmp_path / "middle.csv"
    middle.write_text(NVSMI + "2026/11/01 10:00:09.0\n" + rows())
    one_line_error(replay(str(middle)), f"{middle}:2:")


def test_a_byte_order_mark_is_ignored(tmp_path, replay):
    for name, text in (
        ("bom.csv", NVSMI + rows()),
        ("bom.jsonl", '{"t": 0, "used_mib": 10, "total_mib": 100}\n'),
    ):
        trace = tmp_path / name
        trace.write_bytes(b"\xef\xbb\xbf" + text.encode())
        result = replay(str(trace), "--json")
        assert result.code == 0, result.err


def test_columns_rename_a_header_that_is_not_nvidia_smis(tmp_path, replay):
    trace = tmp_path / "mine.csv"
    trace.write_text("when,card,used,size\n0,0,4000,8192\n1,0,4100,8192\n2,0,4200,8192\n")
    result = replay(str(trace), "--columns", "timestamp,index,memory.used,memory.total", "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert body["samples"] == 3
    assert body["total_mib"] == 8192
    headerless = tmp_path / "bare.csv"
    headerless.write_text("0,0,4000,8192\n1,0,4100,8192\n")
    result = replay(
        str(headerless), "--columns", "timestamp,index,memory.used,memory.total", "--json"
    )
    assert result.json()["samples"] == 2
