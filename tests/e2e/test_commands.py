"""The console scripts exist, answer --help, and refuse bad usage in one line."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import FIXTURES, run_command


@pytest.mark.parametrize("program", ["swictation", "swictationd"])
def test_help(program):
    result = run_command(program, "--help")
    assert result.code == 0
    assert "usage:" in result.out


def test_replay_help_lists_the_contract_flags():
    out = run_command("swictation", "replay", "--help").out
    for flag in (
        "--format",
        "--gpu",
        "--total-mib",
        "--columns",
        "--model",
        "--policy",
        "--config",
        "--events",
        "--plot",
        "--json",
    ):
        assert flag in out


def test_unknown_subcommand_is_one_line_and_exit_2():
    result = run_command("swictation", "dance")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    # A stand-in package that fails to import, as on a machine without the plot extra.
    fake = tmp_path / "matplotlib"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_command(
        "swictation",
        "replay",
        str(FIXTURES / "units.csv"),
        "--plot",
        str(tmp_path / "x.png"),
        env=env,
    )
    assert result.code == 2
    assert result.err.strip() == (
        "swictation replay: error: --plot needs matplotlib: pip install 'swictation[plot]'"
    )


@pytest.mark.parametrize("program", ["swictation", "swictationd"])
def test_version(program):
    result = run_command(program, "--version")
    assert result.code == 0
    assert result.out.split() == [program, importlib.metadata.version("swictation")]


def test_the_wheel_installs_everything_under_one_namespace(tmp_path):
    """Built as a user's pip would build it: every module lives under `swictation/`, and
    nothing named `domain`, `ports`, `adapters` or `application` lands at the top."""
    root = Path(__file__).parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("swictation-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"swictation"}
    for layer in ("domain", "ports", "adapters", "application"):
        assert f"swictation/{layer}/__init__.py" in names
    assert "swictation/application/services/guard.py" in names
    assert "swictation/application/entrypoints/cli.py" in names
