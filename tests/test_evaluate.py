"""agents/evaluate.py: on a task with a cue, the evaluation says whether the policy looked at it and what it made of it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from agents.actions import ActionCodec
from agents.common import cue_scalars
from agents.evaluate import run_episodes

FORWARD, LEFT = 2, 0  # minigrid/memory-s*'s actions


class Scripted:
    """An agent behind run_episodes' interface that plays a fixed action sequence, then forward for ever."""

    def __init__(self, actions: list[int]):
        self.codec = ActionCodec(gym.spaces.Discrete(3))
        self.wm = SimpleNamespace(initial_state=lambda n, device: 0)
        self.actions = actions

    def policy(self, state, obs, prev_action, is_first, explore=False):
        state = 0 if bool(is_first[0]) else state + 1
        action = self.actions[state] if state < len(self.actions) else FORWARD
        return torch.eye(3)[action][None], state


@pytest.mark.parametrize("seed", [0, 1])
def test_cue_scalars_split_the_success_rate_by_whether_the_cue_was_seen(seed):
    rng = np.random.default_rng(seed)
    n = 40
    seen, success = rng.random(n) < 0.6, (rng.random(n) < 0.5).astype(float)
    out = cue_scalars(list(seen), list(success))
    assert out["eval/cue_seen"] == pytest.approx(seen.mean())
    assert out["eval/success_seen"] == pytest.approx(success[seen].mean())
    assert out["eval/success_unseen"] == pytest.approx(success[~seen].mean())
    assert "eval/success_unseen" not in cue_scalars([True] * n, list(success))  # no episode to average over
    assert set(cue_scalars(list(seen), [math.nan] * n)) == {"eval/cue_seen"}  # a task without a goal
    assert cue_scalars([], [1.0]) == {}  # a task without a cue


def test_an_agent_that_never_turns_sees_the_minigrid_cue_only_when_it_starts_beside_it():
    """minigrid/memory-s7 starts the agent facing away from the start room's object unless it starts next to it:
    walking straight on sees the cue in exactly those episodes, turning around first sees it in every one."""
    episodes, seed = 12, 100
    starts = []
    for i in range(episodes):
        env = envs.make("minigrid/memory-s7")
        env.reset(seed=seed + i)
        starts.append(int(env.unwrapped.env.agent_pos[0]) == 1)
    assert 0 < sum(starts) < episodes
    straight = run_episodes(Scripted([]), "minigrid/memory-s7", {}, episodes, seed, torch.device("cpu"))
    assert straight.cue_seen == starts
    around = run_episodes(Scripted([LEFT, LEFT]), "minigrid/memory-s7", {}, episodes, seed, torch.device("cpu"))
    assert all(around.cue_seen)
    assert cue_scalars(straight.cue_seen, straight.successes)["eval/cue_seen"] == pytest.approx(np.mean(starts))


class Always:
    """A vectorised policy (agents.icrl.Policy) that takes one action in every env."""

    def __init__(self, action: int):
        self.action = action

    def act(self, obs):
        return np.full(len(obs["is_first"]), self.action)


def test_trials_keep_how_each_episode_ended_where_each_env_ended_it():
    """run_trials (PPO's evaluation) keeps each trial's last success/cue info: the upper arm of memory/distracting-8
    succeeds exactly when the cue says upper (0); walking straight on in minigrid/memory-s7 sees the cue only
    from the start beside it, and never succeeds."""
    from agents import icrl

    played = icrl.run_trials(Always(0), "memory/distracting-8", trials=10, seed=40, num_envs=3)
    assert len(played.final_info) == 10
    cues = [info["cue"] for info in played.final_info]
    assert set(cues) == {0, 1}
    for info, ret in zip(played.final_info, played.returns.sum(-1)):
        assert (ret > 0) == (info["cue"] == 0) and info["cue_step"] == 0  # no `success` flag: the spec reads the return
        assert envs.spec("memory/distracting-8").success(info, ret) == float(info["cue"] == 0)
    straight = icrl.run_trials(Always(FORWARD), "minigrid/memory-s7", trials=6, seed=7, num_envs=2)
    for rank, info in enumerate(straight.final_info):  # trials come round-robin over the envs, seeded seed + i
        env = envs.make("minigrid/memory-s7")
        env.reset(seed=7 + rank % 2)
        if rank < 2:  # each env's first trial starts from its seed's reset
            assert (info["cue_step"] >= 0) == (int(env.unwrapped.env.agent_pos[0]) == 1)
        assert info["success"] is False


def test_ppo_evaluation_reports_success_and_the_cue_on_a_goal_task_with_a_cue(monkeypatch):
    from agents import icrl, ppo_agent
    from agents.config import TrainConfig

    played = icrl.Trials(
        reward=np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]]),
        episode=np.zeros((3, 2), int),
        action=np.zeros((3, 2), int),
        final_info=[{"success": True, "cue_step": 0}, {"success": False, "cue_step": -1}, {"success": True, "cue_step": -1}],
    )
    monkeypatch.setattr(icrl, "run_trials", lambda *a, **k: played)
    summary = ppo_agent.evaluate(None, TrainConfig(env="minigrid/memory-s7", agent="ppo"), trials=3, seed=0)
    assert summary["eval/return"] == pytest.approx(2 / 3) and summary["eval/success"] == pytest.approx(2 / 3)
    assert summary["eval/cue_seen"] == pytest.approx(1 / 3)
    assert summary["eval/success_seen"] == 1.0 and summary["eval/success_unseen"] == 0.5
    vector = ppo_agent.evaluate(None, TrainConfig(env="pomdp/cartpole-positions", agent="ppo"), trials=3, seed=0)
    assert set(vector) == {"eval/return", "eval/length"}  # no goal, no cue
