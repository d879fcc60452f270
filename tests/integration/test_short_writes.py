"""A disk that fills mid-line: the kernel writes part of a line and says so. Forced for real
with RLIMIT_FSIZE in a child process (SIGXFSZ ignored, so the write returns short instead of
killing it), then the limit is lifted as if space had been freed, and the writer goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHILD_PRELUDE = """
import json, os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, HARD = resource.getrlimit(resource.RLIMIT_FSIZE)

def disk_fills_at(size):
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, HARD))

def space_freed():
    resource.setrlimit(resource.RLIMIT_FSIZE, (HARD, HARD))
"""


def run_child(body: str, tmp_path) -> dict:
    code = CHILD_PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_short_write_leaves_no_half_line_in_the_text_file(tmp_path):
    result = run_child(
        """
        from swictation.adapters.text_output import FileOutput
        path = sys.argv[1] + "/notes.txt"
        out = FileOutput(path)
        out.emit("Open the window.")
        disk_fills_at(len("Open the window.\\n") + 13)
        try:
            out.emit("Close the door behind you.")
            failed = False
        except OSError:
            failed = True
        space_freed()
        out.emit("Close the door behind you.")  # the delivery's retry
        print(json.dumps({"failed": failed, "text": open(path).read()}))
        """,
        tmp_path,
    )
    assert result["failed"] is True
    assert result["text"] == "Open the window.\nClose the door behind you.\n"


def test_a_short_write_leaves_no_torn_line_in_the_flight_recorder(tmp_path):
    result = run_child(
        """
        from swictation.adapters.events import JsonlEventSink
        from swictation.domain.model import Event
        path = sys.argv[1] + "/events.jsonl"
        sink = JsonlEventSink(path)
        sink.emit(Event(0.0, "sample", level="NORMAL", usage=0.1))
        disk_fills_at(os.path.getsize(path) + 20)
        sink.emit(Event(0.5, "sample", level="NORMAL", usage=0.2))
        space_freed()
        sink.emit(Event(1.0, "sample", level="NORMAL", usage=0.3))
        sink.close()
        print(json.dumps({"dropped": sink.dropped, "lines": open(path).read().splitlines()}))
        """,
        tmp_path,
    )
    assert result["dropped"] == 1
    assert [json.loads(line)["t"] for line in result["lines"]] == [0.0, 1.0]


def test_a_short_write_leaves_the_open_utterance_whole_samples(tmp_path):
    result = run_child(
        """
        import numpy as np
        from pathlib import Path
        from swictation.adapters.spool import OpenUtterance
        path = Path(sys.argv[1]) / "speech.pcm"
        utterance = OpenUtterance(path, 0)
        utterance.append(np.full(1000, 0.1, dtype=np.float32))
        disk_fills_at(2000 + 1001)
        try:
            utterance.append(np.full(1000, 0.2, dtype=np.float32))
            failed = False
        except OSError:
            failed = True
        size_after_failure = path.stat().st_size
        space_freed()
        utterance.append(np.full(1000, 0.3, dtype=np.float32))
        print(json.dumps({"failed": failed, "after_failure": size_after_failure,
                          "bytes": utterance.bytes, "size": path.stat().st_size}))
        """,
        tmp_path,
    )
    assert result["failed"] is True
    assert result["after_failure"] == 2000
    assert result["bytes"] == result["size"] == 4000
