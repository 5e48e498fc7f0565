"""The all-actions policy gradient (DreamerConfig.all_actions): its objective against one written out with a loop
over the actions, and the gradient it gives an actor that has collapsed onto a wrong action: towards the best one
from every state, without having to sample it (REINFORCE's gradient has the same mean and only the sampled action's
sign)."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from agents import dreamer as dreamer_module
from agents.dreamer import Dreamer, DreamerConfig

OBS = gym.spaces.Dict({"vector": gym.spaces.Box(-1.0, 1.0, (5,), np.float32)})
SPACE = gym.spaces.Discrete(4)


def _agent(all_actions: float, seed: int = 0) -> Dreamer:
    torch.manual_seed(seed)
    wm = world_models.make("s5", OBS, SPACE, world_models.WorldModelConfig.preset("tiny"))
    agent = Dreamer(wm, SPACE, DreamerConfig(horizon=4, all_actions=all_actions))
    with torch.no_grad():  # a reward head and critic that tell actions apart (both start at zero output)
        for layer in (agent.wm.reward_head.net[-1], agent.critic.net.net[-1]):
            layer.weight.normal_(0, 0.3)
    return agent


def _starts(agent: Dreamer, B: int = 3, L: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "vector": torch.rand(B, L, 5, generator=g) * 2 - 1,
        "action": torch.nn.functional.one_hot(torch.randint(0, 4, (B, L), generator=g), 4).float(),
        "reward": torch.randn(B, L, generator=g),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
        "is_terminal": torch.rand(B, L, generator=g) < 0.2,
    }
    with torch.no_grad():
        _, _, starts = agent.wm.loss(batch, return_starts=True)
    return starts, batch["is_terminal"].reshape(-1).float()


def written_out_q(agent: Dreamer, starts) -> torch.Tensor:
    """Q(s, a) = r + gamma * continue * V(s'), one imagined step per action (the prior's mode), action by action."""
    qs = []
    for a in range(4):
        first = torch.nn.functional.one_hot(torch.full((starts.batch_size,), a), 4).float()
        with torch.no_grad():
            imag = agent.wm.imagine(starts, lambda f, first=first: first, 1, sample=False)
            feat = imag.features
            reward = agent.wm.reward(feat, imag.actions)[:, 1]
            cont = agent.wm.cont(feat)[:, 1]
            qs.append(reward + agent.config.gamma * cont * agent.critic(feat[:, 1]).mean)
    return torch.stack(qs, 1)


def test_the_actor_loss_gains_the_all_actions_objective_written_out_action_by_action():
    on = _agent(all_actions=0.5)
    off = copy.deepcopy(on)
    off.config = DreamerConfig(horizon=4)
    starts, terminal = _starts(on)
    q = written_out_q(on, starts)
    assert (q.max(1).values - q.min(1).values).min() > 1e-4  # the actions' values differ
    torch.manual_seed(3)  # the same imagined actions in both
    _, with_term = on.actor_critic_loss(starts, terminal)
    torch.manual_seed(3)
    _, without = off.actor_critic_loss(starts, terminal)
    probs = on.actor(on.wm.features(starts.h, starts.z)).parts[0].probs  # the actor at the starts
    scale = on.retnorm.scale  # the update above folded in the same returns in both
    gain = (probs * (q - (probs * q).sum(-1, keepdim=True)) / scale).sum(-1)
    expected = without["loss/actor"] - 0.5 * ((1 - terminal) * gain).mean()
    torch.testing.assert_close(with_term["loss/actor"], expected.detach(), rtol=1e-5, atol=1e-6)
    agree = (probs.argmax(-1) == q.argmax(-1)).float().mean()
    torch.testing.assert_close(with_term["all_actions_agree"], agree)
    assert "all_actions_agree" not in without


def test_an_actor_collapsed_on_a_wrong_action_is_pushed_to_the_best_one(monkeypatch):
    agent = _agent(all_actions=1.0)
    with torch.no_grad():  # the actor picks action 0 almost surely, whatever it reads
        agent.actor.net.net[-1].weight.zero_()
        agent.actor.net.net[-1].bias.copy_(torch.tensor([12.0, 0.0, 0.0, 0.0]))
    starts, terminal = _starts(agent)
    q = torch.tensor([0.0, 0.0, 1.0, 0.0]).expand(starts.batch_size, 4)  # action 2 is the best everywhere
    monkeypatch.setattr(dreamer_module, "first_action_returns", lambda *args, **kwargs: q)
    bias = agent.actor.net.net[-1].bias
    gain, metrics = agent.all_actions_objective(starts, agent.actor(torch.zeros(starts.batch_size, agent.wm.feat_dim)), torch.tensor(1.0))
    agree = metrics["all_actions_agree"]
    (grad,) = torch.autograd.grad(gain.mean(), bias)
    # the actor's probabilities p = (1 - u) softmax(logits) + u / 4 (unimix u), the logits its bias; with the
    # advantage A = q - p.q held fixed, d/dlogit_j sum_a p_a A_a = (1 - u) s_j (A_j - s.A), s = softmax(logits)
    u, soft = agent.config.unimix, torch.softmax(bias.detach(), 0)
    advantage = q[0] - (((1 - u) * soft + u / 4) * q[0]).sum()
    torch.testing.assert_close(grad, (1 - u) * soft * (advantage - (soft * advantage).sum()), rtol=1e-4, atol=1e-12)
    assert grad[2] > 0 > grad[0] and float(agree) == 0.0


def _collapsed(all_actions: float, temperature: float, monkeypatch, q: torch.Tensor, below: float = 0.0):
    """An agent whose actor picks action 0 almost surely whatever it reads (its logits are its output bias), with
    the one-step values `q` (A,) at every start, or (N, A) start by start: the bias, the objective at the starts,
    its gradient, and the term's metrics."""
    agent = _agent(all_actions=all_actions)
    agent.config = DreamerConfig(horizon=4, all_actions=all_actions, all_actions_temperature=temperature, all_actions_below=below)
    with torch.no_grad():
        agent.actor.net.net[-1].weight.zero_()
        agent.actor.net.net[-1].bias.copy_(torch.tensor([12.0, 0.0, 0.0, 0.0]))
    starts, _ = _starts(agent)
    monkeypatch.setattr(dreamer_module, "first_action_returns", lambda *args, **kwargs: q.expand(starts.batch_size, 4))
    bias = agent.actor.net.net[-1].bias
    gain, metrics = agent.all_actions_objective(starts, agent.actor(torch.zeros(starts.batch_size, agent.wm.feat_dim)), torch.tensor(2.0))
    (grad,) = torch.autograd.grad(gain.mean(), bias)
    assert ("all_actions_open" in metrics) == bool(below)
    return agent, bias.detach(), gain.detach(), grad, metrics


