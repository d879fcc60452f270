#!/usr/bin/env python3
"""A day in the life of `swictationd` (issue 8): a generated recording of speech and long
silences played at real-time pace through the real daemon, a generated VRAM trace as its GPU
(`--probe trace`) and a stand-in typing tool on PATH, while the day happens to it: toggles
through the control socket (just after a sentence, and mid-sentence), an output outage, a
SIGKILL with text waiting and a restart that starts with an OOM storm (`--inject-fault`), a
game that fills the card. At the end every sentence said while listening must have been
typed exactly once, in the order it was said; the table gives the figures.

    python benchmarks/day_bench.py              # the whole day: 20 minutes, real time
    python benchmarks/day_bench.py --minutes 4  # the same day with shorter silences

The recording is built from the project's own voice recordings (deterministic: nothing is
committed), and so is the trace."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.wer import error_rate, words

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "fixtures" / "audio"
DICTATION = ROOT / "examples" / "audio" / "dictation.wav"
RATE = 16000
BIN = Path(sys.executable).parent
TOTAL_MIB = 8192.0
CALM_MIB = 2900.0  # the desktop's share of the card on an ordinary day
GAME_MIB = 0.99 * TOTAL_MIB


# -- the recording -----------------------------------------------------------------------------


@attrs.define(eq=False)
class Clip:
    name: str
    text: str
    samples: object  # float32 mono at 16 kHz, voiced part only

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE  # type: ignore[arg-type]


def _voiced(samples, gap_s: float = 0.8) -> list[tuple[int, int]]:
    """(start, end) of the voiced stretches of a recording, split at pauses of `gap_s`."""
    import numpy as np

    loud = np.flatnonzero(np.abs(samples) > 0.01)
    spans: list[tuple[int, int]] = []
    for index in loud:
        if spans and index - spans[-1][1] < gap_s * RATE:
            spans[-1] = (spans[-1][0], int(index) + 1)
        else:
            spans.append((int(index), int(index) + 1))
    return spans


def clips() -> list[Clip]:
    """Seven sentences, each one utterance (the two with a full stop inside are left out)."""
    import soundfile

    def read(path: Path):
        samples, rate = soundfile.read(path, dtype="float32")
        assert rate == RATE and samples.ndim == 1, path
        return samples

    def whole(path: Path):
        samples = read(path)
        spans = _voiced(samples)
        return samples[spans[0][0] : spans[-1][1]]

    dictation = _voiced(read(DICTATION))
    pair = _voiced(read(AUDIO / "pair.wav"))
    said = read(DICTATION)
    door = read(AUDIO / "pair.wav")
    return [
        Clip("meeting", "The meeting with the design team starts at ten o'clock.",
             said[slice(*dictation[1])]),
        Clip("maria", "Remember to send the report to Maria before lunch.",
             said[slice(*dictation[2])]),
        Clip("weather", "The weather today is cold and windy with some rain.",
             whole(AUDIO / "voice-us.wav")),
        Clip("window", "Open the window.", door[slice(*pair[0])]),
        Clip("report", "Please send the report to the team before lunch.",
             whole(AUDIO / "voice-gb.wav")),
        Clip("milk", "Remember to buy milk, bread and coffee on the way home.",
             whole(AUDIO / "voice-female.wav")),
        Clip("door", "Close the door behind you.", door[slice(*pair[1])]),
    ]  # fmt: skip


@attrs.define
class Said:
    """One sentence of the day: `kind` is `live` (must be typed once), `off` (said while not
    listening: must not be typed) or `cut` (a toggle cut it: its beginning is typed once)."""

    index: int
    clip: Clip
    start: float
    kind: str = "live"

    @property
    def end(self) -> float:
        return self.start + self.clip.duration_s


@attrs.define
class Day:
    samples: object
    said: list[Said]
    actions: list[tuple[float, str]]  # (day second, what): off, on, outage, back, kill
    game: tuple[float, float]
    kill_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE  # type: ignore[arg-type]


class _Builder:
    def __init__(self, minutes: float, seed: int) -> None:
        self.scale = minutes / 20.0
        self.rng = random.Random(seed)
        self.clips = clips()
        self.t = 0.0
        self.said: list[Said] = []
        self.actions: list[tuple[float, str]] = []

    def speak(self, kind: str = "live") -> Said:
        clip = self.clips[len(self.said) % len(self.clips)]
        said = Said(len(self.said), clip, self.t, kind)
        self.said.append(said)
        self.t = said.end
        return said

    def pause(self, seconds: float) -> None:
        self.t += seconds

    def quiet(self, seconds: float) -> None:
        """A long silence: scaled with the day."""
        self.t += max(3.0, seconds * self.scale)

    def talk(self, sentences: int) -> Said:
        for i in range(sentences):
            said = self.speak()
            if i < sentences - 1:
                self.pause(self.rng.uniform(1.5, 3.0))
        return said

    def act(self, what: str, at: float | None = None) -> None:
        self.actions.append((self.t if at is None else at, what))


def _morning(b: _Builder) -> float:
    """Dictation, toggles, an output outage and, in it, the SIGKILL: its day second."""
    b.pause(2.0)
    b.talk(6)
    b.quiet(70)
    last = b.talk(3)
    b.act("off", last.end + 0.25)  # a toggle just after a sentence: it is still typed
    b.pause(5.0)
    b.speak("off")  # said while not listening
    b.pause(3.0)
    b.quiet(25)
    b.act("on")
    b.pause(2.0)
    b.talk(4)
    b.quiet(60)
    cut = b.speak("cut")
    b.act("off", cut.start + cut.clip.duration_s / 2)  # a toggle mid-sentence
    b.quiet(20)
    b.act("on")
    b.pause(2.0)
    b.talk(2)
    b.quiet(120)
    b.talk(3)
    b.pause(2.0)
    b.act("outage")  # the typing tool fails from here
    b.talk(2)
    b.quiet(15)
    last = b.talk(2)
    kill = last.end + 0.3  # inside the end-of-utterance pause, with text waiting
    b.act("kill", kill)
    return kill


def _afternoon(b: _Builder, kill: float) -> tuple[float, float]:
    """The restart (an OOM storm at once), the end of the outage, the game: its span."""
    b.pause(1.5)  # the restarted daemon hears speech while the spool is still transcribed
    b.talk(3)
    back = max(b.t + 2.0, kill + 60 * b.scale)
    b.act("back", back)  # the display is back
    b.t = back + 2.0
    b.quiet(60)
    b.talk(4)
    b.quiet(30)
    game_start = b.t
    b.talk(3)
    b.quiet(60)
    b.talk(3)
    b.quiet(60)
    b.talk(2)
    game_end = b.t + 10.0
    b.t = game_end + 5.0
    b.talk(4)
    end = 20 * 60 * b.scale
    while b.t < end - 40 * b.scale:
        b.quiet(50)
        b.talk(b.rng.randint(2, 5))
    b.quiet(20)
    return game_start, game_end


def build_day(minutes: float = 20.0, seed: int = 8) -> Day:
    import numpy as np

    b = _Builder(minutes, seed)
    kill = _morning(b)
    game = _afternoon(b, kill)
    samples = np.zeros(int(b.t * RATE) + RATE, np.float32)
    for said in b.said:
        first = round(said.start * RATE)
        voice = said.clip.samples
        samples[first : first + len(voice)] = voice  # type: ignore[arg-type]
    return Day(samples, b.said, sorted(b.actions), game, kill)


def write_trace(path: Path, day: Day, from_s: float) -> Path:
    """nvidia-smi CSV: the desktop's share of an 8 GiB card, the game's 99 % while it runs
    (day seconds, replayed from the daemon's start at `from_s`)."""
    lines = ["timestamp, index, memory.used [MiB], memory.total [MiB]"]
    span = day.duration_s - from_s + 600.0
    for i in range(int(span * 2) + 1):
        t = i / 2
        when = from_s + t
        used = GAME_MIB if day.game[0] <= when < day.game[1] else CALM_MIB + 40 * (i % 3)
        stamp = datetime.fromtimestamp(1_780_000_000 + t).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
        lines.append(f"{stamp}, 0, {used:.0f} MiB, {TOTAL_MIB:.0f} MiB")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the programs ------------------------------------------------------------------------------


def typing_stand_in(directory: Path) -> tuple[Path, Path]:
    """A `wtype` on PATH (a shell script: its own cost is a fork, as the real one's is) that
    fails while the outage file exists and otherwise records when it typed what."""
    typed = directory / "typed.tsv"
    outage = directory / "outage"
    script = directory / "bin" / "wtype"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "#!/bin/sh\n"
        f"if [ -e '{outage}' ]; then echo 'failed to open display' >&2; exit 1; fi\n"
        "for last; do :; done\n"
        f"printf '%s\\t%s\\n' \"$(date +%s.%N)\" \"$last\" >> '{typed}'\n"
    )
    script.chmod(0o755)
    return typed, outage


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _stamp(line: str) -> float:
    found = _STAMP.match(line)
    if not found:
        return time.time()
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


