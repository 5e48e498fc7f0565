"""The Dreamer learner's pieces against hand-computed references on random inputs."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from agents.actions import ActionCodec
from agents.dreamer import Dreamer, DreamerConfig, ReturnNorm, lambda_returns, replay_returns

TINY = world_models.WorldModelConfig.preset("tiny")


def test_lambda_returns_match_a_hand_computed_case():
    reward = torch.tensor([[1.0, 0.0, 2.0]])
    discount = torch.tensor([[0.9, 0.9, 0.0]])
    value = torch.tensor([[0.5, 1.0, 2.0, 3.0]])
    lam = 0.5
    # R2 = r3 + d3 * (...) = 2 (terminal); R1 = 0 + 0.9 * (0.5 * 2 + 0.5 * 2) = 1.8; R0 = 1 + 0.9 * (0.5 * 1 + 0.5 * 1.8)
    expected = torch.tensor([[1 + 0.9 * (0.5 * 1.0 + 0.5 * 1.8), 1.8, 2.0]])
    torch.testing.assert_close(lambda_returns(reward, discount, value, lam), expected)


def test_lambda_returns_equal_the_recursive_definition_on_random_inputs():
    g = torch.Generator().manual_seed(1)
    N, H, lam = 5, 7, 0.95
    reward, discount, value = torch.randn(N, H, generator=g), torch.rand(N, H, generator=g), torch.randn(N, H + 1, generator=g)
    out = lambda_returns(reward, discount, value, lam)
    # lambda = 1 is the discounted Monte-Carlo return bootstrapped at H; lambda = 0 is one-step TD
    mc = value[:, -1].clone()
    expected_mc = []
    for t in reversed(range(H)):
        mc = reward[:, t] + discount[:, t] * mc
        expected_mc.append(mc)
    torch.testing.assert_close(lambda_returns(reward, discount, value, 1.0), torch.stack(expected_mc[::-1], 1))
    torch.testing.assert_close(lambda_returns(reward, discount, value, 0.0), reward + discount * value[:, 1:])
    # the general case mixes the two: R_t = r + d ((1 - lam) v_{t+1} + lam R_{t+1})
    torch.testing.assert_close(out[:, :-1], reward[:, :-1] + discount[:, :-1] * ((1 - lam) * value[:, 1:-1] + lam * out[:, 1:]))
    with pytest.raises(ValueError, match="value"):
        lambda_returns(reward, discount, value[:, :-1], lam)


def _replay_returns_reference(reward, is_last, is_terminal, boot, gamma, lam):
    """Row by row from the definition: the lambda-return from step t follows the window until its end or the
    end of the episode; a truncated episode (last, not terminal) bootstraps from its last state."""
    B, L = reward.shape
    out = torch.zeros(B, L - 1)
    for b in range(B):
        for t in range(L - 1):
            # G^n: n real rewards, then the bootstrap (no bootstrap past a terminal step)
            def nstep(n):
                g, disc = 0.0, 1.0
                for k in range(1, n + 1):
                    g += disc * float(reward[b, t + k])
                    if is_terminal[b, t + k]:
                        return g
                    disc *= gamma
                return g + disc * float(boot[b, t + n])

            # the longest lookahead: up to the window's end or the episode's last step
            n_max = next((k for k in range(1, L - t) if is_last[b, t + k]), L - 1 - t)
            total = sum((1 - lam) * lam ** (n - 1) * nstep(n) for n in range(1, n_max)) + lam ** (n_max - 1) * nstep(n_max)
            out[b, t] = total
    return out


def test_replay_returns_equal_the_n_step_mixture_on_random_windows_with_episode_ends():
    g = torch.Generator().manual_seed(3)
    B, L, gamma, lam = 6, 9, 0.9, 0.8
    reward, boot = torch.randn(B, L, generator=g), torch.randn(B, L, generator=g)
    is_last = torch.rand(B, L, generator=g) < 0.2
    is_terminal = is_last & (torch.rand(B, L, generator=g) < 0.5)  # some episodes end, some are truncated
    out = replay_returns(reward, is_last, is_terminal, boot, gamma, lam)
    torch.testing.assert_close(out, _replay_returns_reference(reward, is_last, is_terminal, boot, gamma, lam))
    # a terminal next step is its reward alone; a truncated one bootstraps from its own state
    b, t = torch.nonzero(is_terminal[:, 1:])[0].tolist()
    assert out[b, t].item() == pytest.approx(reward[b, t + 1].item())
    with pytest.raises(ValueError, match="boot"):
        replay_returns(reward, is_last, is_terminal, boot[:, :-1], gamma, lam)


def test_replayed_value_loss_adds_its_weighted_term_to_the_critic_loss_only():
    agent = _agent(gym.spaces.Discrete(3), repval=0.3)
    batch = _batch(agent.codec)
    batch["is_last"] = torch.zeros_like(batch["is_first"])
    batch["is_last"][0, 4] = batch["is_terminal"][0, 4] = True
    _, _, starts = agent.wm.loss(batch, return_starts=True)
    terminal = batch["is_terminal"].reshape(-1).float()
    replay = {k: batch[k] for k in ("reward", "is_last", "is_terminal")}
    torch.manual_seed(0)
    plain, m0 = agent.actor_critic_loss(starts, terminal)
    torch.manual_seed(0)
    both, m1 = agent.actor_critic_loss(starts, terminal, replay)
    assert "loss/repval" not in m0 and m1["loss/repval"] > 0
    torch.testing.assert_close(both - plain, 0.3 * m1["loss/repval"])
    torch.testing.assert_close(m1["loss/actor"], m0["loss/actor"])
    metrics = agent.update(batch)
    assert np.isfinite(metrics["loss/repval"])


def test_replayed_value_loss_teaches_the_critic_the_replayed_rewards():
    """Planted: two kinds of replayed state; from one the next step pays 1 and ends the episode, from the other
    it pays 0 and ends it. Trained by the replayed-value loss alone, the critic values them 1 and 0."""
    agent = _agent(gym.spaces.Discrete(3), repval=1.0, slow_critic_reg=0.0, critic_lr=1e-3)
    g = torch.Generator().manual_seed(0)
    kinds = torch.randn(2, agent.wm.feat_dim, generator=g)
    B, L = 8, 4  # each window: state of kind k, then its terminal step, twice over
    kind = torch.arange(B) % 2
    feat = torch.stack([kinds[kind], kinds[kind] * 0, kinds[kind], kinds[kind] * 0], 1)  # (B, L, F)
    done = torch.tensor([False, True, False, True]).expand(B, L)
    reward = torch.stack([torch.zeros(B), (kind == 0).float(), torch.zeros(B), (kind == 0).float()], 1)
    replay = {"reward": reward, "is_last": done, "is_terminal": done}
    for _ in range(300):
        loss = agent.replay_value_loss(feat.reshape(B * L, -1), torch.zeros(B * L), replay)
        agent.opt_critic.zero_grad()
        loss.backward()
        agent.opt_critic.step()
    value = agent.critic(kinds).mean.detach()
    assert value[0].item() == pytest.approx(1.0, abs=0.1) and value[1].item() == pytest.approx(0.0, abs=0.1)


def test_return_norm_is_an_ema_of_the_5th_and_95th_percentiles_with_scale_at_least_one():
    norm = ReturnNorm(0.05, 0.95, decay=0.9)
    rng = np.random.default_rng(0)
    low = high = 0.0
    for _ in range(5):
        x = rng.normal(0, 10, size=1000).astype(np.float32)
        low = 0.9 * low + 0.1 * np.quantile(x, 0.05)
        high = 0.9 * high + 0.1 * np.quantile(x, 0.95)
        scale = norm.update(torch.from_numpy(x))
    assert norm.low.item() == pytest.approx(low, rel=1e-4) and norm.high.item() == pytest.approx(high, rel=1e-4)
    assert scale.item() == pytest.approx(max(1.0, high - low), rel=1e-4)
    small = ReturnNorm(0.05, 0.95, decay=0.0)
    assert small.update(torch.rand(100) * 0.1).item() == 1.0  # small returns are not scaled up


@pytest.mark.parametrize("space", [gym.spaces.Discrete(4), gym.spaces.MultiDiscrete([2, 3]), gym.spaces.Box(-2.0, 3.0, (2,))])
def test_action_codec_round_trips_and_random_actions_are_valid(space):
    codec = ActionCodec(space)
    rng = np.random.default_rng(0)
    vectors = codec.random(50, rng)
    assert vectors.shape == (50, codec.dim) and vectors.dtype == np.float32
    actions = codec.to_env(vectors)
    assert all(space.contains(a) for a in actions)
    if isinstance(space, gym.spaces.Box):
        np.testing.assert_allclose(codec.to_env(np.array([[-1.0, 1.0]])), [[-2.0, 3.0]])
    else:
        np.testing.assert_array_equal(vectors.sum(1), len(codec.sizes))  # one-hot per component


def _batch(codec, B=2, L=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8, generator=g),
        "action": torch.from_numpy(codec.random(B * L, np.random.default_rng(seed)).reshape(B, L, codec.dim)),
        "reward": torch.randn(B, L, generator=g),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
    }


def _agent(space, backbone="rssm", **overrides):
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    wm = world_models.make(backbone, obs_space, space, world_models.WorldModelConfig.preset("tiny"))
    return Dreamer(wm, space, DreamerConfig(horizon=4, **overrides))


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([2, 3]), gym.spaces.Box(-1.0, 1.0, (2,))])
def test_update_changes_every_module_and_reports_stable_metric_names(space):
    agent = _agent(space)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics = agent.update(_batch(agent.codec))
    for name in ("loss/image", "loss/dyn", "loss/actor", "loss/critic", "actor_entropy", "return_scale", "kl"):
        assert np.isfinite(metrics[name]), name
    after = agent.state_dict()
    for prefix in ("wm.", "actor.", "critic.", "slow_critic."):
        changed = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
        assert changed, f"{prefix} did not change"


def test_discrete_imagination_trains_the_actor_and_not_the_world_model():
    agent = _agent(gym.spaces.Discrete(3), entropy=0.0)
    # a fresh critic's output layer is zero (DreamerV3's init) and so is every advantage: without entropy the actor would
    # learn nothing, so the critic is given values that differ from state to state
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.normal_(0.0, 0.5)
    batch = _batch(agent.codec)
    _, _, starts = agent.wm.loss(batch, return_starts=True)
    loss, metrics = agent.actor_critic_loss(starts, batch["is_terminal"].reshape(-1).float())
    agent.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in agent.wm.parameters())  # imagination does not train the world model
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_continuous_actor_gets_gradients_through_the_dynamics_only_into_the_actor():
    agent = _agent(gym.spaces.Box(-1.0, 1.0, (2,)))
    batch = _batch(agent.codec)
    _, _, starts = agent.wm.loss(batch, return_starts=True)
    loss, _ = agent.actor_critic_loss(starts, batch["is_terminal"].reshape(-1).float())
    agent.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in agent.wm.parameters())
    assert all(p.requires_grad for p in agent.wm.parameters())  # unfrozen again afterwards
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_non_finite_loss_names_the_term():
    agent = _agent(gym.spaces.Discrete(3))
    batch = _batch(agent.codec)
    batch["reward"][0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="reward"):
        agent.update(batch)


def test_slow_critic_is_an_ema_of_the_critic():
    agent = _agent(gym.spaces.Discrete(3), slow_critic_decay=0.5)
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.add_(1.0)
    slow_before = [p.clone() for p in agent.slow_critic.parameters()]
    agent.update_slow_critic()
    for s0, s, f in zip(slow_before, agent.slow_critic.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(s, 0.5 * s0 + 0.5 * f)


class _OneStepWorld(torch.nn.Module):
    """A world model whose imagined features are the last action taken (plus a constant), and whose
    reward is a known function of it: the actor-critic must find the best action."""

    def __init__(self, act_dim, reward_fn):
        super().__init__()
        self.act_dim, self.feat_dim, self.reward_fn = act_dim, act_dim + 1, reward_fn
        self.unused = torch.nn.Parameter(torch.zeros(1))  # a parameter for the world-model optimiser

    def imagine(self, start, policy, horizon):
        from types import SimpleNamespace

        feats, acts = [start], []
        for _ in range(horizon):
            acts.append(policy(feats[-1]))
            feats.append(torch.cat([acts[-1], torch.ones_like(acts[-1][:, :1])], -1))
        acts.append(policy(feats[-1]))
        return SimpleNamespace(features=torch.stack(feats, 1), actions=torch.stack(acts, 1))

    def reward(self, feat, actions):  # "next": the step's own features
        return self.reward_fn(feat[..., :-1])

    def cont(self, feat):
        return torch.ones(feat.shape[:-1])


def _train_actor_critic(agent, starts, iterations):
    for _ in range(iterations):
        loss, metrics = agent.actor_critic_loss(starts, torch.zeros(len(starts)))
        agent.opt_actor.zero_grad()
        agent.opt_critic.zero_grad()
        loss.backward()
        agent.opt_actor.step()
        agent.opt_critic.step()
        agent.update_slow_critic()
    return metrics


def test_reinforce_learns_the_rewarded_discrete_action():
    space = gym.spaces.Discrete(3)
    world = _OneStepWorld(3, lambda a: a[..., 1])  # +1 for every step after taking action 1
    agent = Dreamer(world, space, DreamerConfig(horizon=5, actor_lr=3e-3, critic_lr=3e-3), TINY)
    starts = torch.cat([torch.eye(3)[torch.randint(0, 3, (64,))], torch.ones(64, 1)], -1)
    metrics = _train_actor_critic(agent, starts, 150)
    probs = agent.actor(starts).parts[0].probs
    assert probs[:, 1].min() > 0.9, probs.mean(0)
    assert metrics["value"] > 1.0  # the critic learned that rewards follow


def test_dynamics_gradients_move_continuous_actions_to_the_best_value():
    space = gym.spaces.Box(-1.0, 1.0, (1,))
    world = _OneStepWorld(1, lambda a: -((a[..., 0] - 0.5) ** 2))  # best action 0.5
    agent = Dreamer(world, space, DreamerConfig(horizon=5, actor_lr=3e-3, critic_lr=3e-3), TINY)
    starts = torch.cat([torch.rand(64, 1) * 2 - 1, torch.ones(64, 1)], -1)
    _train_actor_critic(agent, starts, 150)
    mean = agent.actor(starts).mode()
    assert (mean - 0.5).abs().max() < 0.15, mean.flatten()[:8]


def test_the_probe_decoder_is_clipped_apart_from_the_world_model(monkeypatch):
    """A decoder-free objective's probe learns on detached features: its gradient is clipped on its own,
    so a large probe gradient cannot shrink the model's update."""
    import agents.dreamer as D

    space = gym.spaces.Discrete(3)
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    wm = world_models.make("s5", obs_space, space, world_models.WorldModelConfig.preset("tiny", objective="barlow"))
    agent = Dreamer(wm, space, DreamerConfig(horizon=4, wm_grad_clip=1e-3))
    groups, clip = {}, D._clip
    monkeypatch.setattr(
        D, "_clip", lambda name, params, max_norm: groups.setdefault(name, list(params)) and clip(name, groups[name], max_norm)
    )
    agent.update(_batch(agent.codec))
    probe = {id(p) for p in wm.decoder.parameters()}
    model = {id(p) for p in wm.parameters()} - probe
    assert {id(p) for p in groups["probe decoder"]} == probe
    assert {id(p) for p in groups["world-model"]} == model
    # each group's clipped norm is at most the clip, whatever the other's gradient was
    for name in ("probe decoder", "world-model"):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in groups[name] if p.grad is not None]))
        assert norm <= 1e-3 * 1.001


