"""benchmarks.learning's record of a finished run: its in-run curve, and its final checkpoint scored on held-out
episodes by memwm's evaluator (a failed run gets no such score)."""

from __future__ import annotations

import dataclasses
import json
import time
from types import SimpleNamespace

import pytest
import torch

import world_models
from agents import checkpoint
from agents.common import evaluation_seed
from agents.config import TrainConfig, save_yaml
from agents.evaluate import evaluate_run
from agents.runs import build_dreamer, identity
from benchmarks import learning, record

EPISODES = 6


def finished_run(tmp_path, seed: int, returncode: int) -> SimpleNamespace:
    """A `memwm train` run folder of recall-k8 as a run leaves it (config, a checkpoint, two evaluations in
    metrics.jsonl), behind the process handle the benchmark keeps."""
    run = tmp_path / f"run{seed}"
    config = TrainConfig(env="memory/recall-k8", preset="tiny", run=str(run), seed=seed, wm=world_models.WorldModelConfig.preset("tiny"))
    save_yaml(config, run / "config.yaml")
    torch.manual_seed(seed)
    agent, _ = build_dreamer(config, torch.device("cpu"))
    checkpoint.save(run / "checkpoints", 100, {"agent": agent.state_dict(), "identity": identity(config), "counters": {"step": 100}})
    rows = [{"step": 0, "eval/return": -0.5}, {"step": 100, "eval/return": 0.25, "train/updates": 7}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"task": "recall-k8", "backbone": "s5", "flags": "", "seed": seed, "minutes": 1.0, "run_dir": run}
    info |= {"cmd": ["python", "-m", "agents.cli", "train"], "start": time.time(), "started": record.start(), "loads": [], "stamps": {}}
    info["log"] = open(tmp_path / f"run{seed}.log", "w")
    return SimpleNamespace(returncode=returncode, memwm=info)


@pytest.fixture
def written(monkeypatch):
    payloads = []
    monkeypatch.setattr(learning.record, "write_result", lambda name, payload, **kw: payloads.append(payload))
    return payloads


def test_a_finished_run_is_scored_on_the_held_out_episodes_memwm_eval_plays(tmp_path, written):
    learning.write(finished_run(tmp_path, seed=3, returncode=0), episodes=EPISODES)
    (payload,) = written
    assert payload["final"] == 0.25 and payload["updates"] == 7  # the in-run curve as the run logged it
    first = evaluation_seed(3, 0, EPISODES)
    assert payload["held_out_seed"] == first
    held = payload["final_held_out"]
    assert held["episodes"] == EPISODES and held["step"] == 100
    run = tmp_path / "run3"
    assert held["return"] == evaluate_run(run, EPISODES, device="cpu", seed=first).scalars["eval/return"]
    # the score depends on which episodes are played: another first seed would give another one
    assert held["return"] != evaluate_run(run, EPISODES, device="cpu", seed=first + EPISODES).scalars["eval/return"]


def test_a_failed_run_gets_no_held_out_score(tmp_path, written):
    learning.write(finished_run(tmp_path, seed=1, returncode=1), episodes=EPISODES)
    (payload,) = written
    assert payload["stopped_by"] == "failure" and payload["final_held_out"] is None and payload["final"] == 0.25


def test_the_record_keeps_the_learning_chain_and_what_the_evaluations_say_of_the_cue(tmp_path, written):
    proc = finished_run(tmp_path, seed=2, returncode=1)
    rows = [
        {"step": 0, "eval/return": -0.5, "eval/cue_seen": 0.25, "eval/success_seen": 1.0},
        {"step": 50, "chain/z_seen": 0.9, "chain/h_probe": 0.6, "train/loss": 1.0},
        {"step": 100, "eval/return": 0.25, "train/updates": 7},
        {"step": 150, "chain/z_seen": 1.0},
    ]
    (proc.memwm["run_dir"] / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc.memwm["stamps"] = {0: 0.1, 50: 0.6}
    learning.write(proc, episodes=EPISODES)
    (payload,) = written
    assert [e.get("cue_seen") for e in payload["evals"]] == [0.25, None]
    assert payload["evals"][0]["success_seen"] == 1.0 and "success_unseen" not in payload["evals"][0]
    first, last = payload["chain"]
    assert first == {"step": 50, "minutes": 0.6, "chain/z_seen": 0.9, "chain/h_probe": 0.6}
    assert last["step"] == 150 and last["chain/z_seen"] == 1.0 and last["minutes"] >= 0  # stamped by the last poll


def test_the_record_keeps_the_learner_s_settings_without_what_names_the_run(tmp_path, written):
    for seed in (0, 1):
        learning.write(finished_run(tmp_path, seed=seed, returncode=1), episodes=EPISODES)
    first, second = (p["config"] for p in written)
    assert first == second  # two seeds of one learner: the same settings
    saved = TrainConfig(env="memory/recall-k8", preset="tiny", wm=world_models.WorldModelConfig.preset("tiny")).to_dict()
    assert first == {k: v for k, v in saved.items() if k not in learning.RUN_LOCAL}
    assert first["dreamer"]["all_actions"] == saved["dreamer"]["all_actions"] and "run" not in first and "seed" not in first
    run = tmp_path / "other"  # a run with one setting changed is another learner
    changed = TrainConfig(env="memory/recall-k8", preset="tiny", run=str(run), wm=world_models.WorldModelConfig.preset("tiny"))
    changed = dataclasses.replace(changed, dreamer=dataclasses.replace(changed.dreamer, all_actions=0.3))
    save_yaml(changed, run / "config.yaml", sources={"dreamer.all_actions": "flag"})
    assert learning.run_config(run) != first and learning.run_config(run)["dreamer"]["all_actions"] == 0.3
    assert "sources" not in learning.run_config(run) and learning.run_config(tmp_path / "none") is None
