"""The allocator cleanup run for real (torch on the CPU here: no CUDA cache to give back)."""

from __future__ import annotations

import gc

from swictation.adapters.torch_cuda import release_memory


class Cycle:
    def __init__(self) -> None:
        self.me = self


def _generations_collected(aggressive: bool, garbage: int = 0) -> list[int]:
    seen: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(info["generation"])

    release_memory(True)  # torch imported, and no garbage left
    gc.disable()  # only the collections the cleanup asks for, none of the automatic ones
    for _ in range(garbage):
        Cycle()
    gc.callbacks.append(note)
    try:
        release_memory(aggressive)
    finally:
        gc.callbacks.remove(note)
        gc.enable()
    return seen


def test_warning_collects_the_young_generations_only_and_critical_all_of_them():
    # A full collection costs ~0.1 s of CPU with the models loaded; WARNING repeats for as
    # long as the card stays above 80 %, so its pass must be a cheap one.
    assert _generations_collected(aggressive=False, garbage=100) == [1]
    # CRITICAL: full passes until one finds nothing.
    assert _generations_collected(aggressive=True) == [2]
    assert _generations_collected(aggressive=True, garbage=100) == [2, 2]


def test_a_cleanup_reports_what_it_freed_and_found():
    for _ in range(100):
        Cycle()
    cleaned = release_memory(aggressive=True)
    assert cleaned.freed_mib == 0.0  # no CUDA here: nothing on a card was given back
    assert cleaned.objects is not None and cleaned.objects >= 100
    assert f"gc: {cleaned.objects} objects" in cleaned.detail


def test_cleanup_in_cpu_mode_creates_no_cuda_context(monkeypatch):
    """CPU mode on a GPU machine: CUDA is there (faked here, the one thing this machine
    lacks) but this process never made a context, and a cleanup must not make one."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not torch.cuda.is_initialized()
    for aggressive in (True, False):
        cleaned = release_memory(aggressive=aggressive)
        assert not torch.cuda.is_initialized()
        assert cleaned.freed_mib == 0.0
        assert cleaned.detail.endswith("no CUDA context in this process, no cache to release")