def test_the_mirror_step_draws_a_collapsed_actor_to_the_best_action_as_hard_as_its_target_says(monkeypatch):
    q = torch.tensor([0.0, 0.0, 1.0, 0.0])  # action 2 is the best everywhere; the scale is 2
    temperature = 0.05
    agent, bias, gain, grad, _ = _collapsed(1.0, temperature, monkeypatch, q)
    u, soft = agent.config.unimix, torch.softmax(bias, 0)
    p = (1 - u) * soft + u / 4  # the actor's probabilities (unimix u)
    advantage = (q - (p * q).sum()) / 2.0
    target = p * torch.exp(advantage / temperature)
    target = target / target.sum()  # pi exp(A / T), normalised: written out
    # the cross-entropy with the logits before the floor: sum_a t_a log softmax(logits)_a, its gradient t - s
    torch.testing.assert_close(gain, (target * torch.log_softmax(bias, 0)).sum().expand_as(gain), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, target - soft, rtol=1e-4, atol=1e-6)
    assert target[2] > 0.5 and grad[2] > 0.5 and grad[0] < -0.5  # not scaled by pi(2), which is at the floor
    _, _, _, plain, _ = _collapsed(1.0, 0.0, monkeypatch, q)  # the gradient form at the same actor
    assert 0 < plain[2] < grad[2] / 1000