class Daemon:
    """One `swictationd` process, its log read as it comes. `segments` places its audio in
    time: (day second, wall time) at each start of capture, from the log lines' own time
    stamps; a re-execution (CPU mode and back) resumes the file where it stopped."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, from_s: float) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [str(BIN / "swictationd"), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.from_s = from_s
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.segments: list[tuple[float, float]] = []
        self.reexecs: list[float] = []
        self.rusage: object | None = None
        self.code: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        left_at: float | None = None
        for line in self.process.stderr:
            self.lines.append(line)
            self.log.write(line)
            self.log.flush()
            if "stopping: re-executing on the" in line:  # capture stops here
                left_at = _stamp(line)
            elif "re-executed: running on the" in line:
                self.reexecs.append(_stamp(line))
            elif "listening:" in line:
                at = _stamp(line)
                if not self.segments:
                    self.segments.append((self.from_s, at))
                elif left_at is not None:
                    day_s, began = self.segments[-1]
                    self.segments.append((day_s + (left_at - began), at))
                    left_at = None
                self.listening.set()
        self.log.flush()

    def wait(self) -> int:
        """Reaps the process with its resource use (CPU time and peak RSS, its children's
        included: the typing tool's forks are part of the daemon's cost)."""
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = self.code = os.waitstatus_to_exitcode(status)
        self.rusage = usage
        self._reader.join(10)
        self.log.close()
        return self.code

    @property
    def err(self) -> str:
        return "".join(self.lines)


def control(sock: Path, command: str) -> dict:
    """The same request `swictation toggle` sends, from this process (a new interpreter per
    toggle would start too late to toggle 0.25 s after a sentence)."""
    from swictation.adapters.control_socket import request

    return request(sock, {"cmd": command})


def status(sock: Path) -> dict | None:
    from swictation.adapters.control_socket import ControlError

    try:
        reply = control(sock, "status")
    except ControlError:
        return None
    return reply if reply.get("ok") else None


# -- the run ----------------------------------------------------------------------------------


@attrs.define
class Run:
    day: Day
    work: Path
    sock: Path
    typed: Path
    outage: Path
    env: dict[str, str]
    daemons: list[Daemon] = attrs.Factory(list)
    last_status: dict[int, dict] = attrs.Factory(dict)
    notes: list[str] = attrs.Factory(list)
    polled: float = 0.0

    @property
    def segments(self) -> list[tuple[float, float]]:
        """(day second, wall time) at each start of capture, of every process."""
        return [segment for daemon in self.daemons for segment in daemon.segments]

    def wall(self, day_s: float) -> float:
        from_s, at = self.segments[-1]
        return at + (day_s - from_s)

    def start(self, from_s: float, until_s: float | None, extra: list[str]) -> Daemon:
        import numpy as np
        import soundfile

        n = len(self.daemons)
        audio = self.work / f"part{n}.wav"
        samples = self.day.samples[
            int(from_s * RATE) : None if until_s is None else int(until_s * RATE)
        ]  # type: ignore[index]
        if until_s is not None:  # the rest is never heard: this process is killed first
            samples = np.concatenate([samples, np.zeros(60 * RATE, np.float32)])
        soundfile.write(audio, samples, RATE)
        trace = write_trace(self.work / f"trace{n}.csv", self.day, from_s)
        args = [
            "--audio-file", str(audio), "--realtime", "--probe", "trace", "--trace", str(trace),
            "--output", "wtype", "--socket", str(self.sock),
            "--spool-dir", str(self.work / "spool"), "--events", str(self.work / "events.jsonl"),
            "--report-interval", "60", *extra,
        ]  # fmt: skip
        daemon = Daemon(args, self.env, self.work / f"daemon{n}.log", from_s)
        self.daemons.append(daemon)
        if not daemon.listening.wait(300):
            raise RuntimeError(f"daemon {n} never listened:\n{daemon.err[-3000:]}")
        return daemon

    def sleep_until(self, wall: float, daemon: Daemon) -> bool:
        """False when the daemon ended first."""
        while True:
            left = wall - time.time()
            if left <= 0:
                return True
            try:
                daemon.process.wait(min(left, 5.0))
                return False
            except subprocess.TimeoutExpired:
                self.poll(daemon)

    def poll(self, daemon: Daemon) -> None:
        now = time.monotonic()
        if now - self.polled < 20:
            return
        self.polled = now
        seen = status(self.sock)
        if seen is not None:
            self.last_status[len(self.daemons) - 1] = seen

    def act(self, what: str, daemon: Daemon) -> None:
        if what == "off":  # timed to the sentence: from here, at once
            reply = control(self.sock, "toggle")
            if reply.get("listening") is not False:
                self.notes.append(f"toggle off: the daemon answered {reply}")
        elif what == "on":  # as a user's key binding does
            done = subprocess.run(
                [str(BIN / "swictation"), "toggle", "--socket", str(self.sock)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if done.returncode != 0 or done.stdout.strip() != "listening":
                self.notes.append(f"swictation toggle: {done.stdout.strip()} {done.stderr.strip()}")
        elif what == "outage":
            self.outage.write_text("")
        elif what == "back":
            self.outage.unlink(missing_ok=True)
        elif what == "kill":
            self.last_status[len(self.daemons) - 1] = status(self.sock) or {}
            daemon.process.send_signal(signal.SIGKILL)


def live(run: Run) -> None:
    day = run.day
    storm = ["--inject-fault", "stt:oom:4"]
    daemon = run.start(0.0, day.kill_s, [])
    pending = list(day.actions)
    segment_end: float | None = None
    while True:
        killed = False
        while pending:
            at, what = pending[0]
            if not run.sleep_until(run.wall(at), daemon):
                break  # it ended on its own (a memory SHUTDOWN without a CPU mode)
            pending.pop(0)
            run.act(what, daemon)
            if what == "kill":
                killed = True
                break
        if killed:
            daemon.wait()
            daemon = run.start(day.kill_s, None, storm)
            continue
        code = daemon.wait()
        if code == 3:  # as systemd's Restart=on-failure would: start it again
            from_s, at = run.segments[-1]
            resume = from_s + (time.time() - at)
            run.notes.append(f"exit 3 at day {resume:.0f} s; restarted")
            if resume < day.duration_s - 5:
                daemon = run.start(resume, None, [])
                continue
        segment_end = code
        break
    run.notes.append(f"last exit status {segment_end}")


# -- the figures -------------------------------------------------------------------------------


def _matches(said: Said, heard: list[str]) -> bool:
    expected = words(said.clip.text)
    if said.kind == "cut":  # its beginning, up to where it was cut
        return bool(heard) and heard[:2] == expected[:2] and len(heard) < len(expected)
    return error_rate(expected, heard) <= 0.35


def _align(typed: list[tuple[float, list[str]]], said: list[Said], wall_of) -> dict[int, int]:
    """The longest in-order matching of typed lines to sentences (a line matches a sentence
    of its words that was said before it was typed): {line index: sentence index}."""
    n, m = len(typed), len(said)

    def fits(i: int, j: int) -> bool:
        at, heard = typed[i]
        return wall_of(said[j].end) <= at + 1.0 and _matches(said[j], heard)

    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = max(best[i + 1][j], best[i][j + 1])
            if fits(i, j):
                best[i][j] = max(best[i][j], best[i + 1][j + 1] + 1)
    pairs: dict[int, int] = {}
    i = j = 0
    while i < n and j < m:
        if fits(i, j) and best[i][j] == best[i + 1][j + 1] + 1:
            pairs[i] = j
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def typed_utterances(path: Path) -> list[tuple[float, str]]:
    """The stand-in typing tool's calls joined into utterances: each ends with the space typed
    after it; words typed early (before the pause was confirmed) are calls of their own. The
    time is when the utterance's last word was typed."""
    typed: list[tuple[float, str]] = []
    if not path.exists():
        return typed
    text, at = "", 0.0
    for line in path.read_text().splitlines():
        stamp, _, piece = line.partition("\t")
        if any(ch.isalnum() for ch in piece):
            at = float(stamp)
        text += piece
        if text.endswith(" "):
            if text.strip():
                typed.append((at, text.strip()))
            text = ""
    if text.strip():
        typed.append((at, text.strip()))
    return typed


