"""Dreamer's speed paths against the plain computation: the one-pass actor-critic loss equals the two-pass one
(critic run twice, actor run again on the imagined features), a bf16-autocast update stays within a few
percent of the float32 one on the same batch, with float32 distributions and recurrent states, and an update and an
acting step with the networks compiled (torch.compile) equal the eager ones up to float rounding."""

import contextlib
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from agents.config import TrainConfig, resolve
from agents.dreamer import Dreamer, DreamerConfig, frozen, lambda_returns
from agents.runs import build_dreamer

OBS = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
SPACES = [gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([2, 3]), gym.spaces.Box(-1.0, 1.0, (2,))]


def _agent(space, backbone="rssm", precision="32", seed=0, explore=0.0) -> Dreamer:
    torch.manual_seed(seed)
    wm = world_models.make(backbone, OBS, space, world_models.WorldModelConfig.preset("tiny"))
    return Dreamer(wm, space, DreamerConfig(horizon=5, explore=explore), precision=precision)


def _batch(codec, B=2, L=8, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8, generator=g),
        "action": torch.from_numpy(codec.random(B * L, np.random.default_rng(seed)).reshape(B, L, codec.dim)),
        "reward": (torch.rand(B, L, generator=g) < 0.3).float(),
        "is_first": torch.rand(B, L, generator=g) < 0.1,
        "is_terminal": torch.rand(B, L, generator=g) < 0.1,
    }


def prior_entropy(stats: torch.Tensor, stoch: int, classes: int, unimix: float) -> torch.Tensor:
    """(N, H, stoch * classes) logits -> (N, H): the entropy of `stoch` categoricals mixed with `unimix` of the
    uniform, summed over them (written out from torch.distributions)."""
    probs = torch.softmax(stats.float().view(*stats.shape[:-1], stoch, classes), -1) * (1 - unimix) + unimix / classes
    return torch.distributions.Categorical(probs=probs).entropy().sum(-1)


def two_pass_actor_critic_loss(agent: Dreamer, starts, terminal: torch.Tensor):
    """The reference: the actor-critic loss as first written, the critic run over the imagined features for the
    returns and again for its loss, and the actor run again over the imagined features for its loss; with
    config.explore, the prior's entropy less its mean added to the imagined rewards."""
    cfg, discrete = agent.config, agent.codec.discrete
    bonus_std = None

    def act(feat):
        return agent.actor(feat.detach()).sample()

    with frozen(agent.wm, agent.critic):
        with torch.no_grad() if discrete else contextlib.nullcontext():
            imag = agent.wm.imagine(starts, act, cfg.horizon)
            feat = imag.features
            reward = agent.wm.reward(feat, imag.actions)
            if cfg.explore:
                c = agent.wm.config
                entropy = prior_entropy(imag.prior.stats, c.stoch, c.classes, c.unimix)
                reward = torch.cat([reward[:, :1], reward[:, 1:] + cfg.explore * (entropy - entropy.mean())], 1)
                bonus_std = (cfg.explore * entropy).std()
            cont = torch.cat([1.0 - terminal[:, None], agent.wm.cont(feat)[:, 1:]], 1)
            value = agent.critic(feat).mean
            ret = lambda_returns(reward[:, 1:], cfg.gamma * cont[:, 1:], value, cfg.lam)
    weight = torch.cumprod(cont, 1)[:, :-1].detach()
    scale = agent.retnorm.update(ret)
    dist = agent.actor(feat[:, :-1].detach())
    entropy = dist.entropy()
    if discrete:
        objective = dist.log_prob(imag.actions[:, :-1].detach()) * ((ret - value[:, :-1]) / scale).detach()
    else:
        objective = ret / scale
    actor_loss = -(weight * (objective + cfg.entropy * entropy)).mean()
    value_dist = agent.critic(feat[:, :-1].detach())
    slow_value = agent.slow_critic(feat[:, :-1].detach()).mean.detach()
    critic_nll = -value_dist.log_prob(ret.detach()) - cfg.slow_critic_reg * value_dist.log_prob(slow_value)
    critic_loss = (weight * critic_nll).mean()
    return actor_loss, critic_loss, ret, bonus_std


