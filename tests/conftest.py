"""Markers: `gpu` tests need CUDA, `audio` tests a microphone; both skip where missing.
Hypothesis: under CI (`CI` set) property tests run derandomized (the same examples every run,
so a red run replays as it was); locally the random search goes on, and `HYPOTHESIS_PROFILE`
picks either profile by name."""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import settings

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


@functools.cache
def has_microphone() -> bool:
    try:
        import sounddevice
    except (ImportError, OSError):
        return False
    try:
        return any(d["max_input_channels"] > 0 for d in sounddevice.query_devices())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (none here)")
    no_mic = pytest.mark.skip(reason="needs a microphone (none here)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda():
            item.add_marker(no_gpu)
        if "audio" in item.keywords and not has_microphone():
            item.add_marker(no_mic)
