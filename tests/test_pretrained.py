"""Pretrained runs (agents/pretrained.py, runs/pretrained/): every shipped run loads, scores as its README
row claims, and beats its reference (a uniformly random policy, or fresh weights for a compare backbone) by
MARGIN_SE standard errors, a check that rejects the same config untrained; the mechanism that makes them,
and a run whose files were edited refused in one line."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import world_models
from agents import pretrained
from agents.manifest import MANIFEST, verify

REPO = Path(__file__).resolve().parent.parent
ROWS = pretrained.readme_rows()


def test_every_folder_is_listed_once_in_the_readme_and_within_the_size_limits():
    folders = sorted(p.name for p in pretrained.ROOT.iterdir() if p.is_dir()) if pretrained.ROOT.is_dir() else []
    assert sorted(r["name"] for r in ROWS) == folders
    sizes = [pretrained.run_bytes(pretrained.ROOT / name) for name in folders]
    assert all(s <= pretrained.MAX_RUN_BYTES for s in sizes) and sum(sizes) <= pretrained.MAX_TOTAL_BYTES


@functools.cache
def references(name: str, episodes: int) -> list[dict]:
    return pretrained.reference_scores(pretrained.ROOT / name, episodes)


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_pretrained_run_loads_scores_as_its_readme_claims_and_beats_its_reference(row):
    run = pretrained.ROOT / row["name"]
    verify(run)
    manifest = json.loads((run / MANIFEST).read_text())
    metric, claimed = pretrained.parse_score(row["score"])
    assert (manifest["env"], manifest["agent"], manifest["backbone"], manifest["metric"]) == (
        row["env"],
        row["agent"],
        row["backbone"],
        metric,
    )
    measured = pretrained.measure(run, int(row["episodes"]))
    assert pretrained.within_tolerance(metric, claimed, measured["score"]), (row, measured)
    # The same seeds (episodes) for the reference: a run at chance cannot pass for a trained one.
    refs = references(row["name"], int(row["episodes"]))
    assert pretrained.beats(measured, refs), (row, measured["score"], [r["score"] for r in refs], pretrained.margin(measured, refs))


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_the_reference_check_rejects_the_same_config_untrained(row):
    """The check above, given fresh weights of the run's config (an initialisation that is none of the
    references'), fails: a shipped run that learned nothing would fail it too."""
    run = pretrained.ROOT / row["name"]
    untrained = pretrained.measure(run, int(row["episodes"]), policy="untrained", init=0)
    refs = references(row["name"], int(row["episodes"]))
    assert not pretrained.beats(untrained, refs), (row, untrained["score"], [r["score"] for r in refs], pretrained.margin(untrained, refs))


def test_beats_counts_standard_errors_whichever_way_the_metric_points():
    ref = [{"metric": "return", "scores": [20.0, 24.0, 22.0, 26.0]}]
    assert pretrained.margin({"metric": "return", "scores": [60.0, 58.0, 62.0, 64.0]}, ref)[0] == pytest.approx(38.0)
    assert pretrained.beats({"metric": "return", "scores": [60.0, 58.0, 62.0, 64.0]}, ref)
    assert not pretrained.beats({"metric": "return", "scores": [24.0, 22.0, 26.0, 28.0]}, ref)  # 2 better: within the noise
    frames = [{"metric": "door_mse", "scores": [0.14, 0.15]}, {"metric": "door_mse", "scores": [0.17, 0.18]}]
    assert pretrained.beats({"metric": "door_mse", "scores": [0.006, 0.007]}, frames)  # lower is better
    assert not pretrained.beats({"metric": "door_mse", "scores": [0.15, 0.16]}, frames)  # another initialisation


def finished_run(tmp_path: Path, env: str = "pomdp/cartpole-positions", backbone: str = "s5") -> Path:
    """A run folder as `memwm train` leaves it (config.yaml, a full checkpoint with optimiser state)."""
    from agents import checkpoint
    from agents.config import TrainConfig, save_yaml
    from agents.runs import build_dreamer, identity

    config = TrainConfig(
        env=env,
        backbone=backbone,
        preset="tiny",
        run=str(tmp_path / "run"),
        eval_episodes=2,
        wm=world_models.WorldModelConfig.preset("tiny"),
    )
    agent, _ = build_dreamer(config, torch.device("cpu"))
    save_yaml(config, tmp_path / "run" / "config.yaml")
    checkpoint.save(
        tmp_path / "run" / "checkpoints",
        9,
        {"agent": agent.state_dict(), "optimisers": agent.optimiser_state(), "identity": identity(config), "counters": {"step": 9}},
    )
    return tmp_path / "run"


