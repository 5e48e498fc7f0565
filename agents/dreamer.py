"""The Dreamer learner (DreamerV3, Hafner et al. 2023): a world model, and an actor and critic trained in imagination.

One update (`Dreamer.update`) reads as the paper's three steps:
1. world model: `wm.loss(batch)` on replayed sequences, which also returns the posterior state
   after every replayed step (the starts of imagination);
2. imagination: from each start the actor drives the world model for `horizon` steps;
3. actor and critic: lambda-returns on the imagined rewards and continues, normalised by the
   5th-95th percentile range of the returns (EMA), train the actor (REINFORCE for discrete
   actions, gradients through the dynamics for continuous ones, plus an entropy bonus) and the
   two-hot symlog critic (regularised towards its slow EMA copy).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from agents import distributed
from agents.actions import ActionCodec
from world_models.chain import first_action_returns
from world_models.distributions import Normal, OneHotCategorical, TwoHotSymlog
from world_models.nets import MLP

PRECISIONS = ("32", "bf16")  # float32, or bfloat16 autocast around the forward passes (`Dreamer.autocast`)


@dataclass(frozen=True)
class DreamerConfig:
    """The actor-critic's hyperparameters (DreamerV3 defaults) and the three optimisers."""

    horizon: int = 15  # imagination steps
    gamma: float = 0.997  # discount (DreamerV3: 1 - 1/333)
    lam: float = 0.95  # lambda of the lambda-returns
    entropy: float = 3e-4  # actor entropy bonus (on returns normalised to ~[0, 1])
    unimix: float = 0.01  # uniform mixture of the discrete action distribution
    actor_out_scale: float = 1.0  # the actor's output layer starts at this multiple of its default init (DreamerV3: 0.01)
    min_std: float = 0.1  # continuous actions: std in [min_std, max_std]
    max_std: float = 1.0
    hidden: int = 0  # actor/critic MLP width; 0 = the world model's `hidden`
    layers: int = 0  # actor/critic hidden layers; 0 = the world model's `mlp_layers`
    critic_bins: int = 255  # two-hot symlog bins of the critic
    slow_critic_decay: float = 0.98  # the slow critic keeps this fraction of itself per update
    slow_critic_reg: float = 1.0  # weight of the critic's loss towards the slow critic's values
    # weight of the replayed-value loss (DreamerV3: 0.3): the critic also learns the values of the replayed
    # posterior states, towards lambda-returns of the replayed rewards bootstrapped by the imagined returns
    repval: float = 0.0
    # weight of an imagined bonus for expected information (0: none): the entropy of the prior over each
    # imagined step's latent (nats, summed over the latent's variables), less its mean over the batch's
    # imagined steps, added to the imagined reward. A step whose observation the world model cannot predict
    # (MiniGrid's Memory: turning to the start room's object, which is a key or a ball) pays; its mean is
    # zero, so it neither lengthens nor shortens imagined episodes. A measured option, off by default.
    explore: float = 0.0
    # weight of an all-actions policy gradient at the imagined starts (0: none; Discrete action spaces): from each
    # replayed posterior state, imagine every action for one step and bootstrap with the critic, Q(s, a) =
    # r + gamma * continue * V(s'), and raise the actor's probability of each action by its advantage over the
    # actor's mean, sum_a pi(a|s) (Q(s, a) - sum_b pi(b|s) Q(s, b)) / scale. REINFORCE learns only from the
    # actions it samples: an actor that has become near-deterministic on a wrong action (after the world model
    # re-codes its latent) rarely samples the right one, while imagination still ranks it first (the chain's
    # imagined_rank against actor_right). Off here; `memwm train` turns it on in its mirror-descent form below
    # (agents/config.py TRAIN_DREAMER). This plain form met count-16's bar on more seeds and cost cartpole-positions
    # its bar, where the one-step Q is mostly the critic's early guess (benchmarks/results/ablate-*/, the records at
    # d87e8bc, 490e9a8 and 5082d4d).
    all_actions: float = 0.0
    # The form of the all-actions term (0: the gradient above). Both that gradient and REINFORCE's move an action's
    # logit in proportion to its probability, so an actor that has pushed an action below the unimix floor hardly
    # moves back towards it, however much better imagination rates it: count-16's slow seed names one count for
    # every higher one while its one-step Q ranks the right count first (benchmarks/results/answers-count-16/ and
    # the results README). > 0: a policy mirror-descent step instead (Tomar et al. 2021, MDPO; the natural gradient
    # of a softmax policy): the actor is drawn (cross-entropy, weight all_actions) towards
    # target(a) ~ pi(a|s) exp(A(s, a) / temperature), A the normalised advantage above, whose pull on a logit is
    # target - softmax(logits), the logits before the unimix floor: as strong where pi is at its floor, and none
    # where the actions' values are alike (then only the pull of the floor's mass, which keeps no logit far below it).
    all_actions_temperature: float = 0.0
    # Where the all-actions term applies (0: at every start). > 0: only at the starts where the actor's probability,
    # before its unimix floor, of the action with the highest one-step Q is below all_actions_below / A (a share of the
    # uniform policy's): the collapsed actor the term exists for, leaving an actor that still samples the best action
    # to REINFORCE, whose early learning the term slowed where the one-step Q is mostly the critic's first guess
    # (cartpole-positions: benchmarks/results/ablate-cartpole-positions/).
    all_actions_below: float = 0.0
    # The posterior latent when acting: "sample" (DreamerV3) at every step; "eval_mode", sampled while
    # collecting experience and its mode when evaluating (a deterministic evaluation takes the mode of the
    # latent as of the action); "mode" at every acting step. Training and imagination always sample.
    act_posterior: Literal["sample", "eval_mode", "mode"] = "sample"
    retnorm_decay: float = 0.99  # EMA of the 5th and 95th return percentiles
    retnorm_low: float = 0.05
    retnorm_high: float = 0.95
    wm_lr: float = 1e-4
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    wm_eps: float = 1e-8
    ac_eps: float = 1e-5
    wm_grad_clip: float = 1000.0
    ac_grad_clip: float = 100.0
    # The world model learns rewards in the task's reward unit: divided by the largest |reward| replayed so
    # far. Two-hot bins are spaced for rewards near 1 in symlog space, so a task that pays +-1/32 a step
    # would sit inside one bin and teach the reward head almost nothing; in units of its largest reward
    # every task looks alike to the reward head, the critic and the return normaliser, and a task whose
    # rewards are all multiplied by c is learned exactly as the original (PPO's scale_rewards does the same).
    # Chosen by a paired ablation: benchmarks/results/ablate-count-16/ (the records at f1bb15f).
    scale_rewards: bool = True


