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
from agents.evaluate import EvalResult, cue_scalars, run_episodes

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
    result = EvalResult([0.0] * n, [1] * n, list(success), cue_seen=list(seen))
    out = cue_scalars(result)
    assert out["eval/cue_seen"] == pytest.approx(seen.mean())
    assert out["eval/success_seen"] == pytest.approx(success[seen].mean())
    assert out["eval/success_unseen"] == pytest.approx(success[~seen].mean())
    everyone = EvalResult([0.0] * n, [1] * n, list(success), cue_seen=[True] * n)
    assert "eval/success_unseen" not in cue_scalars(everyone)  # no episode to average over
    no_goal = EvalResult([0.0] * n, [1] * n, [math.nan] * n, cue_seen=list(seen))
    assert set(cue_scalars(no_goal)) == {"eval/cue_seen"}
    assert cue_scalars(EvalResult([0.0], [1], [1.0])) == {}  # a task without a cue


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
    assert cue_scalars(straight)["eval/cue_seen"] == pytest.approx(np.mean(starts))
