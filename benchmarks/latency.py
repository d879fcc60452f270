#!/usr/bin/env python3
"""From the last word to the text, measured from outside the daemon (issue 11).

The project's recordings (examples/audio and tests/fixtures/audio, with the held-out
examples/audio/heldout.wav and hesitant.wav, whose sentences pause in the middle, that
nothing was tuned on; scripts/make_recordings.sh makes them all) are joined with pauses into one
session and played at real-time pace through `swictationd --audio-file ... --realtime
--output stdout`. The end of each stretch of speech comes from the audio's own energy
(10 ms frames above -40 dBFS), placed in time from the daemon's `listening` log line; each
line of text is stamped by the wall clock as it arrives on stdout: when its last word came
(words typed early, vad.early_words, arrive before the end of their line) and when the line
ended. Printed per setting: p50/p95 latency (to the last word, and to the end of the line),
the daemon's CPU seconds per minute of speech (/proc at `listening`, the
child's resource usage at its exit), the speculative transcriptions thrown away (its flight
recorder), the word error rate against the known texts (all, and held-out alone) and the
lines that end in the middle of a sentence.

    python benchmarks/latency.py                       # the defaults and three other settings
    python benchmarks/latency.py --set vad.min_silence_s=0.6 --set vad.speculate_after_s=0
"""

from __future__ import annotations

import argparse
import codecs
import difflib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.wer import edit_distance

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "examples" / "audio"
FIXTURES = ROOT / "tests" / "fixtures" / "audio"
TICKS = os.sysconf("SC_CLK_TCK")
RATE = 16_000
FRAME = 160  # 10 ms
VOICED_DBFS = -40.0
GAP_S = 2.0  # silence between two recordings of the session


@attrs.frozen
class Item:
    path: Path
    text: str
    held_out: bool = False


ITEMS = (
    Item(
        AUDIO / "dictation.wav",
        "Good morning. Please open a new document. "
        "The meeting with the design team starts at ten o'clock. "
        "Remember to send the report to Maria before lunch. "
        "The weather today is cold and windy with some rain. "
        "Thank you. That is all for now.",
    ),
    Item(FIXTURES / "pair.wav", "Open the window. Close the door behind you."),
    Item(FIXTURES / "voice-us.wav", "The weather today is cold and windy with some rain."),
    Item(FIXTURES / "voice-gb.wav", "Please send the report to the team before lunch."),
    Item(FIXTURES / "voice-female.wav", "Remember to buy milk, bread and coffee on the way home."),
    Item(FIXTURES / "stereo-48k.wav", "Good morning. Please open a new document."),
    Item(
        AUDIO / "heldout.wav",
        "Please book a table for dinner on Friday evening. "
        "The train to the airport leaves every hour, so we should not be late. "
        "Can you check whether the printer on the second floor is working again? "
        "I think the new version of the app is much faster than the old one. "
        "Call me back when you have finished reading the contract.",
        held_out=True,
    ),
    Item(
        AUDIO / "hesitant.wav",
        "I would like to order a large pizza with mushrooms. "
        "When you get home please feed the cat. "
        "The package should arrive sometime next week. "
        "Let me know if you need anything else.",
        held_out=True,
    ),
)


def words(text: str) -> list[str]:
    """Lower case, punctuation dropped (an apostrophe inside a word stays)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def sentence_ends(text: str) -> list[bool]:
    """For each word of `text`: whether a sentence ends with it."""
    ends: list[bool] = []
    for token in text.split():
        count = len(words(token))
        if count:
            ends.extend([False] * (count - 1) + [token.rstrip("\"')").endswith((".", "?", "!"))])
    return ends


@attrs.frozen
class Session:
    """The recordings joined with pauses; where each lies, and its voiced stretches."""

    path: Path
    spans: tuple[tuple[float, float], ...]  # each item's [start, end) in the session, s
    voiced: tuple[tuple[float, float], ...]  # stretches of voiced energy, s
    duration_s: float

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.voiced)


def voiced_stretches(samples: Any, min_gap_s: float = 0.1) -> list[tuple[float, float]]:
    """Stretches where 10 ms frames are above -40 dBFS; gaps shorter than `min_gap_s` join."""
    import numpy as np

    count = len(samples) // FRAME
    rms = np.sqrt((samples[: count * FRAME].reshape(count, FRAME) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 10 ** (VOICED_DBFS / 20))
    out: list[tuple[float, float]] = []
    for frame in loud:
        start, end = frame * FRAME / RATE, (frame + 1) * FRAME / RATE
        if out and start - out[-1][1] < min_gap_s:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def build_session(folder: Path, items: tuple[Item, ...] = ITEMS) -> Session:
    import numpy as np

    from swictation.adapters.audio_file import load_mono_16k, save_wav

    gap = np.zeros(int(GAP_S * RATE), np.float32)
    pieces: list[Any] = [gap[: RATE // 2]]
    spans = []
    at = len(pieces[0])
    for item in items:
        samples = load_mono_16k(item.path)
        spans.append((at / RATE, (at + len(samples)) / RATE))
        pieces += [samples, gap]
        at += len(samples) + len(gap)
    joined = np.concatenate(pieces)
    path = folder / "session.wav"
    save_wav(path, joined)
    return Session(path, tuple(spans), tuple(voiced_stretches(joined)), len(joined) / RATE)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@attrs.frozen
class Seen:
    """A line of stdout: when its last word arrived and when the line ended (monotonic)."""

    words_at: float
    ended_at: float
    text: str


class LineClock:
    """Stamps text read from a pipe in chunks: a line's words may come before its end."""

    def __init__(self) -> None:
        self.lines: list[Seen] = []
        self._text = ""
        self._words_at: float | None = None

    def feed(self, chunk: str, at: float) -> None:
        *done, rest = chunk.split("\n")
        for part in done:
            self._add(part, at)
            self.lines.append(Seen(self._words_at or at, at, self._text.strip()))
            self._text, self._words_at = "", None
        self._add(rest, at)

    def _add(self, part: str, at: float) -> None:
        self._text += part
        if any(ch.isalnum() for ch in part):
            self._words_at = at