class ActionDist:
    """The actor's distribution over action vectors (N, A): one-hot categoricals (Discrete,
    MultiDiscrete as independent parts, concatenated) or a Gaussian in [-1, 1] (Box)."""

    def __init__(self, parts: list[OneHotCategorical] | Normal):
        self.parts = parts

    def sample(self) -> Tensor:
        if isinstance(self.parts, Normal):
            x = self.parts.sample()
            return x + (x.clamp(-1.0, 1.0) - x).detach()  # clipped, straight-through for the dynamics gradient
        return torch.cat([p.sample() for p in self.parts], -1)

    def mode(self) -> Tensor:
        if isinstance(self.parts, Normal):
            return self.parts.mode().clamp(-1.0, 1.0)
        return torch.cat([p.mode() for p in self.parts], -1)

    def log_prob(self, action: Tensor) -> Tensor:
        """action (..., A) -> (...)."""
        if isinstance(self.parts, Normal):
            return self.parts.log_prob(action)
        sizes = [p.logits.shape[-1] for p in self.parts]
        return sum(p.log_prob(a) for p, a in zip(self.parts, action.split(sizes, -1)))

    def entropy(self) -> Tensor:
        if isinstance(self.parts, Normal):
            return self.parts.entropy()
        return sum(p.entropy() for p in self.parts)


class Actor(nn.Module):
    """features (..., F) -> ActionDist over action vectors (..., A)."""

    def __init__(self, feat_dim: int, codec: ActionCodec, hidden: int, layers: int, norm: str, act: str, config: DreamerConfig):
        super().__init__()
        self.codec, self.config = codec, config
        out = codec.dim if codec.discrete else 2 * codec.dim
        self.net = MLP(feat_dim, out, hidden, layers, norm, act)
        with torch.no_grad():  # a small output layer starts the policy near uniform (near the middle of a Box)
            self.net.net[-1].weight.mul_(config.actor_out_scale)
            self.net.net[-1].bias.mul_(config.actor_out_scale)

    def forward(self, feat: Tensor) -> ActionDist:
        x = self.net(feat)
        if self.codec.discrete:
            return ActionDist([OneHotCategorical(logits, self.config.unimix) for logits in x.split(self.codec.sizes, -1)])
        mean, std = x.float().chunk(2, -1)
        lo, hi = self.config.min_std, self.config.max_std
        return ActionDist(Normal(torch.tanh(mean), (hi - lo) * torch.sigmoid(std + 2.0) + lo))


