"""In-context evaluation: return by episode index, gain, regret, the bandit baselines and the plot."""

import numpy as np
import pytest

from agents.icrl import UCB, ThompsonSampling, Trials, bandit_metrics, in_context_metrics, plot


def random_trials(n=5, episodes=4, length=3, seed=0, arms=None) -> Trials:
    rng = np.random.default_rng(seed)
    T = episodes * length
    episode = np.repeat(np.arange(episodes), length)[None].repeat(n, 0)
    reward = rng.normal(size=(n, T))
    action = rng.integers(0, arms or 3, size=(n, T))
    means = rng.uniform(size=(n, arms)) if arms else None
    return Trials(reward=reward, episode=episode, action=action, arm_means=means)


def test_returns_sum_rewards_by_episode_index():
    t = random_trials()
    expected = np.zeros((5, 4))
    for i in range(5):
        for s in range(12):
            expected[i, t.episode[i, s]] += t.reward[i, s]
    np.testing.assert_allclose(t.returns, expected)


def test_in_context_metrics_hand_case():
    # two trials of 8 one-step episodes with rewards 1..8 and 3..10: mean return by episode 2..9
    reward = np.array([np.arange(1, 9), np.arange(3, 11)], float)
    t = Trials(reward=reward, episode=np.arange(8)[None].repeat(2, 0), action=np.zeros((2, 8), int))
    m = in_context_metrics(t)
    assert m["icrl/return_ep01"] == 2.0 and m["icrl/return_ep08"] == 9.0
    assert m["icrl/trial_return"] == (36 + 52) / 2
    assert m["icrl/gain"] == (8.0 + 9.0) / 2 - 2.0  # last quarter (2 episodes) minus the first
    assert m["icrl/later_over_first"] == np.mean([4, 5, 6, 7, 8, 9]) / 2.0


def test_regret_hand_case():
    t = Trials(reward=np.zeros((1, 3)), episode=np.zeros((1, 3), int), action=np.array([[0, 2, 1]]), arm_means=np.array([[0.2, 0.9, 0.5]]))
    np.testing.assert_allclose(t.regret(), [[0.7, 0.4, 0.0]])
    no_means = Trials(reward=np.zeros((1, 3)), episode=np.zeros((1, 3), int), action=np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="arm_means"):
        no_means.regret()


def test_bandit_metrics_refuse_baselines_on_other_trials():
    a, b = random_trials(arms=3, seed=0), random_trials(arms=3, seed=1)
    with pytest.raises(ValueError, match="arm means"):
        bandit_metrics(a, b, a)
    m = bandit_metrics(a, a, a)
    assert m["icrl/regret"] == m["icrl/regret_thompson"] == m["icrl/regret_ucb"]
    assert m["icrl/return_over_thompson"] == pytest.approx(1.0)


def simulate(policy, means: np.ndarray, pulls: int, seed: int = 0) -> np.ndarray:
    """Run `policy` on Bernoulli bandits with `means` (N, k), one trial of `pulls`; return the actions (N, pulls)."""
    rng = np.random.default_rng(seed)
    N = len(means)
    actions = []
    for t in range(pulls):
        a = policy.act({"is_first": np.full(N, t == 0)})
        r = (rng.uniform(size=N) < means[np.arange(N), a]).astype(float)
        policy.observe(a, r)
        actions.append(a)
    return np.stack(actions, 1)


@pytest.mark.parametrize("make", [lambda: ThompsonSampling(3, 2, seed=0), lambda: UCB(3, 2)], ids=["thompson", "ucb"])
def test_baselines_find_the_best_arm_and_forget_it_at_a_new_trial(make):
    policy = make()
    means = np.array([[0.1, 0.2, 0.9], [0.8, 0.1, 0.2]])
    actions = simulate(policy, means, 400)
    best = means.argmax(-1)
    assert ((actions[:, -100:] == best[:, None]).mean(-1) > 0.9).all()
    # a new trial with the best arms swapped: the old counts are gone, the new best arm is found
    actions = simulate(policy, means[::-1].copy(), 400, seed=1)
    assert ((actions[:, -100:] == best[::-1, None]).mean(-1) > 0.9).all()


def test_ucb_tries_every_arm_first():
    actions = simulate(UCB(4, 1), np.array([[0.9, 0.1, 0.1, 0.1]]), 4)
    assert sorted(actions[0].tolist()) == [0, 1, 2, 3]


def test_plot_writes_a_png(tmp_path):
    import imageio.v2 as imageio

    path = plot(tmp_path / "x.png", random_trials(), "icrl/test")
    assert imageio.imread(path).shape[-1] in (3, 4)
    bandit = random_trials(episodes=1, length=20, arms=3)
    path = plot(tmp_path / "b.png", bandit, "icrl/bandit", {"thompson": bandit})
    image = imageio.imread(path)
    assert image.shape[1] > image.shape[0]  # two panels side by side


class RandomPolicy:
    def __init__(self, n: int, seed: int = 0):
        self.rng, self.n = np.random.default_rng(seed), n

    def act(self, obs):
        return self.rng.integers(0, self.n, size=len(obs["is_first"]))


def test_run_trials_on_episodes_of_different_lengths():
    from agents.icrl import run_trials

    t = run_trials(RandomPolicy(2), "gym:CartPole-v1", trials=5, seed=0, num_envs=2)
    assert len(set(t.length.tolist())) > 1  # random CartPole episodes end at different steps
    np.testing.assert_array_equal(t.reward.sum(-1), t.length)  # +1 per step, nothing in the padding
    np.testing.assert_array_equal(t.returns[:, 0], t.length)
    assert in_context_metrics(t)["icrl/trial_length"] == t.length.mean()


def test_run_trials_gives_two_policies_the_same_bandit_trials():
    from agents.icrl import run_trials

    a = run_trials(RandomPolicy(5, seed=1), "icrl/bandit-5", trials=6, seed=3, num_envs=4)
    b = run_trials(UCB(5, 4), "icrl/bandit-5", trials=6, seed=3, num_envs=4)
    assert a.reward.shape == b.reward.shape == (6, 100)
    np.testing.assert_array_equal(a.arm_means, b.arm_means)
    np.testing.assert_array_equal(a.episode[0], np.arange(100))  # a pull is an episode
    assert len({tuple(m) for m in a.arm_means}) == 6  # and every trial draws new arm means
