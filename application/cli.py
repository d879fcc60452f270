"""Command-line entrypoints: `swictation` (replay, record, control) and `swictationd`."""

from __future__ import annotations

import argparse
import logging
import sys
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
    return EXIT_USAGE


def daemon_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="swictationd", description="The Swictation dictation daemon.")
    parser.parse_args(argv)
    return 0


def run() -> None:
    sys.exit(main())


def run_daemon() -> None:
    sys.exit(daemon_main())
