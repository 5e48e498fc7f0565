"""The learning chain: each link's score where the link holds and where it is broken (world_models/chain.py),
the labelled episodes and the scalars (agents/chain.py), and a tiny training run that logs them."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import envs
from agents import chain
from agents.config import TrainConfig, resolve
from agents.dreamer import ActionDist
from agents.runs import build_dreamer
from world_models.chain import first_action_returns, majority_rate, probe_score, rank_score, sign_score
from world_models.distributions import OneHotCategorical
from world_models.state import State


def labelled_features(seed: int, holds: bool, N: int = 16, T: int = 24, F: int = 12, classes: int = 4):
    """(features (N, T, F), labels (N, T)): the label is written into features (holds) or absent (pure noise);
    a third of the steps carry no label (-1)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (N, T), generator=g)
    x = torch.randn(N, T, F, generator=g)
    if holds:
        x[..., :classes] += 6.0 * torch.nn.functional.one_hot(labels, classes)
    labels[torch.rand(N, T, generator=g) < 1 / 3] = -1
    return x, labels


# --------------------------------------------------------------------------- link 1: the probes


@pytest.mark.parametrize("seed", range(3))
def test_probe_reads_a_symbol_the_features_hold(seed):
    score = probe_score(*labelled_features(seed, holds=True))
    assert score.accuracy > 0.95 and score.count > 100
    assert score.chance < 0.5


