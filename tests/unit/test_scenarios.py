"""Policy simulation: the real guard, the in-memory host and a fake clock, legacy beside default."""

from __future__ import annotations

import itertools

import pytest

from swictation.adapters.memory import EventList, FakeClock, InMemoryModelHost, ScriptedProbe
from swictation.application.services.guard import GuardService
from swictation.domain.legacy import LegacyPolicy
from swictation.domain.model import ModelState, Placement, Tuning
from swictation.domain.policy import GuardPolicy
from tests.unit.scenarios import GiB, actions, levels, noisy, run


def flapping_others(t: float) -> float:
    # 4.3 GiB of other programs on an 8 GiB card, until they leave at t = 120 s.
    return 4.3 * GiB if t < 120 else 1.0 * GiB


def test_legacy_flaps_offloading_and_restoring_again_and_again():
    report, _events = run(LegacyPolicy(), flapping_others, 8, {"stt": 3.6}, 200)
    assert report.offloads >= 20
    assert report.restores >= 20
    # Each cycle passes through EMERGENCY: the level chatters.
    assert report.transitions >= 40


def test_default_offloads_once_and_restores_once_after_the_others_leave():
    report, events = run(GuardPolicy(), flapping_others, 8, {"stt": 3.6}, 200)
    assert report.offloads == 1
    assert report.restores == 1
    (restore,) = actions(events, "restore", "stt")
    assert restore.t >= 120 + GuardPolicy().thresholds.dwell_s
    assert report.final_placement == {"stt": "gpu"}
    assert report.oom_events == 0


def ramp(t: float) -> float:
    # Another program grows at 1 GiB/s from 2 GiB to 10 GiB, starting at t = 10 s.
    return 2 * GiB + max(0.0, min(8 * GiB, (t - 10) * GiB))


def test_default_finishes_its_offload_before_a_fast_ramp_fills_the_card():
    report, events = run(GuardPolicy(), ramp, 12, {"stt": 3.0}, 40)
    assert report.oom_events == 0
    (offload,) = actions(events, "offload", "stt")
    # The card would be full at t = 17 s (9 GiB of others + 3 GiB); the transfer ends before.
    assert offload.t + offload.detail["seconds"] < 17.0
    assert report.peak_usage < 1.0


def test_legacy_lets_the_same_ramp_fill_the_card():
    report, _ = run(LegacyPolicy(), ramp, 12, {"stt": 3.0}, 40)
    assert report.oom_events > 0
    assert report.first_oom_s is not None
    assert report.first_oom_s <= 17.05


def test_noise_around_a_threshold_does_not_make_the_level_chatter():
    # 80 % +/- 1 % of an 8 GiB card, no models to move.
    total = 8 * GiB
    report, events = run(GuardPolicy(), noisy(0.80 * total, 0.01 * total), 8, {}, 300)
    assert report.transitions <= 1
    assert [lvl for _, lvl in levels(events)] in ([], ["WARNING"])


def test_legacy_does_chatter_on_the_same_noise():
    total = 8 * GiB
    report, _ = run(LegacyPolicy(), noisy(0.80 * total, 0.01 * total), 8, {}, 300)
    assert report.transitions >= 20


def test_steady_85_percent_is_warning_with_cleanup_but_no_offload():
    # 85 % of a 24 GiB card in all, a 3 GiB model included.
    total = 24 * GiB
    report, events = run(GuardPolicy(), lambda t: 0.85 * total - 3 * GiB, 24, {"stt": 3.0}, 120)
    assert report.offloads == 0
    assert report.levels["WARNING"] >= 119
    # The level's cleanup is re-applied while it lasts, not only on entry; one that frees
    # nothing (the replay's models hold no cache) doubles the wait before the next.
    cleanups = actions(events, "collect_garbage")
    assert [e.detail["reason"] for e in cleanups] == ["entered WARNING"] + ["still WARNING"] * 2
    assert [round(e.t) for e in cleanups] == [0, 20, 60]


def deferred_others(t: float) -> float:
    # 5.3 GiB of others + a 2.5 GiB model on an 8 GiB card: EMERGENCY. After the offload
    # usage is 66 %, above legacy's 60 % restore point; at t = 60 s the others shrink.
    return 5.3 * GiB if t < 60 else 1.0 * GiB


def test_legacy_never_retries_a_deferred_restore():
    report, _ = run(LegacyPolicy(), deferred_others, 8, {"stt": 2.5}, 180)
    assert report.offloads == 1
    assert report.restores == 0
    assert report.final_placement == {"stt": "cpu"}


def test_default_still_restores_a_deferred_model_later():
    report, events = run(GuardPolicy(), deferred_others, 8, {"stt": 2.5}, 180)
    assert report.offloads == 1
    assert report.restores == 1
    (restore,) = actions(events, "restore")
    assert 60 + 10 <= restore.t <= 60 + 15
    assert report.final_placement == {"stt": "gpu"}


