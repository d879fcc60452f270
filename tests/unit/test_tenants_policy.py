"""Cooperation in the domain: whom the policy asks, in which order, and how our own offload
waits for them (pure; time is the samples' timestamps)."""

from __future__ import annotations

import attrs

from swictation.domain.cooperation import Cooperation, Pressure, TenantView
from swictation.domain.model import (
    ActionKind,
    Level,
    MemorySample,
    ModelState,
    Observation,
    Placement,
    Tuning,
)
from swictation.domain.policy import GuardPolicy

TOTAL = 24576.0
STT = ModelState("stt", 3600.0)


def _observe(policy, t, used, models=(STT,), tenants=()):
    return policy.observe(Observation(MemorySample(t, used, TOTAL), models, False, tenants=tenants))


def _kinds(decision):
    return [(a.kind, a.tenant or a.model) for a in decision.actions]


OLLAMA = TenantView("ollama", "ollama", held_mib=6144.0, busy=None)
COMFY = TenantView("comfyui", "comfyui", held_mib=None, busy=False)


def test_at_emergency_idle_tenants_are_asked_most_memory_first_and_our_offload_waits():
    policy = GuardPolicy(tuning=Tuning(tenant_wait_s=3.0))
    first = _observe(policy, 0.0, 0.96 * TOTAL, tenants=(COMFY, OLLAMA))
    assert first.level is Level.EMERGENCY
    asks = [(k, n) for k, n in _kinds(first) if k is ActionKind.ASK_RELEASE]
    # 0.96 of 24 GiB against a 90 % target: ~1.5 GiB needed; Ollama reports 6 GiB, enough.
    assert asks == [(ActionKind.ASK_RELEASE, "ollama")]
    assert ActionKind.OFFLOAD not in [k for k, _n in _kinds(first)]
    # Still full 2 s later: still waiting for the asked; nobody asked twice.
    second = _observe(policy, 2.0, 0.96 * TOTAL, tenants=(COMFY, OLLAMA))
    assert [k for k, _ in _kinds(second)] in ([], [ActionKind.AGGRESSIVE_CLEANUP])
    # The wait is over and the card shows nothing freed: now our own offload.
    third = _observe(policy, 3.0, 0.96 * TOTAL, tenants=(COMFY, OLLAMA))
    assert (ActionKind.OFFLOAD, "stt") in _kinds(third)


def test_both_are_asked_when_what_the_first_reports_does_not_cover_the_need():
    small = attrs.evolve(OLLAMA, held_mib=512.0)
    policy = GuardPolicy()
    decision = _observe(policy, 0.0, 0.97 * TOTAL, tenants=(COMFY, small))
    asks = [n for k, n in _kinds(decision) if k is ActionKind.ASK_RELEASE]
    assert asks == ["ollama", "comfyui"]  # known memory first, unknown after
    assert all(a.reason.startswith("EMERGENCY") for a in decision.actions if a.tenant is not None)


def test_memory_freed_by_the_asked_means_no_offload_at_all():
    policy = GuardPolicy()
    _observe(policy, 0.0, 0.96 * TOTAL, tenants=(OLLAMA,))
    offloads = []
    for step in range(1, 40):
        t = step * 0.5
        freed = 0.96 * TOTAL - 6144.0  # Ollama let go of its 6 GiB
        decision = _observe(policy, t, freed, tenants=(OLLAMA,))
        offloads += [n for k, n in _kinds(decision) if k is ActionKind.OFFLOAD]
    assert offloads == []


