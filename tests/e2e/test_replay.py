"""`swictation replay` end to end, on fixture traces the project wrote itself."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, FIXTURES, GiB, write_csv

GOLDEN = Path(__file__).parent / "golden"
REQUIRED = {
    "samples",
    "duration_s",
    "levels",
    "transitions",
    "offloads",
    "restores",
    "shutdown",
    "oom_events",
    "peak_usage",
}
SHAPES = [
    ("units.csv",),
    ("nounits.csv",),
    ("repeated-header.csv",),
    ("noheader.csv", "--columns", "timestamp,name,memory.used,memory.total"),
    ("epoch.csv",),
    ("quoted.csv",),
    ("multi-gpu.csv",),
    ("free-only.csv",),
    ("no-total.csv", "--total-mib", "8192"),
    ("plain.jsonl",),
    ("plain.jsonl", "--format", "jsonl"),
    ("nounits.csv", "--format", "nvidia-smi"),
]


def comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("trace", "settings")}


@pytest.mark.parametrize("shape", SHAPES, ids=["-".join(s) for s in SHAPES])
def test_every_shape_replays_to_the_same_golden_summary(swictation, shape):
    name, *extra = shape
    result = swictation("replay", str(FIXTURES / name), "--model", "stt=1500MiB", *extra, "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert set(body) >= REQUIRED
    assert set(body["levels"]) == {"NORMAL", "WARNING", "CRITICAL", "EMERGENCY", "SHUTDOWN"}
    golden = json.loads((GOLDEN / "shapes.json").read_text())
    assert comparable(body) == golden


def test_the_golden_summary_is_what_the_fixture_means():
    # 3692-4692 MiB of others plus a 1500 MiB model on 8192 MiB: WARNING from the start;
    # at 2 s the others grow by 1000 MiB in one step and then sit still (94 %): a single
    # step is not a ramp, so the model stays, and the card never fills.
    golden = json.loads((GOLDEN / "shapes.json").read_text())
    assert golden["samples"] == 5
    assert golden["duration_s"] == 4.5
    assert golden["offloads"] == 0
    assert golden["oom_events"] == 0
    assert golden["final_placement"] == {"stt": "gpu"}
    assert golden["peak_usage"] == round((6192 + 1500) / 8192, 4)
    assert golden["levels"]["NORMAL"] == 0
    assert golden["levels"]["CRITICAL"] > 0


def test_multi_gpu_file_says_which_gpu_it_replayed(swictation):
    result = swictation("replay", str(FIXTURES / "multi-gpu.csv"), "--json")
    assert result.code == 0
    assert "holds GPUs 0, 1; replaying GPU 0" in result.err
    second = swictation("replay", str(FIXTURES / "multi-gpu.csv"), "--gpu", "1", "--json")
    assert second.json()["total_mib"] == 24576
    assert second.json()["peak_usage"] > 0.99
    assert second.err == ""


def test_human_summary_reads_well(swictation):
    result = swictation(
        "replay", str(FIXTURES / "units.csv"), "--model", "stt=1500MiB", "--policy", "both"
    )
    assert result.code == 0
    assert "default" in result.out
    assert "legacy" in result.out
    assert "time in WARNING" in result.out
    assert "would-be OOMs" in result.out
    assert not result.out.lstrip().startswith("{")


def flapping(t: float) -> float:
    return 4.3 * GiB if t < 120 else 1.0 * GiB


def ramp(t: float) -> float:
    return 2 * GiB + max(0.0, min(8 * GiB, (t - 10) * GiB))


def test_legacy_flaps_where_default_offloads_once(swictation, tmp_path):
    trace = write_csv(tmp_path / "flap.csv", flapping, 8 * GiB, 200, 0.1)
    legacy = swictation(
        "replay", str(trace), "--model", "stt=3.6GiB", "--policy", "legacy", "--json"
    ).json()
    default = swictation("replay", str(trace), "--model", "stt=3.6GiB", "--json").json()
    assert legacy["offloads"] >= 20
    assert legacy["restores"] >= 20
    assert default["offloads"] == 1
    assert default["restores"] == 1
    assert default["oom_events"] == 0


def test_fast_ramp_default_in_time_legacy_too_late(swictation, tmp_path):
    trace = write_csv(tmp_path / "ramp.csv", ramp, 12 * GiB, 40, 0.05)
    both = swictation(
        "replay", str(trace), "--model", "stt=3GiB", "--policy", "both", "--json"
    ).json()
    assert both["policy"] == "default"
    assert both["oom_events"] == 0
    assert both["compare"]["legacy"]["oom_events"] > 0


def test_events_file_lines(swictation, tmp_path):
    trace = write_csv(tmp_path / "flap.csv", flapping, 8 * GiB, 200, 0.1)
    events = tmp_path / "events.jsonl"
    result = swictation(
        "replay", str(trace), "--model", "stt=3600MiB", "--events", str(events), "--json"
    )
    assert result.code == 0
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines
    for line in lines:
        assert isinstance(line["t"], float | int)
        assert line["type"] in ("level", "action")
        assert "usage" in line
        if line["type"] == "level":
            assert line["level"] in ("NORMAL", "WARNING", "CRITICAL", "EMERGENCY", "SHUTDOWN")
        else:
            assert line["action"]
    offloads = [x for x in lines if x.get("action") == "offload"]
    assert [x["model"] for x in offloads] == ["stt"]
    assert [x["t"] for x in lines] == sorted(x["t"] for x in lines)


def test_config_thresholds_apply(swictation, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[thresholds]\npreset = "conservative"\n')
    plain = swictation(
        "replay", str(FIXTURES / "units.csv"), "--model", "stt=1500MiB", "--json"
    ).json()
    strict = swictation(
        "replay",
        str(FIXTURES / "units.csv"),
        "--model",
        "stt=1500MiB",
        "--config",
        str(config),
        "--json",
    ).json()
    # 81.7 % is WARNING by default, CRITICAL under the conservative 70/80/85.
    assert plain["levels"]["WARNING"] > 0
    assert plain["levels"]["EMERGENCY"] == 0
    assert strict["levels"]["WARNING"] == 0
    assert strict["levels"]["EMERGENCY"] > 0


def test_plot_writes_a_png_with_two_panels(swictation, tmp_path):
    trace = write_csv(tmp_path / "ramp.csv", ramp, 12 * GiB, 40, 0.05)
    png = tmp_path / "out.png"
    result = swictation(
        "replay", str(trace), "--model", "stt=3GiB", "--policy", "both", "--plot", str(png)
    )
    assert result.code == 0, result.err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")
    assert height > 600  # two panels stacked


def test_replays_its_own_recordings_with_the_models_accounted_for(swictation):
    # session.jsonl: 5192 MiB used of which 3000 are our STT. Replayed with its recorded
    # models, usage is the same as recorded; the models are not counted twice.
    body = swictation("replay", str(FIXTURES / "session.jsonl"), "--json").json()
    assert body["models"] == {"stt": 3000.0}
    assert body["peak_usage"] == round(6192 / 8192, 4)


def test_progress_bar_only_on_a_terminal(tmp_path):
    trace = write_csv(tmp_path / "long.csv", lambda t: 1000.0, 8192, 25_000, 0.1)
    piped = subprocess.run(
        [str(BIN / "swictation"), "replay", str(trace), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert piped.stderr == ""
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [str(BIN / "swictation"), "replay", str(trace), "--json"],
            stdout=subprocess.PIPE,
            stderr=secondary,
            check=True,
        )
        os.close(secondary)
        secondary = -1
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert b"row" in shown
    assert json.loads(done.stdout)["samples"] == 250_001


BAD = [
    ("missing", lambda d: d / "nope.csv", [], "no such file"),
    ("empty", lambda d: touch(d / "empty.csv", b""), [], "empty"),
    ("binary", lambda d: touch(d / "x.csv", bytes(range(256)) * 8), [], "binary data"),
    (
        "no-memory",
        lambda d: touch(d / "x.csv", b"timestamp, name\n2026/11/01 10:00:00.000, x\n"),
        [],
        "no memory columns",
    ),
    (
        "text-in-number",
        lambda d: touch(
            d / "x.csv",
            b"timestamp, memory.used [MiB], memory.total"
            b" [MiB]\n2026/11/01 10:00:00.000, lots MiB, 8192 MiB\n",
        ),
        [],
        ":2: 'lots MiB' is not",
    ),
    (
        "zero-total",
        lambda d: touch(
            d / "x.csv",
            b"timestamp, memory.used [MiB], memory.total"
            b" [MiB]\n2026/11/01 10:00:00.000, 1 MiB, 0 MiB\n",
        ),
        [],
        ":2: memory.total must be > 0",
    ),
    (
        "negative-total",
        lambda d: touch(
            d / "x.csv",
            b"timestamp, memory.used [MiB], memory.total"
            b" [MiB]\n2026/11/01 10:00:00.000, 1 MiB, -8 MiB\n",
        ),
        [],
        "memory.total must be > 0",
    ),
    ("unknown-gpu", lambda d: FIXTURES / "multi-gpu.csv", ["--gpu", "7"], "no GPU 7"),
    (
        "bad-model-size",
        lambda d: FIXTURES / "units.csv",
        ["--model", "stt=lots"],
        "--model stt=lots",
    ),
    (
        "bad-model-unit",
        lambda d: FIXTURES / "units.csv",
        ["--model", "stt=3Parsecs"],
        "unknown unit",
    ),
    ("model-without-size", lambda d: FIXTURES / "units.csv", ["--model", "stt"], "NAME=SIZE"),
    ("unified-memory", lambda d: FIXTURES / "unified.csv", [], "[N/A]"),
    ("no-total", lambda d: FIXTURES / "no-total.csv", [], "--total-mib"),
    ("headerless", lambda d: FIXTURES / "noheader.csv", [], "--columns"),
    (
        "bad-jsonl",
        lambda d: touch(d / "x.jsonl", b'{"t": 0, "used_mib": 1, "total_mib": 8}\n{oops\n'),
        [],
        ":2: not a JSON object",
    ),
    (
        "jsonl-text-number",
        lambda d: touch(d / "x.jsonl", b'{"t": 0, "used_mib": "1", "total_mib": 8}\n'),
        [],
        ":1: used_mib must be a number",
    ),
    (
        "backwards",
        lambda d: touch(d / "x.csv", b"timestamp,memory.used,memory.total\n5,1,8\n4,1,8\n"),
        [],
        ":3: timestamps go backwards",
    ),
    (
        "ragged",
        lambda d: touch(d / "x.csv", b"timestamp,memory.used,memory.total\n5,1\n"),
        [],
        ":2: expected 3 fields",
    ),
    (
        "bad-timestamp",
        lambda d: touch(d / "x.csv", b"timestamp,memory.used,memory.total\nnoon,1,8\n"),
        [],
        "timestamp 'noon'",
    ),
    (
        "bad-config",
        lambda d: FIXTURES / "units.csv",
        ["--config", "/nonexistent/c.toml"],
        "no such configuration file",
    ),
    ("directory", lambda d: d, [], "is a directory"),
]


def touch(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("label", "make", "extra", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(swictation, tmp_path, label, make, extra, message):
    result = swictation("replay", str(make(tmp_path)), *extra)
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    assert message in lines[0]
    assert result.out == ""


def test_bad_option_is_one_line_and_exit_2(swictation):
    result = swictation("replay", str(FIXTURES / "units.csv"), "--total-mib", "-5")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1


def test_an_events_file_that_cannot_be_written_is_an_error_before_the_replay(swictation, tmp_path):
    trace = write_csv(tmp_path / "flap.csv", flapping, 8 * GiB, 200, 0.1)
    events = tmp_path / "missing" / "events.jsonl"
    result = swictation("replay", str(trace), "--model", "stt=3600MiB", "--events", str(events))
    assert result.code == 2
    assert result.err == f"swictation replay: error: {events}: No such file or directory\n"
    assert result.out == ""


def _disk_fills_at(size: int):
    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a short write, not a killed process
        resource.setrlimit(
            resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1])
        )

    return limit


def test_events_lost_to_a_full_disk_make_the_replay_fail(swictation, tmp_path):
    trace = write_csv(tmp_path / "flap.csv", flapping, 8 * GiB, 200, 0.1)
    events = tmp_path / "events.jsonl"
    result = swictation(
        "replay",
        str(trace),
        "--model",
        "stt=3600MiB",
        "--events",
        str(events),
        preexec_fn=_disk_fills_at(600),
    )
    assert result.code == 1
    last = result.err.strip().splitlines()[-1]
    assert last.startswith(f"swictation replay: error: {events}: ")
    assert "events could not be written" in last
    for line in events.read_text().splitlines():
        json.loads(line)  # what was written is whole lines