def _train_on_rewards(scale: float, scale_rewards: bool, updates: int = 3) -> dict[str, torch.Tensor]:
    """The weights after `updates` updates of a seeded agent on seeded batches whose rewards are multiplied by `scale`."""
    torch.manual_seed(0)
    agent = _agent(gym.spaces.Discrete(3), backbone="s5", scale_rewards=scale_rewards)
    for i in range(updates):
        batch = _batch(agent.codec, seed=i)
        batch["reward"] = torch.where(torch.rand(batch["reward"].shape, generator=torch.Generator().manual_seed(i)) < 0.5, 1.0, -1.0) / 32
        batch["reward"] = batch["reward"] * scale
        torch.manual_seed(100 + i)  # the same posterior and imagination samples in both runs
        agent.update(batch)
    return {k: v.clone() for k, v in agent.state_dict().items()}


def test_scaled_rewards_are_learned_exactly_as_the_original_in_units_of_the_largest_reward():
    # rewards of +-1/32 and the same rewards x32 (a power of two: the division is exact in float32)
    small, large = _train_on_rewards(1.0, True), _train_on_rewards(32.0, True)
    for k in small:
        torch.testing.assert_close(small[k], large[k], rtol=0, atol=0, msg=k)
    # test the test: without the reward unit the two runs learn different weights
    small, large = _train_on_rewards(1.0, False), _train_on_rewards(32.0, False)
    assert any(not torch.equal(small[k], large[k]) for k in small)