def score(run: Run) -> dict[str, object]:
    """Typed lines against the sentences said while listening, aligned in order (the longest
    in-order matching). A line left over is a duplicate when its sentence was typed already,
    out of order when its sentence was not, typed while off when it was said while off, and
    unrecognised otherwise; a sentence left over is missing."""
    day = run.day
    typed = typed_utterances(run.typed)

    def wall_of(day_s: float) -> float:
        chosen = run.segments[0]
        for segment in run.segments:
            if segment[0] <= day_s:
                chosen = segment
        return chosen[1] + (day_s - chosen[0])

    heard = [(at, words(text)) for at, text in typed]
    expected = [s for s in day.said if s.kind != "off"]
    pairs = _align(heard, expected, wall_of)
    typed_at = {expected[j].index: typed[i][0] for i, j in pairs.items()}
    duplicated: list[str] = []
    out_of_order = 0
    while_off = 0
    unrecognised: list[str] = []
    for i, (at, text) in enumerate(typed):
        if i in pairs:
            continue
        candidates = [
            s for s in day.said if wall_of(s.end) <= at + 1.0 and _matches(s, heard[i][1])
        ]
        late = [s for s in candidates if s.kind != "off" and s.index not in typed_at]
        if late:
            out_of_order += 1
            typed_at[late[0].index] = at
        elif any(s.kind != "off" for s in candidates):
            duplicated.append(text)
        elif candidates:
            while_off += 1
        else:
            unrecognised.append(text)
    missing = [s for s in expected if s.index not in typed_at]
    # A line no sentence matches, typed within 30 s of a missing one's end and about as long
    # (a fragment is not): that sentence was heard and misrecognised, not lost.
    misheard: list[Said] = []
    for at, text in typed:
        if text not in unrecognised:
            continue
        size = len(words(text))
        near = [
            s
            for s in missing
            if 0 <= at - wall_of(s.end) <= 30
            and size >= 0.75 * len(words(s.clip.text))
            and s not in misheard
        ]
        if near:
            misheard.append(near[-1])
    missing = [s for s in missing if s not in misheard]
    outage = [t for t, what in day.actions if what in ("outage", "back")]
    latencies = [at - wall_of(s.end) for s in expected if (at := typed_at.get(s.index)) is not None]
    waited = [
        at - wall_of(s.end)
        for s in expected
        if (at := typed_at.get(s.index)) is not None
        and not (len(outage) == 2 and outage[0] <= s.end <= outage[1] + 5.0)
    ]
    cut_words = sum(len(heard[i][1]) for i, j in pairs.items() if expected[j].kind == "cut")
    return {
        "sentences": len(expected),
        "expected_words": sum(len(words(s.clip.text)) for s in expected if s.kind == "live")
        + cut_words,
        "typed_words": sum(len(h) for _, h in heard),
        "duplicated_words": sum(len(words(t)) for t in duplicated),
        "missing_words": sum(len(words(s.clip.text)) for s in missing),
        "missing": [f"{s.clip.text} (day {s.start:.0f} s)" for s in missing],
        "extra": [f"{t} (duplicate)" for t in duplicated]
        + [f"{t} (unrecognised)" for t in unrecognised],
        "unrecognised_words": sum(len(words(t)) for t in unrecognised),
        "misheard": len(misheard),
        "typed_while_off": while_off,
        "order_violations": out_of_order,
        "latencies": latencies,
        "latencies_typing": waited,
    }


