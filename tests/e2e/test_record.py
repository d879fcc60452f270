"""`swictation record` end to end: system RAM (real), Ctrl-C, and a machine without a GPU."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import has_cuda
from tests.e2e.conftest import BIN, run_command


def test_records_jsonl_and_csv_that_replay_reads(tmp_path):
    out, csv = tmp_path / "t.jsonl", tmp_path / "t.csv"
    result = run_command(
        "swictation",
        "record",
        "--probe",
        "host",
        "--interval",
        "0.2",
        "--duration",
        "1",
        "--out",
        str(out),
        "--csv",
        str(csv),
    )
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 5
    assert all(line["type"] == "sample" and line["total_mib"] > 0 for line in lines)
    assert [line["t"] for line in lines] == sorted(line["t"] for line in lines)
    for trace in (out, csv):
        replayed = run_command("swictation", "replay", str(trace), "--json")
        assert replayed.code == 0, replayed.err
        assert replayed.json()["samples"] == len(lines)


def test_ctrl_c_ends_it_cleanly_with_everything_written(tmp_path):
    out = tmp_path / "t.jsonl"
    process = subprocess.Popen(
        [
            str(BIN / "swictation"),
            "record",
            "--probe",
            "host",
            "--interval",
            "0.05",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    text = out.read_text()
    assert text.endswith("\n")
    count = len([json.loads(line) for line in text.splitlines()])
    assert f"{count} samples written" in err
    assert "Traceback" not in err


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_in_one_line(tmp_path):
    result = run_command("swictation", "record", "--out", str(tmp_path / "t.jsonl"))
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert "NVIDIA driver" in line
    assert "--probe host" in line