def test_a_busy_tenant_is_asked_only_when_the_alternative_is_an_oom():
    busy = TenantView("a1111", "a1111", held_mib=4096.0, busy=True, idle_only=False)
    guarded = TenantView("comfyui", "comfyui", busy=True)  # idle_only: never while busy
    policy = GuardPolicy()
    calm = _observe(policy, 0.0, 0.96 * TOTAL, tenants=(busy, guarded))
    assert [k for k, _ in _kinds(calm) if k is ActionKind.ASK_RELEASE] == []
    assert (ActionKind.OFFLOAD, "stt") in _kinds(calm)  # nobody idle to wait for

    # Nothing of ours left on the card: asking is the only way out.
    on_cpu = attrs.evolve(STT, placement=Placement.CPU)
    policy = GuardPolicy()
    urgent = _observe(policy, 0.0, 0.97 * TOTAL, models=(on_cpu,), tenants=(busy, guarded))
    assert [n for k, n in _kinds(urgent) if k is ActionKind.ASK_RELEASE] == ["a1111"]


def test_an_unreachable_tenant_is_skipped():
    gone = attrs.evolve(OLLAMA, reachable=False)
    policy = GuardPolicy()
    decision = _observe(policy, 0.0, 0.96 * TOTAL, tenants=(gone, COMFY))
    assert [n for k, n in _kinds(decision) if k is ActionKind.ASK_RELEASE] == ["comfyui"]


def test_no_asks_below_emergency_without_a_forecast():
    policy = GuardPolicy()
    for step in range(10):
        decision = _observe(policy, step * 1.0, 0.92 * TOTAL, tenants=(OLLAMA,))
        assert ActionKind.ASK_RELEASE not in [k for k, _ in _kinds(decision)]


def test_a_forecast_that_the_card_fills_asks_before_emergency():
    policy = GuardPolicy()
    asked_at = None
    for step in range(60):
        t = step * 0.1
        used = 0.80 * TOTAL + 1500.0 * t  # 1.5 GB/s of growth by someone else
        decision = _observe(policy, t, min(used, TOTAL), tenants=(OLLAMA,))
        asks = [a for a in decision.actions if a.kind is ActionKind.ASK_RELEASE]
        if asks:
            asked_at = (t, decision.level, asks[0].reason)
            break
    assert asked_at is not None and asked_at[1] < Level.EMERGENCY
    assert asked_at[2].startswith(f"forecast at {asked_at[1].name}")


def test_tenants_are_asked_again_only_after_reask_s_and_reload_when_the_pressure_ends():
    coop = Cooperation(wait_s=1.0, reload=True, reask_s=30.0)
    press = Pressure(0.0, Level.EMERGENCY, True, need_mib=100.0)
    assert [a.tenant for a in coop.step(press, (OLLAMA,)).actions] == ["ollama"]
    assert coop.step(attrs.evolve(press, t=10.0), (OLLAMA,)).actions == ()
    again = coop.step(attrs.evolve(press, t=30.0), (OLLAMA,))
    assert [a.tenant for a in again.actions] == ["ollama"]
    over = coop.step(Pressure(60.0, Level.NORMAL, False), (OLLAMA,))
    assert [(a.kind, a.tenant) for a in over.actions] == [(ActionKind.ASK_RELOAD, "ollama")]
    assert coop.step(Pressure(61.0, Level.NORMAL, False), (OLLAMA,)).actions == ()


def test_no_reload_by_default():
    coop = Cooperation()
    coop.step(Pressure(0.0, Level.EMERGENCY, True, need_mib=100.0), (OLLAMA,))
    assert coop.step(Pressure(60.0, Level.NORMAL, False), (OLLAMA,)).actions == ()


def test_urgent_asks_do_not_hold_our_own_offload():
    coop = Cooperation(wait_s=3.0)
    step = coop.step(Pressure(0.0, Level.EMERGENCY, True, 100.0, urgent=True), (OLLAMA,))
    assert step.actions and not step.hold_offloads
    calm = Cooperation(wait_s=3.0)
    step = calm.step(Pressure(0.0, Level.EMERGENCY, True, 100.0), (OLLAMA,))
    assert step.actions and step.hold_offloads


def test_priority_comes_before_memory():
    favoured = TenantView("textgen", "textgen", held_mib=100.0, priority=5)
    coop = Cooperation()
    step = coop.step(Pressure(0.0, Level.EMERGENCY, True, need_mib=50.0), (OLLAMA, favoured))
    assert [a.tenant for a in step.actions] == ["textgen"]
