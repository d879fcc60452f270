"""The trace files `record` writes, read back by replay's reader."""

from __future__ import annotations

from swictation.adapters.trace_writer import TraceFileWriter
from swictation.adapters.traces import read_trace
from swictation.domain.model import MemorySample, ProcessUsage


def _write(tmp_path, csv=True):
    out, sheet = tmp_path / "t.jsonl", tmp_path / "t.csv"
    wall = iter(1_780_000_000.0 + i for i in range(10))
    writer = TraceFileWriter(out, sheet if csv else None, gpu="0", wall=lambda: next(wall))
    processes = (ProcessUsage(42, 300.0, "python"),)
    for i in range(3):
        writer.write(MemorySample(10.0 + i, 1000.0 + 100 * i, 8192.0, 50.0, processes), float(i))
    writer.close()
    return out, sheet


def test_both_files_read_back_as_the_samples_written(tmp_path):
    out, sheet = _write(tmp_path)
    for path in (out, sheet):
        trace = read_trace(str(path))
        assert list(trace.times) == [0.0, 1.0, 2.0]
        assert list(trace.used_mib) == [1000.0, 1100.0, 1200.0]
        assert list(trace.total_mib) == [8192.0] * 3
    assert list(read_trace(str(out)).own_mib or ()) == [50.0] * 3
    assert '"processes": [{"pid": 42, "name": "python", "used_mib": 300.0}]' in out.read_text()


def test_nothing_is_created_before_the_first_sample(tmp_path):
    writer = TraceFileWriter(tmp_path / "t.jsonl", tmp_path / "t.csv")
    writer.close()
    assert list(tmp_path.iterdir()) == []