def test_reward_unit_is_the_largest_reward_seen_and_one_before_any():
    agent = _agent(gym.spaces.Discrete(3))
    assert agent.update_reward_unit(torch.zeros(2, 4)).item() == 1.0  # nothing seen yet: rewards stay as they are
    assert agent.update_reward_unit(torch.tensor([[0.0, -0.25], [0.125, 0.0]])).item() == 0.25
    assert agent.update_reward_unit(torch.tensor([[0.1]])).item() == 0.25  # a running maximum
    assert "reward_unit" not in agent.state_dict()  # weights saved without it still load; the run's checkpoint keeps it


def test_actor_output_layer_starts_at_its_scale_of_the_default_init():
    torch.manual_seed(0)
    plain = _agent(gym.spaces.Discrete(3)).actor.net.net[-1]
    torch.manual_seed(0)
    small = _agent(gym.spaces.Discrete(3), actor_out_scale=0.01).actor.net.net[-1]
    torch.testing.assert_close(small.weight, 0.01 * plain.weight)
    torch.testing.assert_close(small.bias, 0.01 * plain.bias)


@pytest.mark.parametrize("setting", ["sample", "eval_mode", "mode"])
def test_act_posterior_says_when_acting_takes_the_posteriors_mode(setting):
    """Acting twice from the same state under different random streams: a sampled posterior gives different
    latents, its mode the same latent, which equals the world model's deterministic step."""
    agent = _agent(gym.spaces.Discrete(3), "s5", act_posterior=setting)
    obs = {"image": torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))}
    prev, first = torch.zeros(4, 3), torch.ones(4, dtype=torch.bool)
    with torch.no_grad():
        _, mode = agent.wm.step(agent.wm.initial_state(4), prev, obs, first, sample=False)
    for explore in (True, False):
        latents = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            _, state = agent.policy(agent.wm.initial_state(4), obs, prev, first, explore=explore)
            latents.append(state.z)
        takes_mode = setting == "mode" or (setting == "eval_mode" and not explore)
        assert torch.equal(latents[0], latents[1]) == takes_mode
        if takes_mode:
            assert torch.equal(agent.wm.features(state.h, state.z), mode)
