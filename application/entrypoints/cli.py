"""Command-line entrypoints: `swictation` (replay, record, control) and `swictationd`."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from swictation.application.config import (
    DaemonSection,
    Device,
    OutputKind,
    PolicyName,
    ProbeKind,
    SttEngine,
    choices,
)
from swictation.application.entrypoints.replay import ReplayOptions, replay_main

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


def _version() -> str:
    try:
        return f"%(prog)s {importlib.metadata.version('swictation')}"
    except importlib.metadata.PackageNotFoundError:
        return "%(prog)s (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="swictation", description="Swictation: dictation with a GPU guard.")
    parser.add_argument("--version", action="version", version=_version())
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
    rp.add_argument("--total-mib", help="card size for files without a total, e.g. 8192 or 24GiB")
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
    rp.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="KIND=SIZE",
        help="a co-tenant (ollama, comfyui, ...) whose SIZE, part of the trace's usage, it "
        "frees when the guard asks, e.g. ollama=6GiB (repeatable)",
    )
    rp.add_argument(
        "--policy",
        choices=(*choices(PolicyName), "both"),
        help="default: guard.policy from the configuration",
    )
    rp.add_argument("--config", help="TOML file with [thresholds] and [guard]")
    rp.add_argument("--events", help="write level changes and actions as JSON lines")
    rp.add_argument("--plot", help="draw usage, levels and actions to a PNG")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.add_argument(
        "--advise",
        action="store_true",
        help="try the presets and a small grid of settings; print the best few",
    )

    rec = sub.add_parser(
        "record",
        help="record the live GPU's memory into a trace for replay",
        description="Sample the device until Ctrl-C into the project's JSONL trace format.",
    )
    rec.add_argument("--interval", type=_positive, default=0.5, help="seconds between samples")
    rec.add_argument("--out", default="swictation-trace.jsonl", help="the JSONL trace to write")
    rec.add_argument("--csv", help="also write nvidia-smi-compatible CSV here")
    rec.add_argument("--gpu", default=DaemonSection().gpu, help="GPU index or UUID (default 0)")
    rec.add_argument(
        "--probe",
        choices=(ProbeKind.NVML, ProbeKind.TORCH, ProbeKind.HOST),
        default=DaemonSection().probe.value,
        help="nvml (default), torch, or host to record system RAM instead",
    )
    rec.add_argument("--duration", type=_positive, help="stop after this many seconds")

    for name, text in (
        ("toggle", "start or stop listening"),
        ("status", "show the daemon's state"),
        ("stop", "stop listening (the daemon keeps running)"),
    ):
        _control_command(sub, name, text)
    reset = _control_command(
        sub,
        "reset",
        "end a model's CPU fallback now",
        "End a model's CPU fallback after CUDA errors; it returns to the GPU when there is room.",
    )
    reset.add_argument("model", help="the model's name, e.g. stt")
    return parser


def _control_command(
    sub: Any, name: str, text: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A command sent to the running daemon over its control socket."""
    command: argparse.ArgumentParser = sub.add_parser(
        name, help=text, description=description or f"{text[0].upper()}{text[1:]}."
    )
    command.add_argument("--json", action="store_true", help="print the JSON reply")
    command.add_argument("--socket", help="the daemon's control socket")
    return command


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
            tenants=tuple(args.tenant),
            advise=args.advise,
        )
        return replay_main(options, sys.stdout, sys.stderr)
    if args.command == "record":
        return record_main(args)
    if args.command in ("toggle", "status", "stop", "reset"):
        return control_main(args)
    return EXIT_USAGE


