"""Resume equals never stopping: a run stopped at a checkpoint and resumed holds, at its next checkpoint, the same
weights, optimiser and normaliser states, random states and counters, bit for bit, as the run that never stopped.

Both runs restart their environments' episodes at every checkpoint (exact_resume): environments cannot be
restored mid-episode, so the episodes unfinished at a checkpoint are dropped on both paths alike.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from agents.config import PPOConfig, TrainConfig
from agents.train import train

K = 100  # the checkpoint interval, in env steps
FAST = dict(
    preset="tiny",
    num_envs=2,
    prefill=40,
    batch_size=2,
    seq_len=8,
    train_ratio=4.0,
    eval_every=0,
    eval_episodes=1,
    video_every=-1,
    log_every=20,
    checkpoint_every=K,
    tensorboard=False,
    threads=1,
    device="cpu",
    exact_resume=True,
)


def _differences(a, b, where="checkpoint") -> list[str]:
    """Every place where two checkpoints differ: tensors and arrays bit for bit, everything else by ==."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(a, np.ndarray):
        return [] if np.array_equal(a, b) else [f"{where}: arrays differ"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _checkpoint(run, step):
    path = run / "checkpoints" / f"ckpt-{step:09d}.pt"
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("agent", ["dreamer", "ppo"])
def test_a_resumed_run_equals_the_run_that_never_stopped_bit_for_bit(tmp_path, agent):
    extra = dict(env="memory/distracting-8", backbone="s5")
    if agent == "ppo":
        extra = dict(env="memory/distracting-8", backbone="rssm", agent="ppo", ppo=PPOConfig(rollout=10, epochs=2, minibatches=2))
    config = TrainConfig(seed=3, **FAST, **extra)
    random.seed(123)  # the global states before a run must not matter: the run seeds them
    train(dataclasses.replace(config, run=str(tmp_path / "straight"), steps=3 * K))
    np.random.seed(456)
    train(dataclasses.replace(config, run=str(tmp_path / "stopped"), steps=2 * K))
    train(dataclasses.replace(config, run=str(tmp_path / "stopped"), steps=3 * K))
    straight, resumed = _checkpoint(tmp_path / "straight", 3 * K), _checkpoint(tmp_path / "stopped", 3 * K)
    assert straight["counters"]["updates"] > 0
    # the stopped run made one more evaluation (its final one, on seeds of its own): it counts, so that no later
    # evaluation meets those episodes again; evaluations run with the random states put back and change nothing else
    assert resumed["counters"].pop("evaluations") == straight["counters"].pop("evaluations") + 1
    assert _differences(straight, resumed) == []


def test_the_comparison_can_fail(tmp_path):
    """The same check on two runs whose seeds differ finds the weights apart (the equality above means something)."""
    config = TrainConfig(env="memory/distracting-8", backbone="s5", steps=K, **FAST)
    train(dataclasses.replace(config, run=str(tmp_path / "a"), seed=0))
    train(dataclasses.replace(config, run=str(tmp_path / "b"), seed=1))
    found = _differences(_checkpoint(tmp_path / "a", K), _checkpoint(tmp_path / "b", K))
    assert any(".agent." in d for d in found) and any("rng" in d for d in found), found
