"""Markers: `gpu` tests need CUDA and skip without it; `audio` tests listen through a private
PulseAudio server (the `sound_server` fixture) and skip only where its packages are missing.
Hypothesis: under CI (`CI` set) property tests run derandomized (the same examples every run,
so a red run replays as it was); locally the random search goes on, and `HYPOTHESIS_PROFILE`
picks either profile by name."""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import settings

# No model hub, ever: the hub library reads this once, when it is first imported (so here,
# before any test imports NeMo), and the programs the tests start inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@functools.cache
def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(scope="session", autouse=True)
def private_user_dirs(tmp_path_factory):
    """The session's own runtime, state and configuration directories, for this process and
    the programs it starts: the default control socket, spool and undelivered text of one
    session (one xdist worker) are never another's, nor the user's."""
    root = tmp_path_factory.mktemp("user")
    saved = {name: os.environ.get(name) for name in _USER_DIRS}
    for name in _USER_DIRS:
        path = root / name.lower()
        path.mkdir(mode=0o700)
        os.environ[name] = str(path)
    yield root
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_USER_DIRS = ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME")


# -- audio: a private sound server per session (tests/sound_server.py) ----------------------


@functools.cache
def why_no_sound_server() -> str | None:
    from tests.sound_server import why_unavailable

    return why_unavailable()


@pytest.fixture(scope="session")
def sound_server(tmp_path_factory):
    """A private PulseAudio server with a null sink, started once per session and killed at
    its end. Programs reach it through `server.client_env()`; for this process, use
    `listening_here`. Nothing else in the session sees it."""
    from tests.sound_server import SoundServer

    reason = why_no_sound_server()
    if reason is not None:
        pytest.skip(reason)
    server = SoundServer(tmp_path_factory.mktemp("sound-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def listening_here(sound_server, monkeypatch):
    """The session's sound server as this process's (PortAudio's) for one test."""
    monkeypatch.setenv("PULSE_SERVER", sound_server.address)
    return sound_server


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (none here)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda():
            item.add_marker(no_gpu)
        if "audio" in item.keywords and why_no_sound_server() is not None:
            item.add_marker(pytest.mark.skip(reason=why_no_sound_server()))
