"""Recurrent PPO: the advantages and the loss against hand-computed cases, and the recurrent update
over packed sequences with resets against the same update run episode by episode."""

import math

import gymnasium
import numpy as np
import pytest
import torch

from agents.ppo import PPO, PPOConfig, Rollout
from agents.ppo_agent import Collector
from agents.ppo_losses import RewardScale, gae, ppo_loss
from agents.ppo_net import RecurrentActorCritic, index_state

VEC = gymnasium.spaces.Dict({"vector": gymnasium.spaces.Box(-1, 1, (5,), np.float32)})


def test_gae_matches_hand_computed_case():
    # Two rows of 4 steps + the bootstrap observation. Row 0 terminates at obs 2, row 1 is truncated there.
    reward = torch.tensor([[0.0, 1, 2, 3, 4], [0.0, 1, 2, 3, 4]])
    value = torch.tensor([[0.5, 1.0, 1.5, 2.0, 2.5]] * 2)
    is_last = torch.tensor([[False, False, True, False, False]] * 2)
    is_terminal = torch.tensor([[False, False, True, False, False], [False] * 5])
    adv, ret = gae(reward, value, is_last, is_terminal, gamma=0.9, lam=0.8)
    # row 0: d0 = 1 + .9*1 - .5 = 1.4; d1 = 2 + 0 - 1 = 1.0 (terminal); A2 = 0 (its action goes nowhere);
    #        d3 = 4 + .9*2.5 - 2 = 4.25; A1 = d1 (the chain stops at the last obs); A0 = 1.4 + .72*1.0
    # row 1: d1 = 2 + .9*1.5 - 1 = 2.35 (truncated: bootstraps from V(obs 2)); A0 = 1.4 + .72*2.35
    expected = torch.tensor([[2.12, 1.0, 0.0, 4.25], [1.4 + 0.72 * 2.35, 2.35, 0.0, 4.25]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + value[:, :-1])


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="gae"):
        gae(torch.zeros(2, 5), torch.zeros(2, 4), torch.zeros(2, 5, dtype=bool), torch.zeros(2, 5, dtype=bool), 0.9, 0.9)