class Critic(nn.Module):
    """features (..., F) -> TwoHotSymlog over returns; the output layer starts at zero (value 0 everywhere)."""

    def __init__(self, feat_dim: int, hidden: int, layers: int, norm: str, act: str, bins: int):
        super().__init__()
        self.net = MLP(feat_dim, bins, hidden, layers, norm, act)
        out = self.net.net[-1]
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)

    def forward(self, feat: Tensor) -> TwoHotSymlog:
        return TwoHotSymlog(self.net(feat))


class ReturnNorm(nn.Module):
    """EMA of the `low` and `high` percentiles of the returns; `scale` = max(1, high - low) (DreamerV3)."""

    def __init__(self, low: float, high: float, decay: float):
        super().__init__()
        self.q = (low, high)
        self.decay = decay
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: Tensor) -> Tensor:
        """Fold in a batch of returns (any shape); return the new scale ()."""
        x = returns.detach().float().flatten()
        if x.numel() > 1 << 24:  # torch.quantile's size limit; a random subset estimates it as well
            x = x[torch.randint(0, x.numel(), (1 << 24,), device=x.device)]
        q = torch.quantile(x, torch.tensor(self.q, device=x.device))
        q = distributed.all_mean(q)  # data-parallel runs: every rank keeps the same EMA (mean of the ranks' percentiles)
        self.low.mul_(self.decay).add_((1 - self.decay) * q[0])
        self.high.mul_(self.decay).add_((1 - self.decay) * q[1])
        return self.scale

    @property
    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=1.0)


def lambda_returns(reward: Tensor, discount: Tensor, value: Tensor, lam: float) -> Tensor:
    """TD(lambda) returns of an imagined trajectory.

    reward, discount: (N, H) the reward and gamma*continue of arriving at steps 1..H;
    value: (N, H+1) the critic at steps 0..H. Returns (N, H):
    R_t = r_{t+1} + d_{t+1} * ((1 - lam) * v_{t+1} + lam * R_{t+1}),  R_H = v_H.
    """
    if reward.shape != discount.shape or value.shape != (reward.shape[0], reward.shape[1] + 1):
        raise ValueError(
            f"lambda_returns: reward {tuple(reward.shape)} and discount {tuple(discount.shape)} must be (N, H) "
            f"and value {tuple(value.shape)} (N, H+1)"
        )
    out = []
    ret = value[:, -1]
    for t in reversed(range(reward.shape[1])):
        ret = reward[:, t] + discount[:, t] * ((1 - lam) * value[:, t + 1] + lam * ret)
        out.append(ret)
    return torch.stack(out[::-1], 1)


