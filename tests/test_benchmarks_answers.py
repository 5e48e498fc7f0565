"""benchmarks.answers: a trained Dreamer's answers on a stream task counted by the right answer, against the episodes'
own answers, and the share of states where the right answer is below the actor's unimix floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from benchmarks import answers
from tests.test_chain import FixedActor, tiny_learner

EPISODES = 6


def reference_answers(env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Every scored step's right answer over the episodes (the stream is drawn at reset, whatever is played)."""
    env = envs.make(env_id)
    out = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        task = env.unwrapped
        out.append(task.answers[task.first_query : task.length])
    env.close()
    return np.concatenate(out)


@pytest.mark.parametrize("margin", [0.5, 10.0])
def test_an_actor_that_always_names_2_is_right_exactly_where_the_answer_is_2(margin):
    learner = tiny_learner("memory/recall-k2", "s5")
    learner.actor = FixedActor(4, prefer=2, margin=margin)
    found = answers.answers(learner, "memory/recall-k2", {}, EPISODES, seed=40)
    right = reference_answers("memory/recall-k2", EPISODES, seed=40)
    assert {int(k): v["count"] for k, v in found.items()} == {a: int((right == a).sum()) for a in np.unique(right)}
    for key, row in found.items():
        assert row["taken"] == [0, 0, row["count"], 0]  # the mode is 2 everywhere
        assert row["right"] == (1.0 if key == "2" else 0.0)
        # the floor is 0.01 / 4; the other actions' softmax 1 / (3 + e^margin): 0.23 above it, 4.5e-5 below it
        assert row["below_floor"] == (1.0 if margin == 10 and key != "2" else 0.0)


def test_the_one_step_values_are_scored_at_every_scored_step_against_its_right_answer(monkeypatch):
    from agents import dreamer

    learner = tiny_learner("memory/recall-k2", "s5")
    seen = []

    def q_of(wm, start, actor, num_actions, horizon, gamma, value=None):  # action 1 is the best everywhere
        seen.append(start.batch_size)
        assert horizon == 1 and num_actions == 4 and gamma == learner.config.gamma and value is not None
        return torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(start.batch_size, 4)

    monkeypatch.setattr(dreamer, "first_action_returns", q_of)
    found = answers.answers(learner, "memory/recall-k2", {}, EPISODES, seed=40)
    assert sum(seen) == sum(row["count"] for row in found.values())  # every scored step, once
    assert {key: row["q_best"] for key, row in found.items()} == {key: float(key == "1") for key in found}


def test_a_task_without_one_right_answer_per_action_is_refused():
    learner = tiny_learner("memory/recall-k2", "s5")
    with pytest.raises(ValueError, match="not a stream task"):
        answers.answers(learner, "pomdp/cartpole-positions", {}, 1, seed=0)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="give the run folders"):
        answers.main(answers.Args(runs=[], results=tmp_path))
    with pytest.raises(ValueError, match="not a run folder"):
        answers.main(answers.Args(runs=[tmp_path / "nowhere"], results=tmp_path))
    assert not any(tmp_path.iterdir())
