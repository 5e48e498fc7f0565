"""The whole loop on one environment of every family: training at preset tiny, a checkpoint, a resume, an
evaluation episode at the end of each, and an imagination picture (`memwm imagine`, while the run's lock is held).

The MuJoCo families (dmc/, dmc-pomdp/, memory-maze/) render every step on the CPU and their episodes run to
500-1000 steps (and a memory maze is built anew at every reset, seconds each); here they are cut to SHORT steps
by a time limit, which keeps every code path (pixel
observations with negative strides, continuous actions, truncation) and the test within seconds.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs.facts
from agents import checkpoint, runlock
from agents.cli import main
from agents.common import obs_to_torch
from agents.config import TrainConfig
from agents.logger import read_metrics
from agents.train import train

FAMILIES = [
    "memory/distracting-8",
    "pomdp/cartpole-positions",
    "minigrid/memory-s7",
    "dmc/cartpole-swingup",
    "dmc-pomdp/cartpole-swingup",
    "memory-maze/9x9",
    "icrl/bandit-5",
    "gym:CartPole-v1",
]
CUT = ("dmc/", "dmc-pomdp/", "memory-maze/")
SHORT = 60
FAST = dict(
    preset="tiny",
    num_envs=1,
    prefill=40,
    batch_size=2,
    seq_len=8,
    train_ratio=2.0,
    eval_every=0,
    eval_episodes=1,
    video_every=-1,
    log_every=50,
    checkpoint_every=60,
    tensorboard=False,
    threads=1,
    device="cpu",
)


@pytest.fixture
def short_episodes(monkeypatch):
    real = envs.facts.Spec.cls

    def cls(spec):
        built = real(spec)
        if not spec.id.startswith(CUT):
            return built
        return lambda **kwargs: gym.wrappers.TimeLimit(built(**kwargs), max_episode_steps=SHORT)

    monkeypatch.setattr(envs.facts.Spec, "cls", cls)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", FAMILIES)
def test_train_checkpoint_resume_evaluate_and_imagine_on_every_family(tmp_path, capsys, short_episodes, env_id):
    run = tmp_path / "run"
    config = TrainConfig(env=env_id, run=str(run), steps=120, **FAST)
    first = train(config)  # ends with a checkpoint, then an evaluation episode
    assert np.isfinite(first["eval/return"])
    assert [p.name for p in checkpoint.checkpoints(run / "checkpoints")] == ["ckpt-000000060.pt", "ckpt-000000120.pt"]
    capsys.readouterr()
    summary = train(dataclasses.replace(config, steps=180))
    assert f"resuming {run} from ckpt-000000120.pt at step 120" in capsys.readouterr().err
    payload, _ = checkpoint.load(run / "checkpoints")
    assert np.isfinite(summary["eval/return"]) and payload["counters"]["step"] == 180 and payload["counters"]["updates"] > 0
    records = read_metrics(run)
    assert max(r["step"] for r in records) == 180 and sum("eval/return" in r for r in records) == 2
    with runlock.acquire(run):  # imagine only reads: a run in use by its trainer can be looked at
        main(["imagine", "--run", str(run), "--episodes", "1", "--device", "cpu", "--out", str(tmp_path / "imagine.png")])
    assert "imagined" in capsys.readouterr().out and (tmp_path / "imagine.png").stat().st_size > 0
    with np.load(next((run / "replay").glob("ep-*.npz"))) as episode:
        if "image" in episode.files:
            assert (tmp_path / "imagine.gif").stat().st_size > 0


def test_observations_with_negative_strides_become_tensors():
    """dm_control renders its pixels upside down into a view with a negative stride; torch cannot wrap such arrays."""
    image = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    flipped = image[:, ::-1]
    assert flipped.strides[1] < 0
    got = obs_to_torch({"image": flipped, "vector": np.arange(6, dtype=np.float32)[::-2]}, torch.device("cpu"))
    assert torch.equal(got["image"], torch.as_tensor(np.ascontiguousarray(flipped)))
    assert got["vector"].tolist() == [5.0, 3.0, 1.0]