@pytest.mark.parametrize(
    "space, explore",
    [*((s, 0.0) for s in SPACES), (SPACES[0], 0.5)],
    ids=["discrete", "multidiscrete", "box", "discrete-explore"],
)
def test_one_pass_actor_critic_loss_equals_the_two_pass_reference(space, explore):
    agent = _agent(space, explore=explore)
    with torch.no_grad():
        agent.slow_critic.net.net[-1].weight.normal_(0, 0.1)  # critic and slow critic start at 0: make them differ
    for p in agent.critic.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    batch = _batch(agent.codec)
    with torch.no_grad():
        _, _, starts = agent.wm.loss(batch, return_starts=True)
    terminal = batch["is_terminal"].reshape(-1).float()
    reference = copy.deepcopy(agent)

    torch.manual_seed(7)  # the same imagined actions in both
    loss, metrics = agent.actor_critic_loss(starts, terminal)
    torch.manual_seed(7)
    actor_loss, critic_loss, ret, bonus_std = two_pass_actor_critic_loss(reference, starts, terminal)

    torch.testing.assert_close(metrics["loss/actor"], actor_loss.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(metrics["loss/critic"], critic_loss.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(metrics["imag_return"], ret.mean(), rtol=1e-5, atol=1e-7)
    if explore:  # the logged spread of the bonus, in the reward's unit
        assert bonus_std > 0
        torch.testing.assert_close(metrics["explore_bonus_std"], bonus_std, rtol=1e-5, atol=1e-7)
    else:
        assert "explore_bonus_std" not in metrics
    loss.backward()
    (actor_loss + critic_loss).backward()
    for module in ("actor", "critic"):
        for (name, p), q in zip(getattr(agent, module).named_parameters(), getattr(reference, module).parameters()):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{module}.{name} took no gradient"
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"{module}.{name}: {m}")
    assert all(p.grad is None for p in agent.slow_critic.parameters())


@pytest.mark.parametrize("backbone", ["rssm", "s5"])
def test_bf16_update_is_within_a_few_percent_of_float32_on_the_same_batch(backbone):
    fp32 = _agent(gym.spaces.Discrete(3), backbone)
    bf16 = copy.deepcopy(fp32)
    bf16.precision = "bf16"
    batch = _batch(fp32.codec, B=2, L=8)
    dtypes = []  # the encoder's output dtype: autocast really runs the convolutions in bf16
    bf16.wm.encoder.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    torch.manual_seed(3)
    m32 = fp32.update(batch)
    torch.manual_seed(3)
    m16 = bf16.update(batch)
    assert dtypes == [torch.bfloat16]
    assert m16["loss"] != m32["loss"]  # not the float32 computation under another name
    for name in ("loss", "loss/image", "loss/reward", "loss/cont", "loss/critic"):
        assert m16[name] == pytest.approx(m32[name], rel=0.03), name
    assert m16["loss/actor"] == pytest.approx(m32["loss/actor"], rel=0.1, abs=1e-3)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # the weights and their updates stay float32
    assert m16["wm_grad_norm"] == pytest.approx(m32["wm_grad_norm"], rel=0.1)  # gradients round more than losses


@pytest.mark.parametrize("backbone", list(world_models.BACKBONES))
def test_bf16_acting_keeps_float32_actions_and_recurrent_state(backbone):
    agents = {p: _agent(gym.spaces.Discrete(3), backbone, precision=p) for p in ("32", "bf16")}
    N, g = 3, torch.Generator().manual_seed(0)
    states = {p: a.wm.initial_state(N, torch.device("cpu")) for p, a in agents.items()}
    prev = {p: torch.zeros(N, 3) for p in agents}
    for t in range(3):
        obs = {"image": torch.randint(0, 256, (N, 64, 64, 3), dtype=torch.uint8, generator=g)}
        first = torch.tensor([t == 0, False, t == 2])
        for p, agent in agents.items():
            prev[p], states[p] = agent.policy(states[p], obs, prev[p], first, explore=False)
    assert prev["bf16"].dtype == torch.float32 and torch.equal(prev["bf16"].sum(-1), torch.ones(N))
    for key, x in states["32"].mem.items():
        y = states["bf16"].mem[key]
        assert y.dtype == x.dtype, key  # the recurrence is not carried in bf16


def test_precision_is_a_train_flag_passed_to_the_agent_and_bad_values_raise():
    config = resolve(TrainConfig(env="memory/distracting-8", precision="bf16"))
    agent, _ = build_dreamer(config, torch.device("cpu"))
    assert agent.precision == "bf16"
    assert resolve(TrainConfig(env="memory/distracting-8")).precision == "32"
    with pytest.raises(ValueError, match="precision.*'fp16'"):
        _agent(gym.spaces.Discrete(3), precision="fp16")


@pytest.mark.parametrize("backbone", ["rssm", "s5"])
def test_compiled_networks_update_and_act_as_the_eager_ones(backbone):
    from torch._dynamo.utils import counters

    eager = _agent(gym.spaces.Discrete(3), backbone)
    with torch.no_grad():  # the critics start at 0: make their outputs (and the actor's advantages) nonzero
        for p in [*eager.critic.parameters(), *eager.slow_critic.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    compiled = copy.deepcopy(eager)
    torch._dynamo.reset()
    counters.clear()
    compiled.compile_networks()
    assert set(compiled.state_dict()) == set(eager.state_dict())  # checkpoints are the eager modules'
    for step in range(2):
        batch = _batch(eager.codec, seed=step)
        torch.manual_seed(step)  # the same sampled latents and imagined actions in both
        m_eager = eager.update(batch)
        torch.manual_seed(step)
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):  # no network falls back to eager
            m_compiled = compiled.update(batch)
        for name in ("loss", "loss/image", "loss/reward", "loss/cont", "loss/dyn", "loss/actor", "loss/critic", "wm_grad_norm"):
            assert m_compiled[name] == pytest.approx(m_eager[name], rel=1e-3, abs=1e-6), (step, name)
    # every network ran as compiled graphs: encoder, decoder, latent nets, heads, actor, critic and slow critic
    assert counters["stats"]["unique_graphs"] >= 9
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=lambda m: f"{name}: {m}")

    N, g = 3, torch.Generator().manual_seed(5)
    states = [a.wm.initial_state(N, torch.device("cpu")) for a in (eager, compiled)]
    prev = [torch.zeros(N, 3), torch.zeros(N, 3)]
    for t in range(3):
        obs = {"image": torch.randint(0, 256, (N, 64, 64, 3), dtype=torch.uint8, generator=g)}
        for i, agent in enumerate((eager, compiled)):
            torch.manual_seed(t)
            with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
                prev[i], states[i] = agent.policy(states[i], obs, prev[i], torch.tensor([t == 0] * N), explore=False)
        torch.testing.assert_close(prev[1], prev[0])


def test_compile_is_a_train_flag_that_compiles_the_networks():
    config = resolve(TrainConfig(env="memory/distracting-8", compile=True))
    agent, _ = build_dreamer(config, torch.device("cpu"))
    assert agent.wm.encoder._compiled_call_impl is not None and agent.critic.net._compiled_call_impl is not None
    eager, _ = build_dreamer(resolve(TrainConfig(env="memory/distracting-8")), torch.device("cpu"))
    assert eager.wm.encoder._compiled_call_impl is None