def record_main(args: argparse.Namespace) -> int:
    from swictation.application.container import make_container
    from swictation.application.services.record import RecordError, RecordOptions, record

    if args.probe == "torch" and not str(args.gpu).isdigit():
        print("swictation record: error: --probe torch needs a GPU index", file=sys.stderr)
        return EXIT_USAGE
    container = make_container(probe=args.probe, gpu=str(args.gpu), out=args.out, csv=args.csv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C and SIGTERM end the recording cleanly instead of interrupting a write.
        signal.signal(signum, lambda *_: stop.set())
    options = RecordOptions(args.interval, args.duration)
    try:
        count = record(
            container.probe(),
            container.clock(),
            container.trace_writer(),
            options,
            stop=stop,
            err=sys.stderr,
        )
    except RecordError as error:
        hint = " (try --probe host to record system RAM)" if args.probe != "host" else ""
        print(f"swictation record: error: {error}{hint}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"swictation record: error: {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"swictation record: {count} samples written to {args.out}", file=sys.stderr)
    return 0


def build_daemon_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="swictationd",
        description="The Swictation dictation daemon: microphone (or a file) -> VAD -> "
        "speech-to-text -> text, guarded against GPU memory pressure.",
        epilog="Exit status: 0 after a normal stop, 1 when it cannot start, 2 for bad flags "
        'or configuration, 3 after a memory SHUTDOWN with guard.on_shutdown = "exit" '
        "(by default a SHUTDOWN gives up the GPU and dictation goes on on the CPU).",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--config",
        help="TOML configuration (default: $XDG_CONFIG_HOME/swictation/config.toml if it exists)",
    )
    parser.add_argument("--audio-file", help="transcribe this WAV/FLAC/OGG file, then exit")
    parser.add_argument(
        "--realtime", action="store_true", help="with --audio-file: play the file at real-time pace"
    )
    parser.add_argument(
        "--probe",
        choices=choices(ProbeKind),
        help="how the guard reads memory (default nvml)",
    )
    parser.add_argument("--trace", help="with --probe trace: the trace to replay as the GPU")
    parser.add_argument("--gpu", help="GPU index (or UUID for NVML)")
    parser.add_argument("--stt", choices=choices(SttEngine), help="speech-to-text engine")
    parser.add_argument(
        "--stt-model", help="model name or path (.nemo file, or a CTranslate2 Whisper directory)"
    )
    parser.add_argument("--device", choices=choices(Device), help="where models run")
    parser.add_argument(
        "--output",
        choices=choices(OutputKind),
        help="where the text goes (default stdout)",
    )
    parser.add_argument("--output-file", help="with --output file: the file to append to")
    parser.add_argument("--mic", help="microphone by index or (part of) its name")
    parser.add_argument(
        "--events", help="flight recorder: JSON lines of every sample, level, action and utterance"
    )
    parser.add_argument("--socket", help="control socket path")
    parser.add_argument("--spool-dir", help="where unprocessed audio is kept across a stop")
    parser.add_argument("--report-interval", type=_positive, help="seconds between reports")
    parser.add_argument(
        "--inject-fault",
        action="append",
        default=[],
        metavar="MODEL:KIND:N",
        help="rehearsal: the next N inferences of MODEL on the GPU raise a "
        "CUDA error (KIND oom or cuda), e.g. stt:oom:5",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def _cli_sections(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    pairs = {
        ("daemon", "probe"): args.probe,
        ("daemon", "trace"): args.trace,
        ("daemon", "gpu"): args.gpu,
        ("daemon", "events"): args.events,
        ("daemon", "spool_dir"): args.spool_dir,
        ("daemon", "report_interval_s"): args.report_interval,
        ("stt", "engine"): args.stt,
        ("stt", "model"): args.stt_model,
        ("stt", "device"): args.device,
        ("output", "kind"): args.output,
        ("output", "file"): args.output_file,
        ("audio", "device"): args.mic,
        ("control", "socket"): args.socket,
    }
    out: dict[str, dict[str, object]] = {}
    for (section, key), value in pairs.items():
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def daemon_main(argv: Sequence[str] | None = None) -> int:
    from swictation.application.config import ConfigError, resolve_settings
    from swictation.application.services.handover import take_handover

    # From the process this one replaced (it re-executed itself), if any; never passed on.
    handover = take_handover(os.environ)
    args = build_daemon_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("transitions", "nemo_logger", "faster_whisper", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = resolve_settings(
            _cli_sections(args),
            args.config,
            os.environ,
            args.audio_file,
            args.realtime,
            tuple(args.inject_fault),
        )
    except ConfigError as error:
        print(f"swictationd: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from swictation.application.container import daemon_container

    if handover is not None:
        _say_resumed(handover)
    return serve(daemon_container(settings, handover), reexec=_reexec)


def _say_resumed(handover: Any) -> None:
    from swictation.domain.gpu_mode import GpuMode

    tenure = handover.tenure
    where = "on the CPU (the GPU given up)" if tenure.mode is GpuMode.ON_CPU else "on the GPU"
    logging.getLogger("swictation").warning(
        "re-executed: running %s%s", where, f": {tenure.reason}" if tenure.reason else ""
    )


def serve(container: Any, reexec: Callable[[Any], None] | None = None) -> int:
    """Builds the daemon from `container`, runs it with its signal handlers (restored after,
    so tests can serve in-process) and stops the container's resources; the exit status.
    When the daemon asks to re-execute itself, `reexec(handover)` is called last (it does
    not return); without it, the run just ends."""
    from swictation.adapters.audio_file import AudioFileError
    from swictation.adapters.traces import TraceError
    from swictation.application.container import shutdown
    from swictation.application.services.daemon import EXIT_FAILURE

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    handlers = {signum: signal.getsignal(signum) for signum in signals}
    handover = None
    try:
        try:
            container.control_lock()  # one daemon per socket, decided before any model loads
            container.trace_file()  # a bad --trace too
            daemon = container.daemon()  # loads the models
            container.control()  # the control socket, where there is one
        except Exception as error:  # a start-up failure is one line, never a traceback
            cause = error.__cause__ or error
            bad_input = isinstance(cause, TraceError | AudioFileError)
            logging.getLogger("swictation").debug("start-up failed", exc_info=True)
            print(f"swictationd: error: {_plain(cause)}", file=sys.stderr)
            return EXIT_USAGE if bad_input else EXIT_FAILURE
        daemon.install_signal_handlers()
        try:
            code = int(daemon.run())
        except Exception as error:
            logging.getLogger("swictation").exception("the daemon failed")
            print(f"swictationd: error: {_plain(error)}", file=sys.stderr)
            return EXIT_FAILURE
        if reexec is not None and daemon.reexec is not None:
            handover = _keep_lock(container, daemon.reexec)
    finally:
        shutdown(container)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if handover is not None and reexec is not None:
        reexec(handover)
    return code


def _keep_lock(container: Any, handover: Any) -> Any:
    """The control socket's lock goes with the handover, so that no second daemon can take
    the socket while this one re-executes itself."""
    import attrs

    lock = container.control_lock()
    fd = None if lock is None else lock.hand_over()
    return attrs.evolve(handover, lock_fd=fd)


def _reexec(handover: Any) -> None:
    """SIGHUP, giving up the GPU, taking it back: the same program with the same arguments
    (the configuration read anew, the control socket path the same), handed what it needs
    in its environment; the queue is in the spool."""
    from swictation.application.services.daemon import EXIT_FAILURE
    from swictation.application.services.handover import ENV

    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    logging.getLogger("swictation").warning("re-executing: %s", " ".join(argv))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[ENV] = handover.encode()
    try:
        os.execv(sys.executable, [sys.executable, *argv[1:]])
    except OSError as error:  # the queue is in the spool: a supervisor's restart loses nothing
        print(f"swictationd: error: cannot re-execute {sys.executable}: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)


def _plain(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first if first else type(error).__name__


def control_main(args: argparse.Namespace) -> int:
    import json

    from swictation.adapters.control_socket import ControlError, default_socket_path, request
    from swictation.application.entrypoints.presenters import status_text

    path = args.socket or str(default_socket_path())
    try:
        message = {"cmd": args.command}
        if args.command == "reset":
            message["model"] = args.model
        reply = request(path, message)
    except ControlError as error:
        if args.command == "status":  # "not running" is a status: stdout, for status bars
            gone = {"ok": False, "running": False, "error": str(error)}
            print(json.dumps(gone) if args.json else f"swictation status: {error}")
            return 1
        print(f"swictation {args.command}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply))
    elif not reply.get("ok"):
        print(f"swictation {args.command}: error: {reply.get('error')}", file=sys.stderr)
    elif args.command == "status":
        print(status_text(reply))
    elif args.command == "reset":
        print(f"{args.model}: CPU fallback ended; it returns to the GPU when there is room")
    else:
        print("listening" if reply.get("listening") else "not listening")
    return 0 if reply.get("ok") else 1


def _guarded(entry: Callable[[], int]) -> None:
    """Exit with the entrypoint's status; Ctrl-C before handlers exist, or a closed pipe
    (`| head`), end quietly instead of with a traceback."""
    try:
        code = entry()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)


def run() -> None:
    _guarded(main)


def run_daemon() -> None:
    _guarded(daemon_main)