def test_ppo_loss_matches_hand_computed_case():
    cfg = dict(clip=0.2, vf_coef=0.5, ent_coef=0.01, norm_adv=False, clip_value=True)
    logp = torch.tensor([[math.log(1.5), math.log(0.5), 0.0]])
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    value, old_value, returns = torch.tensor([[1.0, 0.0, 5.0]]), torch.tensor([[0.5, 0.5, 0.0]]), torch.tensor([[2.0, 1.0, 0.0]])
    entropy, mask = torch.tensor([[1.0, 2.0, 100.0]]), torch.tensor([[True, True, False]])
    loss, m = ppo_loss(logp, torch.zeros(1, 3), adv, value, old_value, returns, entropy, mask, **cfg)
    # policy: max(-1.5, -1.2) = -1.2 and max(0.5, 0.8) = 0.8 -> -0.2
    # value: clipped predictions 0.7 and 0.3 -> max(1, 1.69) and max(1, 0.49) -> 0.5 * 2.69 / 2
    # the third step is masked out everywhere
    torch.testing.assert_close(m["ppo/policy_loss"], torch.tensor(-0.2))
    torch.testing.assert_close(m["ppo/value_loss"], torch.tensor(0.6725))
    torch.testing.assert_close(m["ppo/entropy"], torch.tensor(1.5))
    torch.testing.assert_close(loss, torch.tensor(-0.2 - 0.01 * 1.5 + 0.5 * 0.6725))
    torch.testing.assert_close(m["ppo/approx_kl"], torch.tensor(((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2))
    torch.testing.assert_close(m["ppo/clip_fraction"], torch.tensor(1.0))


def test_ppo_loss_normalises_advantages_over_masked_steps_only():
    cfg = dict(clip=0.2, clip_value=True, norm_adv=True, ent_coef=0.0, vf_coef=0.0)
    adv = torch.tensor([[1.0, 3.0, 1000.0]])
    mask = torch.tensor([[True, True, False]])
    z = torch.zeros(1, 3)
    loss, _ = ppo_loss(z, z, adv, z, z, z, z, mask, **cfg)
    # normalised advantages over the two real steps are -1 and +1; ratio 1 -> policy loss 0
    torch.testing.assert_close(loss, torch.tensor(0.0), atol=1e-6, rtol=0)


def random_rollout(model: RecurrentActorCritic, is_first: torch.Tensor, state0) -> Rollout:
    B, T = is_first.shape
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        obs = {"vector": torch.randn(B, T, 5, generator=g)}
        dist, value, _ = model(obs, is_first, state0)
        action = model.sample(dist)
        logp = dist.log_prob(action) + 0.3 * torch.randn(B, T, generator=g)  # as if collected by an older policy
    mask = torch.rand(B, T, generator=g) > 0.2
    return Rollout(
        obs=obs,
        is_first=is_first,
        action=action,
        logp=logp,
        value=value + 0.1 * torch.randn(B, T, generator=g),
        advantage=torch.randn(B, T, generator=g),
        returns=torch.randn(B, T, generator=g),
        mask=mask,
        state0=state0,
    )


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("backbone", ["s5", "rssm"])
@pytest.mark.parametrize(
    "act_space",
    [gymnasium.spaces.Discrete(3), gymnasium.spaces.MultiDiscrete([2, 3]), gymnasium.spaces.Box(-1, 1, (2,), np.float32)],
    ids=["discrete", "multidiscrete", "box"],
)
def test_update_over_sequences_with_resets_equals_episodes_run_separately(backbone, act_space):
    cfg = PPOConfig(minibatches=1, norm_adv=False)  # normalisation would couple the episodes
    ppo = PPO(VEC, act_space, backbone, cfg)
    model = ppo.model
    T = 12
    is_first = torch.zeros(2, T, dtype=torch.bool)
    is_first[0, [0, 5, 6, 9]] = True  # row 0: episodes of 5, 1, 3, 3 steps
    is_first[1, 7] = True  # row 1 continues a carried memory for 7 steps, then a new trial
    state0 = {k: torch.randn_like(v) for k, v in model.initial_state(2).items()}  # row 1's carried memory
    rollout = random_rollout(model, is_first, state0)

    model.zero_grad()
    loss, _ = ppo.minibatch_loss(rollout, torch.arange(2))
    loss.backward()
    packed = grads(model)

    # The same loss, one episode at a time from its own start state, weighted by its share of the real steps.
    model.zero_grad()
    total = rollout.mask.sum()
    for b in range(2):
        starts = torch.nonzero(is_first[b])[:, 0].tolist()
        bounds = ([0] if starts[0] != 0 else []) + starts + [T]
        for s, e in zip(bounds[:-1], bounds[1:]):
            sub = Rollout(
                obs={"vector": rollout.obs["vector"][b : b + 1, s:e]},
                is_first=is_first[b : b + 1, s:e],
                action=rollout.action[b : b + 1, s:e],
                logp=rollout.logp[b : b + 1, s:e],
                value=rollout.value[b : b + 1, s:e],
                advantage=rollout.advantage[b : b + 1, s:e],
                returns=rollout.returns[b : b + 1, s:e],
                mask=rollout.mask[b : b + 1, s:e],
                state0=index_state(state0, slice(b, b + 1)),
            )
            part, _ = ppo.minibatch_loss(sub, torch.arange(1))
            (part * sub.mask.sum() / total).backward()
    separate = grads(model)
    assert packed.keys() == separate.keys()
    for name in packed:
        torch.testing.assert_close(packed[name], separate[name], rtol=1e-4, atol=1e-6, msg=name)
    assert sum(g.abs().sum() for g in packed.values()) > 0


def test_update_from_a_wrong_initial_state_gives_other_gradients():
    """The stored initial state matters: the check above would catch a loop that ignored it."""
    ppo = PPO(VEC, gymnasium.spaces.Discrete(3), "s5", PPOConfig(minibatches=1, norm_adv=False))
    is_first = torch.zeros(1, 6, dtype=torch.bool)
    state0 = {k: 3 * torch.randn_like(v) for k, v in ppo.model.initial_state(1).items()}
    rollout = random_rollout(ppo.model, is_first, state0)
    a, _ = ppo.minibatch_loss(rollout, torch.arange(1))
    rollout.state0 = ppo.model.initial_state(1)
    b, _ = ppo.minibatch_loss(rollout, torch.arange(1))
    assert not torch.allclose(a, b)


def test_config_rejects_empty_rollouts():
    with pytest.raises(ValueError, match="ppo.rollout"):
        PPOConfig(rollout=0)


def test_unsupported_action_space_is_named():
    with pytest.raises(ValueError, match="MultiBinary"):
        RecurrentActorCritic(VEC, gymnasium.spaces.MultiBinary(3), "s5", width=8, hidden=8, init_log_std=0.0)


def test_reward_scale_divides_by_the_running_std_of_discounted_returns():
    rng = np.random.default_rng(0)
    scale = RewardScale(gamma=0.9)
    rewards, firsts = rng.normal(3.0, 2.0, size=(50, 4)), rng.uniform(size=(50, 4)) < 0.1
    ret, seen = np.zeros(4), []
    for r, f in zip(rewards, firsts):
        out = scale(r, f)
        ret = np.where(f, 0.0, 0.9 * ret + r)
        seen.append(ret.copy())
        # reference: the variance of every discounted return so far (the prior's weight of 1e-4 is negligible)
        np.testing.assert_allclose(out, r / np.sqrt(np.var(np.concatenate(seen)) + 1e-8), rtol=1e-3)


def test_continuous_actions_collect_update_and_stay_in_bounds():
    import envs
    from world_models.imagine import model_obs_space

    torch.set_num_threads(1)
    vec = envs.make_vector("gym:Pendulum-v1", 2, seed=0, asynchronous=False)
    ppo = PPO(
        model_obs_space(vec.single_observation_space), vec.single_action_space, "s5", PPOConfig(rollout=16, minibatches=2, init_log_std=1.0)
    )
    rollout, _ = Collector(ppo, vec).collect(seed=0)
    assert rollout.action.shape == (2, 16, 1) and rollout.action.abs().max() > 1  # stored unclipped (wide Gaussian)
    before = {n: p.detach().clone() for n, p in ppo.model.named_parameters()}
    metrics = ppo.update(rollout)
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(before[n], p) for n, p in ppo.model.named_parameters())
    obs, _ = vec.reset(seed=1)
    action, _ = ppo.act(obs, None)
    assert action.shape == (2, 1) and np.all(np.abs(action) <= 2.0)  # Pendulum's torque bounds
    vec.close()
