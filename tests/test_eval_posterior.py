"""benchmarks.eval_posterior: a run's checkpoint played from a sampled posterior latent and from its mode."""

from __future__ import annotations

import json

import pytest
import torch

import world_models
from agents import checkpoint
from agents.config import TrainConfig, save_yaml
from agents.evaluate import evaluate_run
from agents.runs import build_dreamer, identity
from benchmarks import eval_posterior, report
from tests.test_report import write_record


def _run(tmp_path, seed: int):
    run = tmp_path / f"run{seed}"
    config = TrainConfig(
        env="memory/recall-k2", backbone="s5", preset="tiny", run=str(run), seed=seed, wm=world_models.WorldModelConfig.preset("tiny")
    )
    save_yaml(config, run / "config.yaml")
    torch.manual_seed(seed)
    agent, _ = build_dreamer(config, torch.device("cpu"))
    checkpoint.save(run / "checkpoints", 11, {"agent": agent.state_dict(), "identity": identity(config), "counters": {"step": 11}})
    return run


def test_both_settings_play_the_same_checkpoint_and_episodes_into_one_record(tmp_path):
    runs = [_run(tmp_path, 0), _run(tmp_path, 1)]
    assert eval_posterior.main(eval_posterior.Args(runs=runs, episodes=6, results=tmp_path / "results")) == 0
    (path,) = (tmp_path / "results" / "eval-posterior-recall-k2").glob("*.json")
    payload = json.loads(path.read_text())["payload"]
    assert payload["env"] == "memory/recall-k2" and payload["episodes"] == 6
    assert [r["seed"] for r in payload["runs"]] == [0, 1] and all(r["step"] == 11 for r in payload["runs"])
    for row in payload["runs"]:
        again = evaluate_run(row["run"], 6, device="cpu", posterior="mode").scalars["eval/return"]
        assert row["mode"]["eval/return"] == again  # the mode plays deterministically: the same episodes give the same return
        assert -1.0 <= row["sample"]["eval/return"] <= 1.0
    rows = report.eval_posterior(tmp_path / "results", "").splitlines()[2:]
    assert len(rows) == 1 and rows[0].split(" | ")[1:3] == [TrainConfig().dreamer.act_posterior, "0,1"]  # what the runs acted with


def test_the_report_gives_the_paired_difference_over_the_runs(tmp_path):
    runs = [
        {
            "run": f"r{s}",
            "env": "memory/recall-k8",
            "seed": s,
            "step": 100,
            "flags": "eval_mode",
            "sample": {"eval/return": a},
            "mode": {"eval/return": b},
        }
        for s, (a, b) in enumerate([(0.5, 0.9), (0.7, 0.8)])
    ]
    write_record(tmp_path, "eval-posterior-recall-k8", {"env": "memory/recall-k8", "episodes": 64, "runs": runs}, "2026-01-01T00:00:00Z")
    (row,) = report.eval_posterior(tmp_path, "").splitlines()[2:]
    assert row.split(" | ")[5:8] == ["0.60 (worst 0.50)", "0.85 (worst 0.80)", "+0.25 (+0.10 to +0.40)"]


def test_no_runs_or_a_folder_that_is_no_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="give the run folders"):
        eval_posterior.main(eval_posterior.Args(runs=[]))
    with pytest.raises(ValueError, match="not a run folder"):
        eval_posterior.main(eval_posterior.Args(runs=[tmp_path]))