def figures(run: Run, result: dict[str, object], wall_s: float) -> list[tuple[str, str]]:
    speech_s = sum(s.clip.duration_s for s in run.day.said if s.kind != "off")
    cpu = sum(d.rusage.ru_utime + d.rusage.ru_stime for d in run.daemons if d.rusage)  # type: ignore[attr-defined]
    peak = max((d.rusage.ru_maxrss for d in run.daemons if d.rusage), default=0) / 1024  # type: ignore[attr-defined]
    # Each process writes its count in its final report (a re-executed one too); a killed
    # one writes none: its last status stands in (taken just before the kill).
    finals = [e for e in _events(run) if e.get("type") == "report" and e.get("final")]
    spool_bytes = sum(int(e.get("spool_written_bytes", 0) or 0) for e in finals)
    for n, daemon in enumerate(run.daemons):
        if daemon.code == -signal.SIGKILL:
            spool_bytes += int(run.last_status.get(n, {}).get("spool_written_bytes", 0) or 0)
    levels = _level_changes(run)

    def q(values: object) -> str:
        xs = sorted(values)  # type: ignore[call-overload]
        if not xs:
            return "n/a"
        at = [xs[min(len(xs) - 1, int(p * len(xs)))] for p in (0.5, 0.95)]
        return f"{at[0]:.2f} s / {at[1]:.2f} s"

    worker_restarts = _worker_restarts(run)
    rows = [
        ("recording", f"{run.day.duration_s / 60:.1f} min, {speech_s / 60:.1f} min of speech, "
                      f"{len(run.day.said)} sentences"),
        ("wall time", f"{wall_s / 60:.1f} min"),
        ("words expected", str(result["expected_words"])),
        ("words typed", str(result["typed_words"])),
        ("words duplicated", str(result["duplicated_words"])),
        ("words missing", str(result["missing_words"])),
        ("typed while off", str(result["typed_while_off"])),
        ("order violations", str(result["order_violations"])),
        ("latency p50 / p95", q(result["latencies"])),
        ("  outside the outage", q(result["latencies_typing"])),
        ("misrecognised", f"{result['misheard']} sentences (typed, matching no sentence: "
                          f"{result['unrecognised_words']} words)"),
        ("CPU time (daemons)", f"{cpu:.0f} s ({cpu / wall_s * 100:.1f} % of one core)"),
        ("peak RSS", f"{peak:.0f} MiB"),
        ("spool written", f"{spool_bytes / 2**20 / (speech_s / 60):.2f} MiB per minute of speech"),
        ("daemon starts", f"{len(run.daemons)} ({len(run.daemons) - 1} restarts; "
                          f"exit statuses {[d.code for d in run.daemons]})"),
        ("re-executions (CPU mode and back)", str(sum(len(d.reexecs) for d in run.daemons))),
        ("worker restarts", str(worker_restarts)),
        ("guard transitions", f"{len(levels)} ({', '.join(levels)})"),
    ]  # fmt: skip
    return rows