def replay_returns(reward: Tensor, is_last: Tensor, is_terminal: Tensor, boot: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(lambda) returns along replayed windows, bootstrapped by the imagined returns (DreamerV3's repval).

    reward, is_last, is_terminal, boot: (B, L); reward[:, t] is the reward of arriving at step t and boot[:, t]
    the imagined lambda-return from the posterior state of step t. Returns (B, L-1), the return from steps
    0..L-2: R_t = r_{t+1} + gamma (1 - terminal_{t+1}) ((1 - l) boot_{t+1} + l R_{t+1}) with
    l = lam (1 - last_{t+1}), so a return never crosses the end of an episode and R_{L-1} = boot_{L-1}.
    """
    if not (reward.shape == is_last.shape == is_terminal.shape == boot.shape) or reward.dim() != 2:
        raise ValueError(
            f"replay_returns: reward {tuple(reward.shape)}, is_last {tuple(is_last.shape)}, is_terminal "
            f"{tuple(is_terminal.shape)} and boot {tuple(boot.shape)} must all be (B, L)"
        )
    live = gamma * (1.0 - is_terminal[:, 1:].float())
    mix = lam * (1.0 - is_last[:, 1:].float())
    out = []
    ret = boot[:, -1]
    for t in reversed(range(reward.shape[1] - 1)):
        ret = reward[:, t + 1] + live[:, t] * ((1 - mix[:, t]) * boot[:, t + 1] + mix[:, t] * ret)
        out.append(ret)
    return torch.stack(out[::-1], 1)


def explore_bonus(prior) -> Tensor:
    """The expected-information bonus of imagined steps 1..H (DreamerConfig.explore): the entropy of each step's
    prior (a world_models Latent with stats (N, H, S)), summed over its variables, less its mean over all N*H
    steps. Returns (N, H), detached."""
    entropy = prior.entropy().detach().float()
    if entropy.dim() == 3:  # a Gaussian latent's entropy per variable
        entropy = entropy.sum(-1)
    return entropy - entropy.mean()


def _clip(name: str, params, max_norm: float) -> Tensor:
    """Clip gradients to `max_norm`; a non-finite norm stops training before the optimiser step spoils the weights."""
    norm = nn.utils.clip_grad_norm_(list(params), max_norm)
    if not torch.isfinite(norm):
        raise FloatingPointError(f"the {name} gradient is not finite (norm {norm.item()})")
    return norm


def _average_buffers(module: nn.Module) -> None:
    """Replace the floating-point buffers of `module` by their mean over ranks, in one collective (nothing in
    one process). The sum runs in float64, so buffers that already agree keep their exact values."""
    if distributed.world_size() == 1:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    mean = distributed.all_mean(torch.cat([b.detach().reshape(-1).double() for b in buffers]))
    offset = 0
    for b in buffers:
        b.copy_(mean[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Parameters of `modules` take no gradient inside the block (gradients still flow through them)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Dreamer(nn.Module):
    """The world model, actor, critic, slow critic, return normaliser and their optimisers."""

    def __init__(self, wm: nn.Module, act_space, config: DreamerConfig | None = None, wm_config=None, precision: str = "32"):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.config = config = config or DreamerConfig()
        self.wm = wm
        self.codec = ActionCodec(act_space)
        if self.codec.dim != wm.act_dim:
            raise ValueError(f"the world model takes actions of size {wm.act_dim}, but {act_space} encodes to {self.codec.dim}")
        wmc = wm_config if wm_config is not None else wm.config  # the actor and critic share its sizes and norms
        hidden, layers = config.hidden or wmc.hidden, config.layers or wmc.mlp_layers
        self.actor = Actor(wm.feat_dim, self.codec, hidden, layers, wmc.norm, wmc.act, config)
        self.critic = Critic(wm.feat_dim, hidden, layers, wmc.norm, wmc.act, config.critic_bins)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = ReturnNorm(config.retnorm_low, config.retnorm_high, config.retnorm_decay)
        # the largest |reward| replayed so far (0: none yet); not in the module's state dict, so that weights
        # saved before it existed still load: DreamerAgent saves it with the run's checkpoint
        self.register_buffer("reward_unit", torch.zeros(()), persistent=False)
        if config.all_actions and not self.codec.enumerable:
            raise ValueError(f"--dreamer.all-actions needs a Discrete action space, got {act_space}")
        self.opt_wm = torch.optim.Adam(wm.parameters(), lr=config.wm_lr, eps=config.wm_eps)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, eps=config.ac_eps)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, eps=config.ac_eps)

    def compile_networks(self) -> None:
        """Compile the dense networks in place with torch.compile (TorchInductor: C++ kernels on a CPU, Triton on a
        GPU): the image encoder and decoder, the MLPs of the latents, the heads, the actor and the critics. It fuses
        each layer's norm and activation (and their gradients) into one pass over the activations, which eager
        PyTorch makes one pass each. Parameters, state dict and optimisers are those of the eager modules, and the
        results equal theirs up to float rounding; the first update, and the first acting step at each new batch
        shape, pay the compilation. The backbone's scan and the distributions stay eager."""
        from torch._dynamo import config as dynamo_config  # imported here: it is slow to import, and rarely used

        wm = self.wm
        parts = [wm.encoder, wm.decoder, wm.reward_head, wm.cont_head, wm.posterior_net.net, wm.prior_net.net]
        parts += [self.actor.net, self.critic.net, self.slow_critic.net]
        # the MLPs share one forward, compiled once per module, input rank and grad mode: past torch's limit of 8
        # graphs per function the rest would run eager
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 8 * len(parts))
        for module in parts:
            if module is not None:
                module.compile()

    def autocast(self):
        """The forward passes' precision: bfloat16 autocast on the agent's device when `precision` is "bf16"
        (as DreamerV3 itself computes), else a no-op. Matrix products and convolutions run in bf16; the
        distributions cast their logits to float32, so log-probs, KLs, returns and normalisers stay float32."""
        device = next(self.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def policy(self, state, obs: dict[str, Tensor], prev_action: Tensor, is_first: Tensor, explore: bool = True):
        """One env step for N environments: obs dict of (N, ...), prev_action (N, A), is_first (N,).

        Returns (action (N, A), state); the world model resets the rows where is_first. explore=False takes the
        actor's mode, and the posterior's mode too where config.act_posterior says so.
        """
        sample = self.config.act_posterior == "sample" or (explore and self.config.act_posterior == "eval_mode")
        with self.autocast():
            state, feat = self.wm.step(state, prev_action, obs, is_first, sample=sample)
            dist = self.actor(feat)
            action = dist.sample() if explore else dist.mode()
        return action.detach(), state

    # ------------------------------------------------------------------ learning
    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One update of world model, actor and critic on a batch of (B, L, ...) tensors; returns metrics."""
        cfg = self.config
        self.train()
        if cfg.scale_rewards:
            batch = {**batch, "reward": batch["reward"] / self.update_reward_unit(batch["reward"])}
        with self.autocast():
            loss, metrics, starts = self.wm.loss(batch, return_starts=True)
        self.opt_wm.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.wm.parameters())  # data parallel: the mean gradient over ranks
        # a decoder probe (decoder-free objectives) learns on detached features: clipped on its own,
        # so that its large image gradient cannot shrink the model's
        probe = {id(p) for p in self.wm.probe_parameters()}
        wm_norm = _clip("world-model", [p for p in self.wm.parameters() if id(p) not in probe], cfg.wm_grad_clip)
        if probe:
            _clip("probe decoder", self.wm.probe_parameters(), cfg.wm_grad_clip)
        self.opt_wm.step()
        _average_buffers(self.wm)  # data parallel: running statistics the loss keeps stay equal on every rank

        terminal = batch["is_terminal"].reshape(-1).float()  # (B*L,), aligned with the starts
        with self.autocast():
            replay = {k: batch[k] for k in ("reward", "is_last", "is_terminal")} if cfg.repval else None
            ac_loss, ac_metrics = self.actor_critic_loss(starts, terminal, replay)
        self.opt_actor.zero_grad(set_to_none=True)
        self.opt_critic.zero_grad(set_to_none=True)
        ac_loss.backward()
        distributed.average_gradients([*self.actor.parameters(), *self.critic.parameters()])
        actor_norm = _clip("actor", self.actor.parameters(), cfg.ac_grad_clip)
        critic_norm = _clip("critic", self.critic.parameters(), cfg.ac_grad_clip)
        self.opt_actor.step()
        self.opt_critic.step()
        self.update_slow_critic()

        out = {k: float(v) for k, v in metrics.items()}
        out.update({k: float(v) for k, v in ac_metrics.items()})
        out.update(wm_grad_norm=float(wm_norm), actor_grad_norm=float(actor_norm), critic_grad_norm=float(critic_norm))
        out["reward_unit"] = float(self.reward_unit)
        return out

    @torch.no_grad()
    def update_reward_unit(self, reward: Tensor) -> Tensor:
        """Fold the batch's rewards (B, L) into the running largest |reward|; return the divisor () (1 until a
        nonzero reward has been seen). Data-parallel ranks fold in the mean of their batch maxima, so they agree."""
        seen = distributed.all_mean(reward.detach().abs().max().float().reshape(1))[0]
        self.reward_unit.copy_(torch.maximum(self.reward_unit, seen))
        return torch.where(self.reward_unit > 0, self.reward_unit, torch.ones_like(self.reward_unit))

    def actor_critic_loss(self, starts, terminal: Tensor, replay: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Imagine `horizon` steps from every start (N states) and return (actor + critic loss, metrics).

        terminal: (N,) whether each start's step ended its episode (the imagined first continue).
        replay: the replayed windows' reward, is_last and is_terminal, (B, L) with B*L = N in the starts' order;
        given, the critic also learns the replayed states' values (`repval`, weighted by config.repval).
        """
        cfg = self.config
        discrete = self.codec.discrete
        dists: list[ActionDist] = []  # the actor at imagined steps 0..H, kept with grad: the actor loss reads them

        def act(feat: Tensor) -> Tensor:  # (N, F) -> (N, A)
            with torch.enable_grad():
                dists.append(self.actor(feat.detach()))
            return dists[-1].sample()

        with frozen(self.wm):
            # REINFORCE needs no gradient through the imagination; continuous actions backprop through it.
            with torch.no_grad() if discrete else contextlib.nullcontext():
                imag = self.wm.imagine(starts, act, cfg.horizon)
                feat = imag.features  # (N, H+1, F)
                reward = self.wm.reward(feat, imag.actions)  # (N, H+1)
                bonus = explore_bonus(imag.prior) if cfg.explore else None  # (N, H)
                if bonus is not None:
                    reward = torch.cat([reward[:, :1], reward[:, 1:] + cfg.explore * bonus], 1)
                cont = self.wm.cont(feat)  # (N, H+1)
                cont = torch.cat([1.0 - terminal[:, None], cont[:, 1:]], 1)
        if discrete:  # one critic pass: its detached values bootstrap the returns, its logits at steps 0..H-1 train it
            logits = self.critic.net(feat.detach())  # (N, H+1, bins)
            value = TwoHotSymlog(logits.detach()).mean  # (N, H+1)
            value_dist = TwoHotSymlog(logits[:, :-1])
        else:  # the returns' gradient flows through the critic's input into the dynamics: a frozen pass for them
            with frozen(self.critic):
                value = self.critic(feat).mean  # (N, H+1)
            value_dist = self.critic(feat[:, :-1].detach())
        ret = lambda_returns(reward[:, 1:], cfg.gamma * cont[:, 1:], value, cfg.lam)  # (N, H)
        weight = torch.cumprod(cont, 1)[:, :-1].detach()  # (N, H): the chance the imagined episode is still running
        scale = self.retnorm.update(ret)
        entropy = torch.stack([d.entropy() for d in dists[:-1]], 1)  # (N, H)
        if discrete:
            advantage = ((ret - value[:, :-1]) / scale).detach()
            actions = imag.actions[:, :-1].detach().unbind(1)  # H of (N, A)
            objective = torch.stack([d.log_prob(a) for d, a in zip(dists, actions)], 1) * advantage  # (N, H)
        else:
            objective = ret / scale  # gradients flow through the dynamics into the actor's samples
        actor_loss = -(weight * (objective + cfg.entropy * entropy)).mean()
        metrics = {}
        if cfg.all_actions:
            gain, term_metrics = self.all_actions_objective(starts, dists[0], scale)  # (N,)
            actor_loss = actor_loss - cfg.all_actions * (weight[:, 0] * gain).mean()
            metrics.update(term_metrics)

        slow_value = self.slow_critic(feat[:, :-1].detach()).mean.detach()
        critic_nll = -value_dist.log_prob(ret.detach()) - cfg.slow_critic_reg * value_dist.log_prob(slow_value)
        critic_loss = (weight * critic_nll).mean()
        if bonus is not None:  # how far the bonus spreads the imagined rewards, in the reward's unit
            metrics["explore_bonus_std"] = (cfg.explore * bonus).std().detach()
        if replay is not None:
            repval = self.replay_value_loss(feat[:, 0].detach(), ret[:, 0].detach(), replay)
            critic_loss = critic_loss + cfg.repval * repval
            metrics["loss/repval"] = repval.detach()
        for name, term in (("actor", actor_loss), ("critic", critic_loss)):
            if not torch.isfinite(term):
                raise FloatingPointError(f"loss/{name} is not finite ({term.item()})")
        metrics = {
            **metrics,
            "loss/actor": actor_loss.detach(),
            "loss/critic": critic_loss.detach(),
            "actor_entropy": entropy.mean().detach(),
            "return_scale": scale,
            "return_low": self.retnorm.low,
            "return_high": self.retnorm.high,
            "imag_return": ret.mean().detach(),
            "imag_reward": reward[:, 1:].mean().detach(),
            "value": value.mean().detach(),
        }
        return actor_loss + critic_loss, metrics

    @torch.no_grad()
    def one_step_values(self, starts) -> Tensor:
        """Q(s, a) = r + gamma * continue * V(s') (N, A) for every action a at N start states, one step imagined from
        the prior's mode (world_models.chain.first_action_returns with horizon 1), V the critic's mean."""
        with frozen(self.wm, self.critic):
            # one step: no action after the first enters Q, so the actor is not run over the N*A imagined states
            no_action = lambda f: f.new_zeros(f.shape[0], self.codec.dim)  # noqa: E731
            return first_action_returns(
                self.wm, starts, no_action, self.codec.dim, 1, self.config.gamma, value=lambda f: self.critic(f).mean
            )

    def all_actions_objective(self, starts, policy: ActionDist, scale: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The all-actions policy objective (DreamerConfig.all_actions) at N start states, and its metrics (detached
        scalars): all_actions_agree, how often the actor's mode there is the action of the highest Q; with
        all_actions_below > 0, all_actions_open, the share of the starts where the actor's probability of that action
        is below it, the only ones where the objective is not zero (DreamerConfig).

        policy: the actor's distribution at the starts (with grad). Q(s, a) = r + gamma * continue * V(s') for every
        action a, one step imagined from the prior's mode (world_models.chain.first_action_returns with horizon 1),
        V the critic's mean. The objective (N,): sum_a pi(a|s) (Q(s, a) - sum_b pi(b|s) Q(s, b)) / scale; with
        all_actions_temperature T > 0, sum_a target(a) log pi(a|s), target ~ pi exp(advantage / T) held fixed."""
        q = self.one_step_values(starts)  # (N, A)
        probs = policy.parts[0].probs  # (N, A)
        advantage = (q - (probs.detach() * q).sum(-1, keepdim=True)) / scale
        best = q.argmax(-1)  # (N,)
        agree = (probs.detach().argmax(-1) == best).float().mean()
        temperature = self.config.all_actions_temperature
        if not temperature:
            gain = (probs * advantage).sum(-1)
        else:
            # the mirror-descent step from pi, as a target for the actor's logits before the unimix floor: the
            # cross-entropy's pull on them is target - softmax(logits), where the mixed pi's would vanish below the floor
            target = torch.softmax(probs.detach().log() + advantage / temperature, -1)
            gain = (target * torch.log_softmax(policy.parts[0].base.float(), -1)).sum(-1)
        metrics = {"all_actions_agree": agree}
        below = self.config.all_actions_below
        if below:  # only where the actor has all but stopped sampling imagination's best action
            base = torch.softmax(policy.parts[0].base.detach().float(), -1)  # (N, A), before the unimix floor
            gate = base.gather(1, best[:, None])[:, 0] < below / base.shape[-1]
            gain = gain * gate
            metrics["all_actions_open"] = gate.float().mean()
        return gain, metrics

    def replay_value_loss(self, feat: Tensor, imag_return: Tensor, replay: dict[str, Tensor]) -> Tensor:
        """The critic's loss on the replayed posterior states (DreamerV3's repval), without its weight.

        feat: (N, F) the start states' features; imag_return: (N,) the imagined lambda-return from each;
        replay: reward, is_last, is_terminal (B, L), B*L = N. Targets are replay_returns; a step that ends its
        episode (is_last) has no future in the window and is not trained.
        """
        B, L = replay["reward"].shape
        if B * L != feat.shape[0]:
            raise ValueError(f"replay_value_loss: {feat.shape[0]} start states for replayed windows of {B} x {L}")
        cfg = self.config
        boot = imag_return.reshape(B, L)
        target = replay_returns(replay["reward"].float(), replay["is_last"], replay["is_terminal"], boot, cfg.gamma, cfg.lam)
        feat = feat.reshape(B, L, -1)[:, :-1]  # (B, L-1, F)
        dist = self.critic(feat)
        slow = self.slow_critic(feat).mean.detach()
        nll = -dist.log_prob(target.detach()) - cfg.slow_critic_reg * dist.log_prob(slow)
        weight = 1.0 - replay["is_last"][:, :-1].float()
        return (weight * nll).sum() / weight.sum().clamp(min=1.0)

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        d = self.config.slow_critic_decay
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.mul_(d).add_((1 - d) * fast)

    # ------------------------------------------------------------------ checkpoints
    def optimiser_state(self) -> dict:
        return {"wm": self.opt_wm.state_dict(), "actor": self.opt_actor.state_dict(), "critic": self.opt_critic.state_dict()}

    def load_optimiser_state(self, state: dict) -> None:
        self.opt_wm.load_state_dict(state["wm"])
        self.opt_actor.load_state_dict(state["actor"])
        self.opt_critic.load_state_dict(state["critic"])


__all__ = ["Dreamer", "DreamerConfig", "Actor", "Critic", "ReturnNorm", "ActionDist", "lambda_returns", "replay_returns", "frozen"]