def test_where_the_actions_are_worth_the_same_the_mirror_step_only_lifts_logits_to_the_floor(monkeypatch):
    agent, bias, _, grad, _ = _collapsed(1.0, 0.05, monkeypatch, torch.full((4,), 0.7))
    u, soft = agent.config.unimix, torch.softmax(bias, 0)
    torch.testing.assert_close(grad, u * (0.25 - soft), rtol=1e-4, atol=1e-7)  # the target is pi: the floor's pull
    assert grad[1:].max() < 0.01 and grad[1:].min() > 0 > grad[0]


@pytest.mark.parametrize("temperature", [0.0, 0.05])
def test_with_a_gate_the_term_acts_only_where_the_actor_has_all_but_dropped_the_best_action(monkeypatch, temperature):
    g = torch.Generator().manual_seed(1)
    q = torch.rand(18, 4, generator=g)  # the 3 x 6 starts' one-step values, random
    best = torch.randint(0, 2, (18,), generator=g) * 2  # the best action: 0 (the actor's mode) or 2 (at its floor)
    q[torch.arange(18), best] = 2.0
    _, bias, ungated, _, _ = _collapsed(1.0, temperature, monkeypatch, q)
    agent, _, gated, grad, metrics = _collapsed(1.0, temperature, monkeypatch, q, below=0.1)
    open_ = best == 2  # softmax(bias)[2] = e^-12 / (e^12 + 3)-ish < 0.1 / 4, softmax(bias)[0] ~ 1
    assert 0 < int(open_.sum()) < 18 and float(metrics["all_actions_open"]) == float(open_.float().mean())
    torch.testing.assert_close(gated[open_], ungated[open_])
    assert (gated[~open_] == 0).all() and (ungated[~open_] != 0).all()
    # the gradient is the ungated one's from the open starts alone, written out at the same actor
    bias = bias.clone().requires_grad_(True)
    u = agent.config.unimix
    p = ((1 - u) * torch.softmax(bias, 0) + u / 4).expand(18, 4)
    advantage = (q - (p.detach() * q).sum(-1, keepdim=True)) / 2.0
    if temperature:
        target = torch.softmax(p.detach().log() + advantage / temperature, -1)
        per_start = (target * torch.log_softmax(bias, 0)).sum(-1)
    else:
        per_start = (p * advantage).sum(-1)
    (expected,) = torch.autograd.grad((per_start * open_).mean(), bias)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-7)


def test_all_actions_on_a_space_it_cannot_enumerate_is_refused():
    wm = world_models.make("s5", OBS, gym.spaces.Box(-1.0, 1.0, (2,)), world_models.WorldModelConfig.preset("tiny"))
    with pytest.raises(ValueError, match="needs a Discrete action space"):
        Dreamer(wm, gym.spaces.Box(-1.0, 1.0, (2,)), DreamerConfig(all_actions=1.0))


def test_a_run_fits_the_weight_to_its_action_space_a_default_dropped_a_typed_one_refused():
    from agents.config import TrainConfig, apply_overrides, fit_action_space

    config = apply_overrides(TrainConfig(), {"dreamer.all_actions": 0.5})
    box = gym.spaces.Box(-1.0, 1.0, (2,))
    assert fit_action_space(config, SPACE, {"dreamer.all_actions": "default"}) == (config, {"dreamer.all_actions": "default"})
    fitted, sources = fit_action_space(config, box, {"dreamer.all_actions": "default", "seed": "flag"})
    assert fitted.dreamer.all_actions == 0.0 and sources == {"dreamer.all_actions": "action space", "seed": "flag"}
    assert fitted == apply_overrides(config, {"dreamer.all_actions": 0.0})  # nothing else changes
    for typed in ("flag", "given"):
        with pytest.raises(ValueError, match="needs a Discrete action space"):
            fit_action_space(config, box, {"dreamer.all_actions": typed})
    off = apply_overrides(config, {"dreamer.all_actions": 0.0})
    assert fit_action_space(off, box, {"dreamer.all_actions": "flag"})[0] is off  # a zero weight fits every space
