"""--advise: every snippet it prints is a configuration that gives the settings it tried."""

from __future__ import annotations

import tomllib

from swictation.application.config import GuardConfig, check_sections, load_settings
from swictation.application.services.advise import advise, candidates, largest_model_mib
from swictation.application.services.simulation import SimulationReport
from swictation.domain.model import Thresholds


def test_each_snippet_loads_as_the_configuration_it_stands_for(tmp_path):
    for candidate in candidates(GuardConfig()):
        path = tmp_path / "c.toml"
        path.write_text(candidate.snippet() + "\n")
        check_sections(tomllib.loads(path.read_text()), str(path))
        loaded = load_settings(str(path), {}, default_file=False).guard_config
        assert loaded.thresholds == candidate.config.thresholds, candidate.label
        assert loaded.tuning == candidate.config.tuning, candidate.label
        assert loaded.policy == candidate.config.policy, candidate.label


def report(oom: int = 0, offloads: int = 0) -> SimulationReport:
    levels = dict.fromkeys(("NORMAL", "WARNING", "CRITICAL", "EMERGENCY", "SHUTDOWN"), 0.0)
    return SimulationReport("x", 1, 1.0, levels, 0, offloads, 0, False, oom, 0.5)


def test_no_oom_first_then_fewest_moves_and_on_a_tie_the_defaults():
    def simulate(config: GuardConfig) -> SimulationReport:
        if config.policy == "legacy":
            return report(oom=3)
        return report(offloads=0 if config.thresholds.dwell_s == 30 else 1)

    ranked = advise(simulate, GuardConfig(), workers=1)
    assert ranked[0].candidate.label == "default, dwell 30 s, margin 5 points"
    assert ranked[-1].candidate.label == "legacy policy"
    flat = advise(lambda config: report(), GuardConfig(), workers=1)
    assert flat[0].candidate.label == "default preset"


def test_the_largest_model_stays_below_the_offload_point():
    th = Thresholds()
    # 95 % of 10,000 is 9,500; the floor (256 MiB free) binds only on a small card.
    assert largest_model_mib([4000, 6000, 5000], [10_000] * 3, th) == 3500
    assert largest_model_mib([1000], [2000], th) == 2000 - 256 - 1000
