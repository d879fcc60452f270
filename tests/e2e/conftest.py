"""Runs the installed command-line programs as a user would."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
BIN = Path(sys.executable).parent


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def run_command(*args: str, timeout: float = 300, **kwargs) -> Result:
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _exit_status(entry, argv: list[str]) -> int:
    """What the program would exit with: its return, or argparse's SystemExit (usage). The
    loggers' levels it sets (replay quiets the guard's live log) are put back after: they
    are the process's, and the next test in this process must not inherit them."""
    manager = logging.Logger.manager
    levels = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        return int(entry(argv))
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def swictation(monkeypatch, capsys):
    """`swictation ARGS` (replay, record, the control commands) run in this process, from
    its own argument parsing to its exit status; `env` is set for the run. Given what only
    a process has (`preexec_fn`, say: a resource limit), it runs as a process of its own."""
    from swictation.application.entrypoints.cli import main

    def run(*args: str, env: dict | None = None, **process) -> Result:
        if process:
            return run_command("swictation", *args, env={**os.environ, **(env or {})}, **process)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = _exit_status(main, list(args))
        printed = capsys.readouterr()
        return Result(code, printed.out, printed.err)

    return run


GiB = 1024.0


def write_csv(path: Path, others, total_mib: float, duration_s: float, step_s: float) -> Path:
    """An nvidia-smi CSV (with units) of a scripted workload: `others(t)` MiB used."""
    lines = ["timestamp, index, memory.used [MiB], memory.total [MiB]"]
    count = round(duration_s / step_s) + 1
    for i in range(count):
        t = i * step_s
        whole = int(t)
        stamp = (
            f"2026/11/01 {10 + whole // 3600:02d}:{whole // 60 % 60:02d}:"
            f"{whole % 60:02d}.{round((t - whole) * 1000):03d}"
        )
        lines.append(f"{stamp}, 0, {others(t):.0f} MiB, {total_mib:.0f} MiB")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def loaded_models():
    """Silero and Whisper tiny.en loaded once, on the CPU, for the daemons served in-process
    (each test's container uses them instead of loading its own)."""
    from swictation.adapters.model_host import RealModelHost
    from swictation.adapters.silero import load_silero
    from swictation.adapters.torch_models import TorchResidency
    from swictation.adapters.whisper_stt import whisper_residency

    host = RealModelHost()
    host.register("vad", TorchResidency(load_silero()))
    host.register("stt", whisper_residency(None, "cpu"))
    return host


@pytest.fixture
def serve_in_process(loaded_models, tmp_path):
    """Runs swictationd's own `serve` in this process on a container built from `settings`,
    with the shared models (unless `shared_models=False`: the container loads its own) and
    any provider overridden; returns (exit status, text lines)."""
    from dependency_injector import providers

    from swictation.adapters.memory import ListOutput
    from swictation.application.container import daemon_container
    from swictation.application.entrypoints.cli import serve

    def run(settings, shared_models=True, **overrides):
        container = daemon_container(settings)
        if shared_models:
            loaded_models.model("vad").reset_states()
            container.models.override(providers.Object(loaded_models))
        output = ListOutput()
        container.output.override(providers.Object(output))
        for name, build in overrides.items():
            getattr(container, name).override(providers.Object(build(container)))
        return serve(container), output.lines

    return run


def _shares_the_session_models(settings) -> bool:
    stt = settings.config.stt
    return str(stt.engine) == "whisper" and not stt.model and str(stt.device) != "cuda"


@pytest.fixture
def swictationd(loaded_models, monkeypatch, capsys):
    """`swictationd ARGS` run in this process, from its own argument parsing to its exit
    status, with the session's models (Silero, Whisper tiny.en on the CPU) instead of
    loading them again: for runs where a process of its own would prove nothing more.
    `env` is set for the run; the result's `out` is what the daemon printed, its `err` what it
    printed on stderr followed by its log. Signals, exit codes, stdout closed or a SIGKILL
    need the real process: `run_command`."""
    from dependency_injector import providers

    from swictation.application import container as wiring
    from swictation.application.entrypoints.cli import daemon_main

    build = wiring.daemon_container

    def with_shared_models(settings, *args, **kwargs):
        container = build(settings, *args, **kwargs)
        if _shares_the_session_models(settings):
            loaded_models.model("vad").reset_states()
            container.models.override(providers.Object(loaded_models))
        return container

    monkeypatch.setattr(wiring, "daemon_container", with_shared_models)

    def run(*args: str, env: dict | None = None) -> Result:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        quiet, verbose = {"-q", "--quiet"} & set(args), {"-v", "--verbose"} & set(args)
        level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
        log = io.StringIO()
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        root = logging.getLogger()
        was = root.level
        root.addHandler(handler)
        root.setLevel(level)
        capsys.readouterr()
        try:
            code = _exit_status(daemon_main, list(args))
        finally:
            root.removeHandler(handler)
            root.setLevel(was)
        printed = capsys.readouterr()
        return Result(code, printed.out, printed.err + log.getvalue())

    return run