def memwm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_add_writes_config_checkpoint_manifest_and_a_readme_row_that_the_test_accepts(tmp_path):
    root = tmp_path / "pretrained"
    target = pretrained.add(finished_run(tmp_path), "tiny-s5", "memwm train --preset tiny", episodes=2, commit="abc1234", root=root)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "checkpoints/ckpt-000000009.pt",
        "config.yaml",
        "manifest.json",
    ]
    saved = torch.load(target / "checkpoints" / "ckpt-000000009.pt", weights_only=False)
    assert sorted(saved) == sorted(pretrained.KEPT)  # no optimiser state
    [row] = pretrained.readme_rows(root)
    assert (row["name"], row["env"], row["commit"], row["command"]) == (
        "tiny-s5",
        "pomdp/cartpole-positions",
        "abc1234",
        "`memwm train --preset tiny`",
    )
    metric, claimed = pretrained.parse_score(row["score"])
    assert metric == "return" and pretrained.within_tolerance(metric, claimed, pretrained.measure(target, 2)["score"])
    pretrained.add(finished_run(tmp_path), "tiny-s5", "memwm train --preset tiny --seed 1", episodes=2, root=root)
    assert [r["command"] for r in pretrained.readme_rows(root)] == ["`memwm train --preset tiny --seed 1`"]  # replaced

    proc = memwm("eval", "--run", str(target), "--episodes", "1", "--device", "cpu")
    assert proc.returncode == 0 and "mean return" in proc.stdout, proc.stderr
    proc = memwm("imagine", "--run", str(target), "--episodes", "1", "--context", "3", "--horizon", "3", "--device", "cpu")
    assert proc.returncode == 0 and (target / "videos" / "imagine.png").exists(), proc.stderr
    verify(target)  # reading a run changes none of its files


@pytest.mark.parametrize("edit, command", [("config", "eval"), ("checkpoint", "imagine"), ("missing", "inspect")])
def test_an_edited_pretrained_run_is_a_one_line_error(tmp_path, edit, command):
    target = pretrained.add(finished_run(tmp_path), "x", "memwm train", episodes=1, root=tmp_path / "pretrained")
    ckpt = next((target / "checkpoints").iterdir())
    if edit == "config":
        (target / "config.yaml").write_text((target / "config.yaml").read_text().replace("seed: 0", "seed: 1"))
    elif edit == "checkpoint":
        data = bytearray(ckpt.read_bytes())
        data[-20] ^= 1
        ckpt.write_bytes(bytes(data))
    else:
        ckpt.unlink()
    proc = memwm(command, "--run", str(target), "--device", "cpu")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert ("was edited" if edit != "missing" else "is missing") in proc.stderr and "git checkout" in proc.stderr
    with pytest.raises(ValueError, match="was edited" if edit != "missing" else "is missing"):
        verify(target)


def test_add_refuses_a_run_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "MAX_RUN_BYTES", 1000)
    with pytest.raises(ValueError, match="the limit is"):
        pretrained.add(finished_run(tmp_path), "big", "memwm train", episodes=1, root=tmp_path / "pretrained")
    assert not (tmp_path / "pretrained" / "big").exists()


def test_a_compare_backbone_becomes_a_pretrained_world_model_scored_by_its_probe(tmp_path):
    import gymnasium as gym
    import numpy as np

    from world_models.saving import save_world_model

    env = "memory/doors-keys-3"
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    config = world_models.WorldModelConfig.preset("tiny")
    torch.manual_seed(0)
    wm = world_models.make("s5", space, gym.spaces.Discrete(4), config)
    backbone = tmp_path / "compare" / "s5"
    save_world_model(backbone / "model.pt", wm, backbone="s5", config=config, env=env, obs_space=space, act_space=gym.spaces.Discrete(4))
    (backbone / "metrics.json").write_text(json.dumps({"settings": {"task": env, "seed": 3, "steps": 5}}))
    target = pretrained.add(backbone, "doors-s5", "memwm compare --task doors-keys-3", episodes=2, root=tmp_path / "p")
    [row] = pretrained.readme_rows(tmp_path / "p")
    assert (row["agent"], row["backbone"]) == ("world model", "s5")
    metric, claimed = pretrained.parse_score(row["score"])
    assert metric == "door_mse" and claimed > 0
    assert pretrained.within_tolerance(metric, claimed, pretrained.measure(target, 2)["score"])
    proc = memwm("imagine", "--run", str(target), "--episodes", "1", "--context", "3", "--horizon", "2", "--device", "cpu")
    assert proc.returncode == 0 and (target / "imagine.gif").exists(), proc.stderr
    (target / "model.pt").write_bytes((target / "model.pt").read_bytes() + b"x")
    proc = memwm("imagine", "--run", str(target), "--device", "cpu")
    assert proc.returncode == 2 and "model.pt was edited" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