def test_a_restore_due_during_continuous_speech_waits_at_most_restore_wait_s():
    # Same as above, but the user speaks without a break from 65 s to 95 s: the restore is
    # due once the room has held for the dwell (the first 2 s poll after 60 s, plus 10 s)
    # and may not wait for the end of speech longer than `restore_wait_s`.
    wait = GuardPolicy().tuning.restore_wait_s
    _report, events = run(
        GuardPolicy(), deferred_others, 8, {"stt": 2.5}, 180, busy=lambda t: 65 <= t < 95
    )
    (restore,) = actions(events, "restore")
    assert 70 + wait <= restore.t <= 72 + wait + 0.5


def speech_with_short_pauses(t: float) -> bool:
    # Utterances of 3.7 s with 0.3 s pauses, from 65 s on.
    return t >= 65 and (t - 65) % 4.0 < 3.7


def test_a_restore_due_during_speech_happens_in_the_next_gap():
    _report, events = run(
        GuardPolicy(), deferred_others, 8, {"stt": 2.5}, 180, busy=speech_with_short_pauses
    )
    (restore,) = actions(events, "restore")
    assert 70 <= restore.t <= 75
    assert not speech_with_short_pauses(restore.t)


def test_legacy_policy_is_not_held_back_by_speech_either():
    # The original ignored speech: both policies see the same busy flag without harm.
    report, _ = run(
        LegacyPolicy(), deferred_others, 8, {"stt": 2.5}, 180, busy=speech_with_short_pauses
    )
    assert report.offloads == 1


def test_usage_stuck_at_99_percent_with_nothing_to_offload_shuts_down():
    total = 8 * GiB
    report, events = run(GuardPolicy(), lambda t: 0.99 * total, 8, {}, 60)
    assert report.shutdown
    assert levels(events)[-1][1] == "SHUTDOWN"
    (shutdown,) = actions(events, "shutdown")
    # Held for the grace period first, not on the first reading.
    assert shutdown.t >= GuardPolicy().tuning.shutdown_grace_s


def test_shutdown_comes_only_after_everything_offloadable_is_off():
    # 99 % even without the 2 GiB model: offload it first, then shut down.
    total = 8 * GiB
    report, events = run(GuardPolicy(), lambda t: 0.99 * total, 8, {"stt": 2.0}, 60)
    assert report.shutdown
    (offload,) = actions(events, "offload", "stt")
    (shutdown,) = actions(events, "shutdown")
    assert shutdown.t > offload.t + offload.detail["seconds"]


def test_minimal_offload_moves_only_what_is_needed():
    # A 3.6 GiB STT and a 1 GiB helper on a 16 GiB card; others push usage to 96 %.
    # Getting under 90 % needs about 1 GiB: the helper goes, the STT stays.
    total = 16 * GiB
    others = 0.96 * total - 4.6 * GiB
    report, events = run(
        GuardPolicy(), lambda t: others, 16, {"stt": 3.6, "helper": 1.0, "vad": 0.002}, 30
    )
    assert [e.model for e in actions(events, "offload")] == ["helper"]
    assert report.final_placement["stt"] == "gpu"
    assert report.final_placement["vad"] == "gpu"


def test_emergency_retries_while_pressure_lasts():
    # The first offload is enough at first; others grow again while the level is still
    # EMERGENCY, and a second offload follows with no change of level (the original acted
    # only on a change).
    def others(t: float) -> float:
        return 11.5 * GiB if t < 5 else 13.0 * GiB

    report, events = run(GuardPolicy(), others, 16, {"stt": 1.5, "llm": 2.5}, 60)
    offloads = actions(events, "offload")
    assert [e.model for e in offloads] == ["stt", "llm"]
    changes_before_second = [t for t, _ in levels(events) if t <= offloads[1].t]
    assert len(changes_before_second) == 1
    assert report.oom_events == 0


def test_a_restore_that_brings_pressure_back_waits_exponentially_longer():
    # Another program grows into whatever the model leaves free: every restore leads back
    # to EMERGENCY. The waits before each new restore must double.
    clock = FakeClock()
    host = InMemoryModelHost(clock, [ModelState("stt", 3.6 * GiB)])

    def used(t: float) -> float:
        others = 1.0 if host.placement("stt") is Placement.CPU else 4.2
        return others * GiB + host.gpu_resident_mib()

    events = EventList()
    guard = GuardService(ScriptedProbe(used, 8 * GiB, clock), host, GuardPolicy(), events, clock)
    guard.run(duration_s=1200)
    restores = [e.t for e in actions(events.events, "restore")]
    offloads = [e.t for e in actions(events.events, "offload")]
    assert len(restores) >= 4
    assert len(offloads) >= len(restores)
    gaps = [later - earlier for earlier, later in itertools.pairwise(restores)]
    assert all(b > a * 1.5 for a, b in itertools.pairwise(gaps)), gaps


def step_then_flat(t: float) -> float:
    # A program loads 16 GB in one step at t = 30 s on a 24 GiB card and then sits still:
    # with a 1.5 GiB speech model the card stays at 72 %.
    return 1.3 * GiB if t < 30 else 1.3 * GiB + 16e9 / 2**20


