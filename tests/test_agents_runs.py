"""Reading run folders (agents/runs.py): the world model and the trained policy of a `memwm train` run."""

from __future__ import annotations

import pytest
import torch

import world_models
from agents import checkpoint
from agents.config import TrainConfig, save_yaml
from agents.runs import build_dreamer, identity, load_run_policy, load_run_world_model

CPU = torch.device("cpu")


def tiny_run(tmp_path, agent: str = "dreamer") -> tuple[TrainConfig, object]:
    config = TrainConfig(
        env="memory/doors-keys-3",
        backbone="rssm",
        preset="tiny",
        run=str(tmp_path / "run"),
        agent=agent,
        wm=world_models.WorldModelConfig.preset("tiny"),
    )
    save_yaml(config, tmp_path / "run" / "config.yaml")
    return config, tmp_path / "run"


def test_the_policy_of_a_train_run_is_its_actor_on_world_model_features(tmp_path):
    config, run = tiny_run(tmp_path)
    torch.manual_seed(0)
    agent, _ = build_dreamer(config, CPU)
    with torch.no_grad():
        for p in agent.actor.parameters():  # weights no freshly built actor has
            p.add_(torch.randn_like(p))
    checkpoint.save(run / "checkpoints", 7, {"agent": agent.state_dict(), "identity": identity(config)})
    loaded = load_run_world_model(run)
    policy = load_run_policy(loaded, CPU)
    feat = torch.randn(5, agent.wm.feat_dim)
    with torch.no_grad():
        expected = agent.actor(feat).mode()
    assert torch.equal(policy(feat), expected)
    assert expected.sum(-1).eq(1).all()  # one-hot actions of the task's Discrete space


def test_a_ppo_run_has_no_world_model_to_imagine_with(tmp_path):
    from agents import ppo_agent

    config, run = tiny_run(tmp_path, agent="ppo")
    learner = ppo_agent.build(config, CPU)
    checkpoint.save(run / "checkpoints", 3, {"agent": learner.state_dict(), "identity": ppo_agent.identity(config)})
    with pytest.raises(ValueError, match="learns no world model"):
        load_run_world_model(run)
