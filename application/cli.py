"""Command-line entrypoints: `swictation` (replay, record, control) and `swictationd`."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence

from application.replay import ReplayOptions, replay_main

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _logging(verbose: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)


def _columns(text: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected column names separated by commas")
    return names


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="swictation", description="Swictation: dictation with a GPU guard.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rp = sub.add_parser(
        "replay",
        help="replay a recorded VRAM trace through the guard",
        description="Simulate the guard on a recorded trace: what would it have done, and "
        "would the card have run out?",
    )
    rp.add_argument("trace", help="nvidia-smi CSV or the project's JSONL")
    rp.add_argument("--format", choices=("auto", "nvidia-smi", "jsonl"), default="auto")
    rp.add_argument("--gpu", help="which GPU of a multi-GPU file (index; default: the first)")
    rp.add_argument("--total-mib", type=_positive, help="card size for files without a total")
    rp.add_argument(
        "--columns", type=_columns, help="names of a headerless file's columns, in order"
    )
    rp.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="a model resident at the start, e.g. stt=3600MiB (repeatable)",
    )
    rp.add_argument("--policy", choices=("default", "legacy", "both"), default="default")
    rp.add_argument("--config", help="TOML file with [thresholds] and [guard]")
    rp.add_argument("--events", help="write level changes and actions as JSON lines")
    rp.add_argument("--plot", help="draw usage, levels and actions to a PNG")
    rp.add_argument("--json", action="store_true", help="print one JSON object")

    rec = sub.add_parser(
        "record",
        help="record the live GPU's memory into a trace for replay",
        description="Sample the device until Ctrl-C into the project's JSONL trace format.",
    )
    rec.add_argument("--interval", type=_positive, default=0.5, help="seconds between samples")
    rec.add_argument("--out", default="swictation-trace.jsonl", help="the JSONL trace to write")
    rec.add_argument("--csv", help="also write nvidia-smi-compatible CSV here")
    rec.add_argument("--gpu", default="0", help="GPU index or UUID (default 0)")
    rec.add_argument(
        "--probe",
        choices=("nvml", "torch", "host"),
        default="nvml",
        help="nvml (default), torch, or host to record system RAM instead",
    )
    rec.add_argument("--duration", type=_positive, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    if args.command == "replay":
        options = ReplayOptions(
            trace=args.trace,
            format=args.format,
            gpu=args.gpu,
            total_mib=args.total_mib,
            columns=args.columns,
            models=tuple(args.model),
            policy=args.policy,
            config=args.config,
            events=args.events,
            plot=args.plot,
            json=args.json,
        )
        return replay_main(options, sys.stdout, sys.stderr)
    if args.command == "record":
        return record_main(args)
    return EXIT_USAGE


def record_main(args: argparse.Namespace) -> int:
    from application.containers import make_container
    from application.record import RecordError, RecordOptions, record, stop_on_signals

    if args.probe == "torch" and not str(args.gpu).isdigit():
        print("swictation record: error: --probe torch needs a GPU index", file=sys.stderr)
        return EXIT_USAGE
    container = make_container(probe=args.probe, gpu=str(args.gpu))
    stop = threading.Event()
    stop_on_signals(stop)
    options = RecordOptions(args.out, args.interval, args.csv, args.duration, str(args.gpu))
    try:
        count = record(container.probe(), container.clock(), options, stop=stop, err=sys.stderr)
    except RecordError as error:
        hint = " (try --probe host to record system RAM)" if args.probe != "host" else ""
        print(f"swictation record: error: {error}{hint}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"swictation record: error: {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"swictation record: {count} samples written to {args.out}", file=sys.stderr)
    return 0


def daemon_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="swictationd", description="The Swictation dictation daemon.")
    parser.parse_args(argv)
    return 0


def run() -> None:
    sys.exit(main())


def run_daemon() -> None:
    sys.exit(daemon_main())