def test_a_single_step_followed_by_a_flat_run_is_not_a_ramp():
    for policy in (GuardPolicy(), LegacyPolicy()):
        report, events = run(policy, step_then_flat, 24, {"stt": 1.5}, 900, step_s=0.1)
        assert actions(events, "offload") == [], policy.name
        assert report.final_placement == {"stt": "gpu"}
        assert report.oom_events == 0


def test_a_model_comes_back_to_a_card_that_would_sit_at_78_percent_with_it():
    # 96 % with the model at first; then the others shrink so that the model back would
    # make 78 %: far from the offload point (95 %), so it returns.
    total = 16 * GiB

    def others(t: float) -> float:
        return 0.96 * total - 2 * GiB if t < 30 else 0.78 * total - 2 * GiB

    report, events = run(GuardPolicy(), others, 16, {"stt": 2.0}, 120)
    assert report.offloads == 1
    (restore,) = actions(events, "restore", "stt")
    assert 30 + 10 <= restore.t <= 30 + 14
    assert report.final_placement == {"stt": "gpu"}
    assert report.offloads == 1  # and it stays


def short_burst(t: float) -> float:
    # Growth at 2 GiB/s from 2 GiB for 2.75 s, then flat at 7.5 GiB: with a 3 GiB model
    # the 12 GiB card would sit at 87.5 %, below the offload point.
    return 2 * GiB + max(0.0, min(5.5 * GiB, (t - 10) * 2 * GiB))


def test_a_forecast_offload_that_proved_unneeded_is_undone_after_the_dwell():
    report, events = run(GuardPolicy(), short_burst, 12, {"stt": 3.0}, 120)
    (offload,) = actions(events, "offload", "stt")
    assert offload.detail["reason"].startswith("forecast")
    (restore,) = actions(events, "restore", "stt")
    dwell = GuardPolicy().thresholds.dwell_s
    assert offload.t + dwell <= restore.t <= offload.t + dwell + 8
    assert "unneeded" in restore.detail["reason"]
    assert report.final_placement == {"stt": "gpu"}
    assert report.oom_events == 0


def leak(t: float) -> float:
    # Another program leaks 8 MiB/s from 2 GiB until it holds 7.6 GiB of an 8 GiB card.
    return 2 * GiB + min(5.6 * GiB, 8.0 * t)


def test_a_slow_leak_moves_the_model_out_once_before_the_card_fills():
    report, events = run(GuardPolicy(), leak, 8, {"stt": 2.0}, 900, step_s=0.5)
    assert report.oom_events == 0
    assert [e.model for e in actions(events, "offload")] == ["stt"]
    assert report.restores == 0  # never room for it again
    legacy, _ = run(LegacyPolicy(), leak, 8, {"stt": 2.0}, 900, step_s=0.5)
    assert legacy.offloads == 1
    assert legacy.restores == 0


def sawtooth(t: float) -> float:
    # Others climb from 1 to 5 GiB over 20 s, drop back, and do it again.
    return 1 * GiB + (t % 25) / 20 * 4 * GiB if t % 25 < 20 else 1 * GiB


def test_a_sawtooth_is_met_without_oom_and_with_fewer_moves_than_legacy():
    report, _ = run(GuardPolicy(), sawtooth, 8, {"stt": 3.6}, 600)
    legacy, _ = run(LegacyPolicy(), sawtooth, 8, {"stt": 3.6}, 600)
    assert report.oom_events == 0
    assert report.restores <= report.offloads <= report.restores + 1
    # The back-off makes each restore that led back to pressure wait longer.
    assert report.offloads + report.restores < legacy.offloads + legacy.restores


def test_an_exhausted_card_shuts_down_under_both_policies():
    total = 8 * GiB
    for policy in (GuardPolicy(), LegacyPolicy()):
        report, events = run(policy, lambda t: 0.985 * total, 8, {"stt": 2.0}, 60)
        assert report.shutdown, policy.name
        assert [e.model for e in actions(events, "offload")] == ["stt"], policy.name


def test_a_restore_leaves_the_models_working_memory_free():
    # After 60 s the card has 4.5 GiB free with the model back: room for 1 GiB of
    # activations, not for 5 GiB.
    small = Tuning(working_mib={"stt": 1 * GiB})
    report, _ = run(GuardPolicy(tuning=small), deferred_others, 8, {"stt": 2.5}, 180)
    assert report.restores == 1
    big = Tuning(working_mib={"stt": 5 * GiB})
    report, _ = run(GuardPolicy(tuning=big), deferred_others, 8, {"stt": 2.5}, 180)
    assert report.restores == 0
    assert report.final_placement == {"stt": "cpu"}


def test_working_memory_is_configured_per_model(tmp_path):
    from swictation.application.config import ConfigError, load_settings

    path = tmp_path / "c.toml"
    path.write_text("[guard]\nworking_mib = { stt = 512 }\n")
    settings = load_settings(str(path), {}, default_file=False)
    assert settings.guard_config.tuning.working_mib == {"stt": 512}
    path.write_text("[guard]\nworking_mib = { stt = -1 }\n")
    with pytest.raises(ConfigError, match="working_mib"):
        load_settings(str(path), {}, default_file=False)