@pytest.mark.parametrize("seed", range(3))
def test_probe_of_noise_scores_about_the_majority_rate(seed):
    x, labels = labelled_features(seed, holds=False)
    score = probe_score(x, labels)
    assert abs(score.accuracy - score.chance) < 0.15
    assert score.chance == pytest.approx(majority_rate(labels[len(labels) // 2 :][labels[len(labels) // 2 :] >= 0]))


def test_probe_fits_on_the_first_half_of_the_episodes_and_scores_the_rest():
    x, labels = labelled_features(0, holds=True)
    fit_only = labels.clone()
    fit_only[8:] = -1  # nothing to score
    assert probe_score(x, fit_only).count == 0 and math.isnan(probe_score(x, fit_only).accuracy)
    # a swapped label on the scored half only is read as the features say: wrong
    swapped = labels.clone()
    swapped[8:][swapped[8:] >= 0] = (swapped[8:][swapped[8:] >= 0] + 1) % 4
    assert probe_score(x, swapped).accuracy < 0.1
    with pytest.raises(ValueError, match="disagree"):
        probe_score(x[:, :5], labels)


# --------------------------------------------------------------------------- link 2: the reward's sign


def test_reward_head_that_knows_the_sign_scores_one_and_a_constant_one_the_majority_at_best():
    g = torch.Generator().manual_seed(0)
    reward = torch.where(torch.rand(200, generator=g) < 0.7, 1.0, -1.0) / 32
    reward[::5] = 0.0  # steps without a reward are not scored
    knows = sign_score(reward * 3 + 0.001 * torch.randn(200, generator=g) * (reward != 0), reward)
    positive = float((reward[reward != 0] > 0).double().mean())
    assert knows.accuracy == 1.0 and knows.count == 160
    assert knows.chance == pytest.approx(max(positive, 1 - positive))
    for constant in (0.0, -0.01, 0.01):
        score = sign_score(torch.full_like(reward, constant), reward)
        assert score.accuracy <= score.chance
    assert sign_score(torch.full_like(reward, 0.01), reward).accuracy == pytest.approx(positive)
    assert sign_score(reward, torch.zeros_like(reward)).count == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_success_against_a_failure_that_pays_nothing_is_told_apart_at_the_midpoint(seed):
    """minigrid/memory-*: the right object pays about 1, the wrong one 0 and ends the episode; both are scored."""
    g = torch.Generator().manual_seed(seed)
    n = 300
    success = torch.rand(n, generator=g) < 0.4
    reward = torch.where(success, 1.0 - 0.5 * torch.rand(n, generator=g), torch.zeros(n))  # (0.5, 1] or 0
    ended = success | (torch.rand(n, generator=g) < 0.5)  # the scored steps: every success, some failures
    middle = (float(reward[ended].max()) + 0.0) / 2
    noise = 0.1 * torch.randn(n, generator=g)
    knows = sign_score(reward + noise, reward, ended)
    expected = float((((reward + noise) > middle) == (reward > middle))[ended].double().mean())
    assert knows.accuracy == pytest.approx(expected) and knows.accuracy > 0.9 and knows.count == int(ended.sum())
    positive = float(success[ended].double().mean())
    assert knows.chance == pytest.approx(max(positive, 1 - positive))
    # a head that predicts a little above 0 for every outcome says "success" everywhere: the sign alone would call it right
    always = sign_score(torch.full_like(reward, 0.05), reward, ended)
    assert always.accuracy == pytest.approx(1 - positive) and always.accuracy <= always.chance
    assert sign_score(reward, reward).count == int(success.sum())  # by default the nonzero rewards only


# --------------------------------------------------------------------------- link 3: imagination ranks the answer


def test_rank_scores_hits_and_splits_ties():
    returns = torch.tensor([[0.0, 1.0, 0.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0], [1.0, 0.0, 3.0]])
    answer = torch.tensor([1, 0, 2, 0])
    score = rank_score(returns, answer)
    assert score.accuracy == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert score.chance == pytest.approx(1 / 3)
    assert rank_score(torch.zeros(10, 4), torch.arange(10) % 4).accuracy == pytest.approx(1 / 4)  # knowing nothing


class PlantedWorldModel:
    """A world model of the WorldModel interface whose start state h is the right answer, one-hot (M, A): an
    imagined step's features are (h, the action taken), its reward +1 for the right action and -1 for a
    wrong one (`knows`), or 0.5 whatever the action (not); continue 1."""

    def __init__(self, num_actions: int, knows: bool):
        self.A, self.knows = num_actions, knows

    def imagine(self, start: State, policy, horizon: int, sample: bool = True):
        feats, acts = [torch.cat([start.h, torch.zeros_like(start.h)], -1)], []
        for _ in range(horizon):
            acts.append(policy(feats[-1]))
            feats.append(torch.cat([start.h, acts[-1]], -1))
        acts.append(torch.zeros_like(acts[-1]))
        return SimpleNamespace(features=torch.stack(feats, 1), actions=torch.stack(acts, 1))

    def reward(self, feat, actions):  # reads the action from the step's own features ("next")
        right, action = feat[..., : self.A], feat[..., self.A :]
        if not self.knows:
            return torch.full(feat.shape[:-1], 0.5)
        return 2 * (right * action).sum(-1) - action.sum(-1)

    def cont(self, feat):
        return torch.ones(feat.shape[:-1])


def planted_starts(M: int, A: int, seed: int = 0):
    answer = torch.randint(0, A, (M,), generator=torch.Generator().manual_seed(seed))
    h = torch.nn.functional.one_hot(answer, A).float()
    return State(h, torch.zeros(M, 1), torch.zeros(M, A), {}), answer


def test_imagination_whose_reward_favours_the_right_action_ranks_it_first():
    A, H, gamma = 4, 5, 0.9
    start, answer = planted_starts(64, A)
    fixed = lambda feat: torch.nn.functional.one_hot(torch.zeros(len(feat), dtype=torch.long), A).float()  # noqa: E731
    returns = first_action_returns(PlantedWorldModel(A, knows=True), start, fixed, A, H, gamma)
    assert returns.shape == (64, A)
    assert rank_score(returns, answer).accuracy == 1.0
    # the return is r_1 + gamma r_2 + ... : the first action's +-1, then the actor's action 0 for H - 1 steps
    later = torch.where(answer == 0, 1.0, -1.0) * sum(gamma**i for i in range(1, H))
    expected = torch.where(torch.nn.functional.one_hot(answer, A).bool(), 1.0, -1.0) + later[:, None]
    torch.testing.assert_close(returns, expected)
    # a value bootstraps after the horizon, discounted H times
    value = lambda feat: torch.full(feat.shape[:-1], 2.0)  # noqa: E731
    bootstrapped = first_action_returns(PlantedWorldModel(A, knows=True), start, fixed, A, H, gamma, value)
    torch.testing.assert_close(bootstrapped, expected + 2.0 * gamma**H)


def test_imagination_whose_reward_ignores_the_action_ranks_at_chance():
    A = 4
    start, answer = planted_starts(64, A, seed=1)
    actor = lambda feat: torch.nn.functional.one_hot(torch.full((len(feat),), 2), A).float()  # noqa: E731
    returns = first_action_returns(PlantedWorldModel(A, knows=False), start, actor, A, 3, 0.99)
    assert rank_score(returns, answer).accuracy == pytest.approx(1 / A)


def test_a_fresh_world_model_predicts_no_reward_and_ranks_at_chance():
    """DreamerV3's reward head starts at zero: every first action's imagined return ties."""
    learner = tiny_learner("memory/recall-k2", "s5", zero_reward_head=True)
    start = learner.wm.initial_state(6)
    returns = first_action_returns(learner.wm, start, lambda f: learner.actor(f).mode(), 4, 3, 0.99)
    assert returns.shape == (6, 4)
    assert rank_score(returns, torch.arange(6) % 4).accuracy == pytest.approx(1 / 4)


# --------------------------------------------------------------------------- the labelled episodes and the scalars


def tiny_learner(env: str, backbone: str, zero_reward_head: bool = False):
    """A fresh Dreamer learner; zero_reward_head: its reward head's output layer zeroed (DreamerV3's start, where
    every reward predicts 0; memwm's default starts it random)."""
    torch.manual_seed(0)
    learner = build_dreamer(resolve(TrainConfig(env=env, backbone=backbone, preset="tiny")), torch.device("cpu"))[0]
    if zero_reward_head:
        torch.nn.init.zeros_(learner.wm.reward_head.net[-1].weight)
    return learner


def test_recall_episodes_carry_the_answer_and_the_symbol_k_steps_before_h():
    k = 3
    data = chain.play_labelled(f"memory/recall-k{k}", {}, 4, seed=7)
    again = chain.play_labelled(f"memory/recall-k{k}", {}, 4, seed=7)
    env = envs.make(f"memory/recall-k{k}").unwrapped
    positive = []
    for i, episode in enumerate(data.episodes):
        np.testing.assert_array_equal(episode["action"], again.episodes[i]["action"])  # deterministic given the seed
        env.reset(seed=7 + i)
        T = len(episode["reward"])
        assert T == env.length + 1 and data.num_actions == 4
        need = data.need[i]
        np.testing.assert_array_equal(data.seen[i], env.stream)  # observation t shows symbol t
        np.testing.assert_array_equal(need[k : env.length], env.stream[: env.length - k])  # the answer: symbol t - k
        assert (need[:k] == -1).all() and need[-1] == -1
        np.testing.assert_array_equal(data.answer[i], need)  # every query step's action is scored
        back = data.back[i]
        taken = episode["action"].argmax(-1)
        for t in range(T):
            if back[t] >= 0:  # the symbol the reward at t judges: observation t - 1 - k's
                assert back[t] == env.stream[t - 1 - k]
                assert (episode["reward"][t] > 0) == (taken[t - 1] == back[t])
        assert (back[: k + 1] == -1).all() and (back >= 0).sum() > 0
        positive += list(episode["reward"][episode["reward"] != 0] > 0)
    assert 0.3 < np.mean(positive) < 0.7  # the scripted share balances right and wrong answers
    assert chain.balanced_share(4) == pytest.approx(1 / 3) and chain.balanced_share(2) == 0.0


def test_cue_episodes_need_the_cue_after_it_was_seen_and_score_the_decision():
    data = chain.play_labelled("memory/distracting-8", {}, 6, seed=3)
    assert data.back is None and data.num_actions == 2
    for episode, need, answer in zip(data.episodes, data.need, data.answer):
        T = len(episode["reward"])
        assert (need[1 : T - 1] == episode["cue"]).all() and need[0] == -1 and need[-1] == -1
        decision = np.flatnonzero(answer >= 0)
        assert decision.tolist() == [T - 2] and answer[T - 2] == episode["cue"]  # the junction, the cue's arm


@pytest.mark.parametrize("env_id", ["memory/distracting-8", "minigrid/memory-s7"])
def test_the_latent_is_asked_for_the_cue_where_the_observation_shows_it(env_id):
    data = chain.play_labelled(env_id, {}, 4, seed=3)
    shown = 0
    for i, (episode, seen) in enumerate(zip(data.episodes, data.seen)):
        T = len(episode["reward"])
        replay = envs.make(env_id)  # the same episode again, asked at every step whether the cue is in view
        _, info = replay.reset(seed=3 + i)
        visible = [info["cue_visible"]]
        for action in episode["action"][: T - 1].argmax(-1):  # action t leads to observation t + 1
            visible.append(replay.step(int(action))[4]["cue_visible"])
        np.testing.assert_array_equal(seen >= 0, visible)
        assert (seen[seen >= 0] == episode["cue"]).all() and sum(visible) < T
        shown += sum(visible)
    assert shown > 0


def test_a_cue_seen_only_at_its_first_step_is_asked_for_there_and_cue_tasks_fit_on_more_episodes(monkeypatch):
    real_info = chain.LastInfo.reset

    def no_visible(self, **kwargs):  # an env that says when the cue was first seen but not where it is in view
        obs, info = real_info(self, **kwargs)
        self.visible = [None]
        return obs, info

    monkeypatch.setattr(chain.LastInfo, "reset", no_visible)
    data = chain.play_labelled("memory/distracting-8", {}, 3, seed=5)
    for episode, seen in zip(data.episodes, data.seen):
        assert seen[0] == episode["cue"] and (seen[1:] == -1).all()  # cue_step 0
    assert chain.CUE_EPISODES >= 4 * chain.EPISODES


def test_minigrid_episodes_look_at_the_cue_then_end_right_or_wrong_by_a_coin_and_score_the_last_choice():
    data = chain.play_labelled("minigrid/memory-s7", {}, 12, seed=21)
    assert data.num_actions == 3
    outcomes = []
    for i, (episode, need, answer) in enumerate(zip(data.episodes, data.need, data.answer)):
        T = len(episode["reward"])
        assert episode["is_terminal"][-1] and not episode["is_terminal"][:-1].any()  # every episode ends on a choice
        outcomes.append(bool(episode["reward"][-1] > 0))
        assert np.flatnonzero(answer >= 0).tolist() == [T - 2]  # the step into one of the two cells is scored
        env = envs.make("minigrid/memory-s7")  # the right action there is the scripted policy's, replayed
        env.reset(seed=21 + i)
        for action in episode["action"][: T - 2].argmax(-1):
            env.step(int(action))
        assert answer[T - 2] == env.unwrapped.scripted_action()
        took = int(episode["action"][T - 2].argmax())
        assert (took == answer[T - 2]) == outcomes[-1]  # a wrong end was reached by another action than the right one
        assert (need[need >= 0] == episode["cue"]).all() and (need >= 0).sum() >= T - 4  # it looked first
    assert 0 < sum(outcomes) < len(outcomes)  # both ends


def test_the_chain_is_tracked_on_tasks_with_a_known_memory_dependency():
    assert chain.tracks("memory/recall-k8") and chain.tracks("memory/count-16") and chain.tracks("memory/distracting-8")
    assert not chain.tracks("pomdp/cartpole-positions") and not chain.tracks("memory/rooms-2") and not chain.tracks("nonsense")


def test_measure_logs_every_link_deterministically_without_drawing_from_the_global_generators():
    learner = tiny_learner("memory/recall-k2", "s5", zero_reward_head=True)
    torch.manual_seed(1)
    np.random.seed(1)
    before = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    scalars = chain.measure(learner, "memory/recall-k2", {}, seed=11, device=torch.device("cpu"), episodes=8)
    assert torch.equal(torch.random.get_rng_state(), before[0]) and (np.random.get_state()[1] == before[1]).all()
    assert set(scalars) == set(chain.SCALARS)
    assert scalars == chain.measure(learner, "memory/recall-k2", {}, seed=11, device=torch.device("cpu"), episodes=8)
    for name, value in scalars.items():
        assert math.isfinite(value) and (name == "chain/actor_entropy" or 0 <= value <= 1), name
    assert scalars["chain/imagined_rank"] == pytest.approx(1 / 4)  # a zeroed reward head predicts 0 everywhere
    assert 0 < scalars["chain/actor_entropy"] <= math.log(4) + 1e-6
    assert chain.measure(learner, "pomdp/cartpole-positions", {}, seed=0, device=torch.device("cpu")) == {}


class FixedActor(torch.nn.Module):
    """An actor that prefers action `prefer` by `margin` logits whatever it reads (0: uniform)."""

    def __init__(self, actions: int, prefer: int, margin: float):
        super().__init__()
        self.logits = torch.zeros(actions)
        self.logits[prefer] = margin

    def forward(self, feat):
        return ActionDist([OneHotCategorical(self.logits.expand(*feat.shape[:-1], -1))])


@pytest.mark.parametrize("margin", [0.0, 5.0, 10.0])
def test_the_actor_link_scores_the_actors_mode_at_the_query_states_against_the_right_action(margin):
    learner = tiny_learner("memory/recall-k2", "s5")
    learner.actor = FixedActor(4, prefer=2, margin=margin)
    scalars = chain.measure(learner, "memory/recall-k2", {}, seed=5, device=torch.device("cpu"), episodes=8)
    data = chain.play_labelled("memory/recall-k2", {}, 8, seed=5)  # the query steps measure scores, as it picks them
    T = max(len(a) for a in data.answer)
    answer = torch.as_tensor(chain.pad_episodes(data.answer, T, -1))
    rows = (answer >= 0).nonzero()
    rows = rows[torch.linspace(0, len(rows) - 1, chain.STARTS).long()] if len(rows) > chain.STARTS else rows
    right = answer[rows[:, 0], rows[:, 1]]
    assert scalars["chain/actor_right_chance"] == pytest.approx(1 / 4)
    # a uniform actor ties every action (1/4 each); one that always prefers action 2 is right where the answer is 2
    expected = 1 / 4 if margin == 0 else float((right == 2).double().mean())
    assert 0 < float((right == 2).double().mean()) < 1
    assert scalars["chain/actor_right"] == pytest.approx(expected)
    # the learner's unimix floor is 0.01 / 4 = 2.5e-3; the other actions' softmax 1 / (3 + e^margin): 0.25, 6.6e-3
    # (above the floor) and 4.5e-5 (below it, where the right action is not 2)
    below = float((right != 2).double().mean()) if margin == 10 else 0.0
    assert learner.config.unimix == 0.01 and scalars["chain/right_below_floor"] == pytest.approx(below)


# --------------------------------------------------------------------------- end to end


def test_training_on_recall_logs_the_chain_and_inspect_draws_it(tmp_path, capsys):
    from agents.commands.inspect import inspect
    from agents.train import train

    run = tmp_path / "recall"
    train(
        TrainConfig(
            env="memory/recall-k2",
            backbone="s5",
            preset="tiny",
            steps=200,
            num_envs=2,
            prefill=60,
            batch_size=2,
            seq_len=8,
            train_ratio=2.0,
            eval_every=0,
            eval_episodes=1,
            video_every=100,
            log_every=50,
            checkpoint_every=100,
            tensorboard=False,
            threads=1,
            run=str(run),
        )
    )
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "chain/h_probe" in r]
    assert [r["step"] for r in logged] == [100, 200]  # at the picture cadence and at the end
    assert set(chain.SCALARS) <= set(logged[-1])
    written = inspect(run=run, episodes=4, device="cpu")
    assert {"chain.png", "chain.json"} <= {p.name for p in written}
    record = json.loads((run / "inspect" / "chain.json").read_text())
    assert record["latest"]["chain/h_probe"] == logged[-1]["chain/h_probe"]
    assert [s for s, _ in record["curves"]["chain/reward_sign"]] == [100, 200]
    assert "chain/imagined_rank" in capsys.readouterr().out