def _events(run: Run) -> list[dict]:
    path = run.work / "events.jsonl"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by the SIGKILL
    return out


def _level_changes(run: Run) -> list[str]:
    return [f"{e.get('from', '?')}->{e['level']}"
            for e in _events(run) if e.get("type") == "level"]  # fmt: skip


def _worker_restarts(run: Run) -> int:
    total = 0
    for e in _events(run):
        if e.get("type") == "report" and e.get("final"):
            total += sum(int(w.get("restarts", 0)) for w in e.get("workers", {}).values())
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the day")
    parser.add_argument("--keep", help="keep the run's files (logs, trace, typed text) here")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="swictation-day-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):  # an earlier run's spool and typed text would be counted
        print(f"day_bench: error: {work}: not empty; give a new directory", file=sys.stderr)
        return 2
    runtime = work / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    typed, outage = typing_stand_in(work)
    env = {
        **os.environ,
        "PATH": f"{work / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "XDG_STATE_HOME": str(work / "state"),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(work / "config"),
    }
    day = build_day(args.minutes)
    run = Run(day, work, runtime / "ctl" / "swictation.sock", typed, outage, env)
    began = time.time()
    try:
        live(run)
    finally:
        for daemon in run.daemons:
            if daemon.process.poll() is None:
                daemon.process.kill()
    wall_s = time.time() - began
    result = score(run)
    rows = figures(run, result, wall_s)
    width = max(len(k) for k, _ in rows)
    print(f"day in the life ({work})\n{'-' * (width + 40)}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for note in run.notes:
        print(f"note: {note}")
    for text in result["missing"]:  # type: ignore[attr-defined]
        print(f"missing: {text}")
    for text in result["extra"]:  # type: ignore[attr-defined]
        print(f"typed but not matched: {text}")
    clean = not (result["missing_words"] or result["duplicated_words"] or result["order_violations"]
                 or result["typed_while_off"])  # fmt: skip
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