@attrs.frozen
class Run:
    listening: float  # monotonic time of the `listening` log line
    lines: tuple[Seen, ...]
    cpu_after_listening_s: float
    events: tuple[dict[str, Any], ...]
    exit_status: int


def play(session: Session, settings: dict[str, str], folder: Path) -> Run:
    """swictationd on the session, paced at real time; its stdout lines stamped."""
    daemon = Path(sys.executable).parent / "swictationd"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SWICTATION_")},
        "XDG_CONFIG_HOME": str(folder / "config"),
        "XDG_STATE_HOME": str(folder / "state"),
        "XDG_RUNTIME_DIR": str(folder),
        "SWICTATION_STT_DEVICE": "cpu",  # unless --set stt.device=cuda
    }
    for key, value in settings.items():
        section, name = key.split(".", 1)
        env[f"SWICTATION_{section.upper()}_{name.upper()}"] = value
    events = folder / "events.jsonl"
    process = subprocess.Popen(
        [str(daemon), "--audio-file", str(session.path), "--realtime", "--output", "stdout",
         "--probe", "none", "--stt", "whisper", "--events", str(events),
         "--spool-dir", str(folder / "spool"), "--socket", str(folder / "control.sock")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    clock = LineClock()
    log: list[str] = []
    heard = threading.Event()
    marks: dict[str, float] = {}

    def out() -> None:
        fd = process.stdout.fileno()  # type: ignore[union-attr]
        text = codecs.getincrementaldecoder("utf-8")("replace")  # a character cut between reads
        while chunk := os.read(fd, 65536):  # as it comes: words typed early have no newline
            clock.feed(text.decode(chunk), time.monotonic())

    def err() -> None:
        for raw in process.stderr:  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace")
            if not heard.is_set() and "listening" in line:
                marks["listening"] = time.monotonic()
                try:
                    marks["cpu"] = cpu_seconds(process.pid)
                except OSError:
                    marks["cpu"] = 0.0
                heard.set()
            log.append(line)

    readers = [threading.Thread(target=out), threading.Thread(target=err)]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    if not heard.is_set() or process.returncode != 0:
        raise RuntimeError(
            f"swictationd exited {process.returncode}:\n" + "".join(log[-15:]).rstrip()
        )
    recorded = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
    return Run(
        marks["listening"],
        tuple(clock.lines),
        usage.ru_utime + usage.ru_stime - marks["cpu"],
        tuple(recorded),
        process.returncode,
    )


@attrs.frozen
class Figures:
    lines: int
    p50_s: float
    p95_s: float
    worst_s: float
    line_end_p50_s: float  # to the end of the line (its closing punctuation)
    line_end_p95_s: float
    cpu_per_speech_min_s: float
    speculations: int
    wasted: int
    wasted_stt_s: float
    wer: float
    held_out_wer: float
    held_out_errors: int
    mid_sentence: int
    latencies: tuple[float, ...]
    shown: tuple[str, ...] = ()


def q95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def figures(session: Session, run: Run, items: tuple[Item, ...] = ITEMS) -> Figures:
    ref: list[str] = []
    ref_item: list[int] = []
    ref_end: list[bool] = []
    for index, item in enumerate(items):
        ref += words(item.text)
        ref_end += sentence_ends(item.text)
        ref_item += [index] * len(words(item.text))
    hyp: list[str] = []
    hyp_line: list[int] = []
    for number, seen in enumerate(run.lines):
        hyp += words(seen.text)
        hyp_line += [number] * len(words(seen.text))
    # Which known word each heard word is: the line's last one says where the line ended.
    matcher = difflib.SequenceMatcher(a=hyp, b=ref, autojunk=False)
    last_ref: dict[int, int] = {}
    first_ref: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            last_ref[hyp_line[block.a + k]] = block.b + k
            first_ref.setdefault(hyp_line[block.a + k], block.b + k)
    latencies: list[float] = []
    line_ends: list[float] = []
    shown: list[str] = []
    mid = 0
    by_item: dict[int, list[str]] = {i: [] for i in range(len(items))}
    for number, seen in enumerate(run.lines):
        arrived, text = seen.words_at, seen.text
        if number not in last_ref:
            continue  # nothing of it was said: counted by the word error rate
        at = last_ref[number]
        item = ref_item[at]
        by_item[item] += words(text)
        # Cut in the middle of a sentence: the next line goes on with the same sentence (a
        # misheard last word does not count).
        following = first_ref.get(number + 1)
        if (
            not ref_end[at]
            and following is not None
            and ref_item[following] == item
            and not any(ref_end[at:following])
        ):
            mid += 1
        begin, end = session.spans[item]
        heard = arrived - run.listening  # in the session's time
        ends = [e for s, e in session.voiced if begin <= s and e <= min(end, heard)]
        if ends:
            latencies.append(heard - ends[-1])
            line_ends.append(seen.ended_at - run.listening - ends[-1])
        shown.append(
            f"{latencies[-1] if ends else float('nan'):5.2f} s "
            f"(line {line_ends[-1] if ends else float('nan'):4.2f} s)  {text}"
        )
    errors = sum(edit_distance(words(it.text), by_item[i]) for i, it in enumerate(items))
    unplaced = sum(len(words(s.text)) for n, s in enumerate(run.lines) if n not in last_ref)
    held = [i for i, it in enumerate(items) if it.held_out]
    held_errors = sum(edit_distance(words(items[i].text), by_item[i]) for i in held)
    held_words = sum(len(words(items[i].text)) for i in held)
    speculations = [e for e in run.events if e.get("type") == "speculation"]
    wasted = [e for e in speculations if not e.get("used") and e.get("ran")]
    return Figures(
        lines=len(run.lines),
        p50_s=statistics.median(latencies),
        p95_s=q95(latencies),
        worst_s=max(latencies),
        line_end_p50_s=statistics.median(line_ends),
        line_end_p95_s=q95(line_ends),
        cpu_per_speech_min_s=run.cpu_after_listening_s / (session.speech_s / 60),
        speculations=len(speculations),
        wasted=len(wasted),
        wasted_stt_s=sum(e.get("stt_s", 0.0) for e in wasted),
        wer=(errors + unplaced) / len(ref),
        held_out_wer=held_errors / held_words if held_words else 0.0,
        held_out_errors=held_errors,
        mid_sentence=mid,
        latencies=tuple(latencies),
        shown=tuple(shown),
    )


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def measure(settings: dict[str, str], session: Session | None = None) -> Figures:
    with tempfile.TemporaryDirectory(prefix="swictation-latency-") as tmp:
        folder = Path(tmp)
        session = session or build_session(folder)
        return figures(session, play(session, settings, folder / "run"))


def rows(label: str, f: Figures, load: str) -> list[tuple[str, str]]:
    return [
        (
            f"{label}: last voiced sample -> text, p50 / p95 / worst",
            f"{f.p50_s:.2f} s / {f.p95_s:.2f} s / {f.worst_s:.2f} s ({f.lines} lines, "
            f"load average {load})",
        ),
        (
            f"{label}: last voiced sample -> end of its line, p50 / p95",
            f"{f.line_end_p50_s:.2f} s / {f.line_end_p95_s:.2f} s",
        ),
        (f"{label}: CPU per minute of speech", f"{f.cpu_per_speech_min_s:.1f} s"),
        (
            f"{label}: speculative transcriptions, thrown away",
            f"{f.speculations}, {f.wasted} ({f.wasted_stt_s:.2f} s of STT)",
        ),
        (
            f"{label}: word error rate, all / held-out",
            f"{f.wer:.1%} / {f.held_out_wer:.1%} ({f.held_out_errors} held-out words wrong)",
        ),
        (f"{label}: lines ending mid-sentence", f"{f.mid_sentence}"),
        (
            f"{label}: first line after start vs the rest (p50)",
            f"{f.latencies[0]:.2f} s vs {statistics.median(f.latencies[1:]):.2f} s",
        ),
    ]


SETTINGS = {
    "speculation off": {"vad.speculate_after_s": "0"},
    "defaults": {},
    "early_words=off": {"vad.early_words": "off"},
    "partial_every_s=1.5": {"vad.partial_every_s": "1.5"},
}


def main() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for label, settings in SETTINGS.items():
        load = load_average()
        out += rows(label, measure(settings), load)
    return out


def utterances(items: tuple[Item, ...] = ITEMS) -> list[tuple[int, Any]]:
    """Each recording cut where the daemon would cut it (0.8 s pauses), padded by 0.2 s, with
    the index of the recording it comes from."""
    from swictation.adapters.audio_file import load_mono_16k

    cut = []
    for index, item in enumerate(items):
        samples = load_mono_16k(item.path)
        for start, end in voiced_stretches(samples, min_gap_s=0.8):
            piece = samples[max(0, int((start - 0.2) * RATE)) : int((end + 0.2) * RATE)]
            cut.append((index, piece))
    return cut


def whisper_options() -> list[tuple[str, str]]:
    """Whisper tiny.en's cost per utterance with each faster-whisper option that could cut
    it, on the session's utterances (median of the per-utterance times after one warm pass),
    and how many transcripts differ from the daemon's options. `encoder window N s` calls
    CTranslate2 directly with the features padded to N s instead of 30 s (faster-whisper
    always pads to 30 s; CTranslate2 accepts fewer frames)."""
    import ctranslate2
    import numpy as np
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    from swictation.adapters.whisper_stt import default_whisper_dir

    model = WhisperModel(default_whisper_dir(), device="cpu", compute_type="int8")
    cut = utterances()
    tokenizer = model.hf_tokenizer
    prompt = [tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
    eot = tokenizer.token_to_id("<|endoftext|>")

    def daemon_way(audio: Any, **options: Any) -> str:
        settings = {
            "beam_size": 1,
            "language": "en",
            "vad_filter": False,
            "condition_on_previous_text": False,
            "without_timestamps": True,
            **options,
        }
        segments, _ = model.transcribe(audio, **settings)
        return " ".join(s.text.strip() for s in segments).strip()

    def window(seconds: float) -> Any:
        def run(audio: Any) -> str:
            features = pad_or_trim(model.feature_extractor(audio), int(seconds * 100))
            view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None]))
            result = model.model.generate(view, [prompt], beam_size=1, max_length=224)
            return tokenizer.decode([t for t in result[0].sequences_ids[0] if t < eot]).strip()

        return run

    variants: dict[str, Any] = {
        "the daemon's options (beam 1, no timestamps, no VAD filter, no previous text)": (
            daemon_way
        ),
        "temperature 0 only (no fallback)": lambda a: daemon_way(a, temperature=0.0),
        "beam_size 5": lambda a: daemon_way(a, beam_size=5),
        "chunk_length 10 (faster-whisper still pads to 30 s)": lambda a: daemon_way(
            a, chunk_length=10
        ),
        "encoder window 20 s": window(20),
        "encoder window 10 s": window(10),
        "encoder window: the utterance + 1 s": lambda a: window(len(a) / RATE + 1)(a),
    }
    for _, audio in cut:  # warm
        daemon_way(audio)
    reference: list[str] = []
    out = []
    total = sum(len(words(item.text)) for item in ITEMS)
    for name, run in variants.items():
        times, texts = [], []
        heard: dict[int, list[str]] = {i: [] for i in range(len(ITEMS))}
        for index, audio in cut:
            began = time.perf_counter()
            texts.append(run(audio))
            times.append(time.perf_counter() - began)
            heard[index] += words(texts[-1])
        errors = sum(edit_distance(words(it.text), heard[i]) for i, it in enumerate(ITEMS))
        reference = reference or texts
        differ = sum(a != b for a, b in zip(reference, texts, strict=True))
        out.append(
            (
                name,
                f"{statistics.median(times):.3f} s per utterance, WER {errors / total:.1%}, "
                f"{differ} of {len(cut)} transcripts differ (load average {load_average()})",
            )
        )
    return out


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--label", default="run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--show", action="store_true", help="print each line and its latency")
    parser.add_argument(
        "--whisper-options", action="store_true", help="time faster-whisper's options instead"
    )
    args = parser.parse_args(argv)
    if args.whisper_options:
        for name, value in whisper_options():
            print(f"{name:<80} {value}")
        return 0
    if not args.set:
        for name, value in main():
            print(f"{name:<60} {value}")
        return 0
    settings = {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            parser.error(f"--set {pair}: expected SECTION.KEY=VALUE")
        settings[key] = value
    for _ in range(args.runs):
        load = load_average()
        result = measure(settings)
        if args.show:
            print("\n".join(result.shown))
        for name, value in rows(args.label, result, load):
            print(f"{name:<60} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
