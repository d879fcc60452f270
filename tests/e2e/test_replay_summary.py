"""What replay says about dictation: time off the GPU per model, the least free memory,
advice on settings, and the configuration it ran with."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import FIXTURES, run_command

EXAMPLES = Path(__file__).parents[2] / "examples"
EVENING = EXAMPLES / "traces" / "evening-llm.csv"


def _environ(env: dict | None, home: Path | None) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SWICTATION_")}
    if home is not None:
        environ["XDG_CONFIG_HOME"] = str(home)
    environ.update(env or {})
    return environ


@pytest.fixture
def replay(swictation, monkeypatch):
    """`swictation replay ARGS` in this process, without the tester's SWICTATION_ settings
    and with `home` as the configuration directory."""
    for name in [k for k in os.environ if k.startswith("SWICTATION_")]:
        monkeypatch.delenv(name)

    def run(*args: str, env: dict | None = None, home: Path | None = None):
        return swictation("replay", *args, env=_environ(env, home))

    return run


def replay_process(*args: str, home: Path | None = None):
    """The same in a process of its own: `--advise` forks its workers."""
    return run_command("swictation", "replay", *args, env=_environ(None, home))


def test_the_json_summary_has_per_model_time_off_the_gpu_and_the_least_free(tmp_path, replay):
    result = replay(str(EVENING), "--model", "stt=3600MiB", "--json", home=tmp_path)
    assert result.code == 0, result.err
    body = result.json()
    stt = body["per_model"]["stt"]
    assert set(stt) == {"size_mib", "offloads", "restores", "seconds_off_gpu", "longest_off_gpu_s"}
    assert stt["size_mib"] == 3600
    assert (stt["offloads"], stt["restores"]) == (1, 1)
    assert 0 < stt["longest_off_gpu_s"] <= stt["seconds_off_gpu"] < body["duration_s"]
    assert 0 < body["min_free_mib"] < 12288


def test_the_text_summary_says_how_long_each_model_spent_on_the_cpu(tmp_path, replay):
    result = replay(str(EVENING), "--model", "stt=3600MiB", "--policy", "both", home=tmp_path)
    assert result.code == 0, result.err
    assert "stt spent 16m 07s on the CPU in 29m 59s" in result.out
    assert "least free" in result.out
    assert "settings: policy default and legacy; thresholds 80%/90%/95%/98%" in result.out
    assert "(from the defaults)" in result.out


def test_replay_reads_the_daemons_configuration_from_every_layer(tmp_path, replay):
    (tmp_path / "swictation").mkdir()
    xdg = tmp_path / "swictation" / "config.toml"
    xdg.write_text('[thresholds]\npreset = "conservative"\n\n[guard]\npolicy = "legacy"\n')
    result = replay(
        str(EVENING),
        "--model",
        "stt=3600MiB",
        "--json",
        home=tmp_path,
        env={"SWICTATION_THRESHOLDS_DWELL_S": "30"},
    )
    assert result.code == 0, result.err
    body = result.json()
    assert body["policy"] == "legacy"  # guard.policy from the XDG file
    assert body["settings"]["policy"] == ["legacy"]
    assert body["settings"]["thresholds"]["warning"] == 0.70
    assert body["settings"]["thresholds"]["dwell_s"] == 30
    assert body["settings"]["sources"] == [str(xdg), "SWICTATION_THRESHOLDS_DWELL_S"]
    # --config replaces the XDG file; --policy overrides guard.policy.
    other = tmp_path / "other.toml"
    other.write_text("[thresholds]\nmargin = 0.05\n")
    result = replay(
        str(EVENING), "--config", str(other), "--policy", "default", "--json", home=tmp_path
    )
    body = result.json()
    assert body["policy"] == "default"
    assert body["settings"]["thresholds"]["margin"] == 0.05
    assert body["settings"]["thresholds"]["warning"] == 0.80
    bad = replay(str(EVENING), "--json", home=tmp_path, env={"SWICTATION_GUARD_POLICY": "x"})
    assert bad.code == 2
    assert "guard.policy" in bad.err
    assert "error" in json.loads(bad.out)


def test_policy_both_writes_the_events_of_both_policies_with_their_names(tmp_path, replay):
    events = tmp_path / "events.jsonl"
    result = replay(
        str(EVENING),
        "--model",
        "stt=3600MiB",
        "--policy",
        "both",
        "--events",
        str(events),
        home=tmp_path,
    )
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert {line["policy"] for line in lines} == {"default", "legacy"}
    offloads = {(e["policy"], e["model"]) for e in lines if e.get("action") == "offload"}
    assert offloads == {("default", "stt"), ("legacy", "stt")}


def test_advise_prints_the_best_few_with_a_snippet_and_the_largest_model(tmp_path, replay):
    result = replay_process(str(EVENING), "--model", "stt=3600MiB", "--advise", home=tmp_path)
    assert result.code == 0, result.err
    out = result.out
    assert "tried 10 settings" in out
    assert out.count("no would-be OOM") >= 3
    assert "1. " in out and "2. " in out and "3. " in out
    assert "legacy policy" not in out.split("largest model")[0]  # it lets the card overflow
    assert "largest model that would have fit without any offload:" in out
    as_json = replay_process(
        str(EVENING), "--model", "stt=3600MiB", "--advise", "--json", home=tmp_path
    )
    body = as_json.json()
    assert len(body["advice"]) == 3
    best = body["advice"][0]
    assert best["oom_events"] == 0
    assert best["config"]
    assert [a["seconds_off_gpu"] for a in body["advice"]] == sorted(
        a["seconds_off_gpu"] for a in body["advice"]
    )
    # The largest model would never bring the card to the offload point on this trace.
    largest = body["largest_model_mib"]
    check = replay(str(EVENING), "--model", f"stt={largest - 1:.0f}MiB", "--json", home=tmp_path)
    assert check.json()["offloads"] == 0
    too_big = replay(
        str(EVENING), "--model", f"stt={largest + 200:.0f}MiB", "--json", home=tmp_path
    )
    assert too_big.json()["offloads"] > 0


def test_total_mib_takes_units(tmp_path, replay):
    result = replay(str(FIXTURES / "no-total.csv"), "--total-mib", "8GiB", "--json", home=tmp_path)
    assert result.code == 0, result.err
    assert result.json()["total_mib"] == 8192
    bad = replay(str(FIXTURES / "no-total.csv"), "--total-mib", "8 parsecs", home=tmp_path)
    assert bad.code == 2
    assert bad.err.startswith("swictation replay: error: --total-mib 8 parsecs:")


def test_non_finite_numbers_are_refused_naming_the_line(tmp_path, replay):
    for value in ("NaN", "Infinity", "-Infinity"):
        trace = tmp_path / "x.jsonl"
        trace.write_text(
            '{"t": 0, "used_mib": 100, "total_mib": 8192}\n'
            f'{{"t": 1, "used_mib": {value}, "total_mib": 8192}}\n'
        )
        result = replay(str(trace), "--json", home=tmp_path)
        assert result.code == 2
        assert ":2: used_mib must be a finite number" in result.err
        assert len(result.err.splitlines()) == 1
        assert "error" in json.loads(result.out)
