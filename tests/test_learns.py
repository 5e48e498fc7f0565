"""The learner learns: a tiny Dreamer with `memwm train`'s defaults, trained for a fixed number of environment
steps at a fixed seed, recalls a symbol one step back far above chance, and the same agent untrained does not.

memory/recall-k1 with 8 questions an episode: after each observation, name the symbol of the observation
before it (+1/8 if right, -1/8 if wrong). A policy that cannot remember earns -0.5 on average; over 64
evaluation episodes its mean has a standard error of about 0.04 (a single episode's spread is about 0.31),
so the bar of 0, twelve standard errors above chance, is a learned memory, not luck. CPU training is
deterministic: this is a step budget, not a timed test (about a minute on one core).
"""

from __future__ import annotations

import pytest

from agents.config import TrainConfig
from agents.train import train

BAR = 0.0  # chance is -0.5


def recall_k1(tmp_path, steps: int) -> TrainConfig:
    return TrainConfig(
        env="memory/recall-k1",
        env_options={"queries": 8},
        preset="tiny",
        steps=steps,
        prefill=500,
        num_envs=1,
        eval_every=0,
        eval_episodes=64,
        video_every=-1,
        tensorboard=False,
        threads=1,
        device="cpu",
        seed=0,
        run=str(tmp_path / f"recall-k1-{steps}"),
    )


@pytest.mark.slow
def test_a_tiny_dreamer_learns_to_recall_the_symbol_one_step_back(tmp_path):
    untrained = train(recall_k1(tmp_path, steps=500))  # the prefill only: no update has run
    assert untrained["eval/return"] < BAR - 0.2
    trained = train(recall_k1(tmp_path, steps=3000))
    assert trained["eval/return"] > BAR, f"a tiny Dreamer did not learn memory/recall-k1 in 3,000 steps: {trained}"
