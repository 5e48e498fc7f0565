"""Recurrent PPO (Schulman et al. 2017) whose memory is any memwm backbone: the model-free baseline
and the in-context RL learner of Lu et al. 2023 ("Structured State Space Models for In-Context RL").

The algorithm reads as one story, as in CleanRL's `ppo_atari_lstm.py`:

1. collect: `num_envs` vectorised trials step `rollout` times; the backbone's state is carried
   from step to step and from chunk to chunk, and reset only where `is_first` (a trial start, so
   the memory spans the episodes of a trial); the state at the start of the chunk is stored.
2. advantages: GAE over the chunk, bootstrapped from the value of the observation after it.
3. update: `epochs` passes over minibatches of whole env sequences; each sequence is re-run
   through the backbone from its stored initial state (`backbone.forward` over the chunk, with
   the same resets), then the clipped objective, the value loss and the entropy bonus.
4. log: stable scalar names under `ppo/...`, `episode/...`, `perf/...`.

Steps follow DreamerV3's stream format, which the environments emit: the observation at step t
comes with the reward of the action before it and the flags `is_first`, `is_last`,
`is_terminal`; the action taken at an `is_last` observation goes nowhere (the env resets), so it
is masked out of the loss, and a truncated (not terminal) trial bootstraps from its last value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from agents.actions import ActionCodec
from agents.common import obs_to_torch, training_seed
from agents.dreamer import ActionDist
from agents.loop import Acted
from world_models import backbones
from world_models.config import WorldModelConfig
from world_models.distributions import Normal, OneHotCategorical, symlog
from world_models.imagine import model_obs_space
from world_models.nets import MLP, ImageEncoder

State = dict[str, Tensor]  # a backbone's memory: name -> (B, ...) tensor


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of recurrent PPO (CleanRL's defaults where they apply)."""

    rollout: int = 128  # env steps per chunk: the sequence length of an update
    lr: float = 3e-4  # Adam learning rate
    anneal_lr: bool = False  # linear learning-rate decay to zero over the run
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE (Schulman et al. 2016)
    epochs: int = 4  # passes over each chunk
    minibatches: int = 4  # minibatches of whole env sequences per pass (at most num_envs)
    clip: float = 0.2  # PPO's clipped surrogate ratio range
    clip_value: bool = True  # clip the value update like the policy (PPO2 trick)
    norm_adv: bool = True  # normalise advantages per minibatch (PPO2 trick)
    scale_rewards: bool = True  # divide rewards by the running std of the discounted return (PPO2 trick)
    vf_coef: float = 0.5  # weight of the value loss
    ent_coef: float = 0.01  # weight of the entropy bonus
    max_grad_norm: float = 0.5  # global gradient clipping (PPO2 trick)
    target_kl: float = 0.0  # stop the epochs of a chunk early above this KL (0: never)
    hidden: int = 64  # units of the observation encoder and the actor/critic heads
    width: int = 64  # backbone width (rssm: the GRU size)
    init_log_std: float = -0.5  # continuous actions: initial log standard deviation

    def __post_init__(self):
        for name in ("rollout", "epochs", "minibatches", "width", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------- the losses
def gae(reward: Tensor, value: Tensor, is_last: Tensor, is_terminal: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over a chunk in stream format.

    All inputs (B, T+1), index t = observation t, the last one being the observation after the
    chunk: reward[:, t] and the flags arrived with observation t; value[:, t] = V(obs_t).
        delta_t = r_{t+1} + gamma (1 - terminal_{t+1}) V_{t+1} - V_t
        A_t     = delta_t + gamma lam (1 - last_{t+1}) A_{t+1}
    and A_t = 0 where obs_t is last (its action is ignored by the env).
    Returns (advantages (B, T), returns (B, T) = A + V).
    """
    if not (reward.shape == value.shape == is_last.shape == is_terminal.shape) or reward.dim() != 2:
        raise ValueError(
            f"gae: reward, value, is_last, is_terminal must all be (B, T+1); got {tuple(reward.shape)}, "
            f"{tuple(value.shape)}, {tuple(is_last.shape)}, {tuple(is_terminal.shape)}"
        )
    T = reward.shape[1] - 1
    live = (~is_terminal[:, 1:]).to(value.dtype)  # (B, T)
    carry = (~is_last[:, 1:]).to(value.dtype)
    delta = reward[:, 1:] + gamma * live * value[:, 1:] - value[:, :-1]
    adv = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in reversed(range(T)):
        running = delta[:, t] + gamma * lam * carry[:, t] * running
        adv[:, t] = running
    adv = adv * (~is_last[:, :-1]).to(value.dtype)
    return adv, adv + value[:, :-1]


def ppo_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    value: Tensor,
    old_value: Tensor,
    returns: Tensor,
    entropy: Tensor,
    mask: Tensor,
    cfg: PPOConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO objective on one minibatch; every input (B, T), `mask` (B, T) bool marks the real steps.

    Clipped surrogate (PPO eq. 7), value loss (clipped like the policy if cfg.clip_value) and the
    entropy bonus, each a mean over the masked steps. Returns (loss, metrics).
    """
    m = mask.to(logp.dtype)
    n = m.sum().clamp(min=1.0)

    def mean(x: Tensor) -> Tensor:
        return (x * m).sum() / n

    if cfg.norm_adv:
        mu = mean(adv)
        adv = (adv - mu) / (mean((adv - mu) ** 2).sqrt() + 1e-8)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    pg_loss = mean(torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)))
    if cfg.clip_value:
        clipped = old_value + (value - old_value).clamp(-cfg.clip, cfg.clip)
        v_loss = 0.5 * mean(torch.max((value - returns) ** 2, (clipped - returns) ** 2))
    else:
        v_loss = 0.5 * mean((value - returns) ** 2)
    ent = mean(entropy)
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    with torch.no_grad():
        metrics = {
            "ppo/policy_loss": pg_loss.detach(),
            "ppo/value_loss": v_loss.detach(),
            "ppo/entropy": ent.detach(),
            "ppo/approx_kl": mean((ratio - 1) - log_ratio),  # Schulman's low-variance KL estimator
            "ppo/clip_fraction": mean(((ratio - 1).abs() > cfg.clip).to(m.dtype)),
        }
    return loss, metrics


class RewardScale:
    """Reward scaling (Engstrom et al. 2020, "Implementation Matters"; gymnasium's NormalizeReward):
    each env keeps its discounted return R_t = gamma R_{t-1} + r_t (zeroed at a trial start), and
    rewards are divided by the running standard deviation of R over every env and step, so that
    value targets stay near unit scale whatever the task's reward scale (bandit trials sum to ~80)."""

    def __init__(self, gamma: float, eps: float = 1e-8):
        self.gamma, self.eps = gamma, eps
        self.ret: np.ndarray | None = None  # (N,) each env's running discounted return
        self.count, self.mean, self.var = 1e-4, 0.0, 1.0

    def __call__(self, reward: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        """reward (N,) that arrived with observations whose flags are is_first (N,) -> scaled (N,) float32."""
        if self.ret is None:
            self.ret = np.zeros(len(reward))
        self.ret = np.where(is_first, 0.0, self.gamma * self.ret + reward)
        # Chan et al.'s parallel update of the running mean and variance with this batch
        n, mean, var = len(self.ret), self.ret.mean(), self.ret.var()
        delta, total = mean - self.mean, self.count + n
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.mean, self.count = self.mean + delta * n / total, total
        return (reward / np.sqrt(self.var + self.eps)).astype(np.float32)

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.var = state["count"], state["mean"], state["var"]


# ---------------------------------------------------------------------------------------------- the network
class RecurrentActorCritic(nn.Module):
    """Observation encoder -> memory backbone -> actor and critic heads.

    Observations: `vector` (symlog, then an MLP) and/or `image` (the world models' CNN encoder).
    Actions are vectors in `agents.actions.ActionCodec`'s layout: one-hots for Discrete (and
    MultiDiscrete, independent parts), or for Box a Gaussian in [-1, 1] with a state-independent
    log std (CleanRL's continuous PPO); the sample is stored unclipped and clipped by the codec.
    The backbone's internals (layers, SSM state sizes, norm) come from the WorldModelConfig, its
    width from `cfg.width`.
    """

    def __init__(
        self,
        obs_space: gymnasium.spaces.Dict,
        act_space: gymnasium.Space,
        backbone: str,
        cfg: PPOConfig,
        wm_config: WorldModelConfig | None = None,
    ):
        super().__init__()
        wm_config = wm_config or WorldModelConfig.preset("tiny")
        self.keys = [k for k in ("vector", "image") if k in obs_space.spaces]
        if not self.keys:
            raise ValueError(f"PPO needs a 'vector' or 'image' observation; the env has {sorted(obs_space.spaces)}")
        enc_dim = 0
        if "vector" in self.keys:
            self.vector_enc = MLP(int(np.prod(obs_space["vector"].shape)), None, cfg.hidden, 1)
            enc_dim += self.vector_enc.out_dim
        if "image" in self.keys:
            self.image_enc = ImageEncoder(wm_config.cnn_depth)
            enc_dim += self.image_enc.out_dim
        self.backbone = backbones.make(backbone, enc_dim, cfg.width, wm_config)
        self.codec = ActionCodec(act_space)
        feat = self.backbone.out_dim
        self.actor = MLP(feat, self.codec.dim, cfg.hidden, 1)
        self.critic = MLP(feat, 1, cfg.hidden, 1)
        if not self.codec.discrete:
            self.log_std = nn.Parameter(torch.full((self.codec.dim,), cfg.init_log_std))
        with torch.no_grad():  # CleanRL's output scales: a near-uniform policy, a near-zero value
            self.actor.net[-1].weight.mul_(0.01)
            self.critic.net[-1].weight.mul_(0.1)

    def initial_state(self, batch: int, device=None) -> State:
        return self.backbone.initial_state(batch, device)

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """obs tensors (..., K) / (..., 64, 64, 3) -> (..., enc_dim)."""
        parts = []
        if "vector" in self.keys:
            parts.append(self.vector_enc(symlog(obs["vector"].float())))
        if "image" in self.keys:
            parts.append(self.image_enc(obs["image"]))
        return torch.cat(parts, -1)

    def heads(self, feat: Tensor) -> tuple[ActionDist, Tensor]:
        """feat (..., F) -> (distribution over action vectors (..., A), value (...))."""
        out = self.actor(feat)
        if self.codec.discrete:
            dist = ActionDist([OneHotCategorical(logits) for logits in out.split(self.codec.sizes, -1)])
        else:
            dist = ActionDist(Normal(out, self.log_std.exp().expand_as(out)))
        return dist, self.critic(feat)[..., 0]

    def forward(self, obs: dict[str, Tensor], is_first: Tensor, state: State):
        """Whole sequences: obs (B, L, ...), is_first (B, L) -> (dist over (B, L, A), value (B, L), state)."""
        feat, state = self.backbone(self.encode(obs), is_first, state)
        return (*self.heads(feat), state)

    def step(self, obs: dict[str, Tensor], is_first: Tensor, state: State):
        """One env step: obs (B, ...), is_first (B,) -> (dist over (B, A), value (B,), state)."""
        feat, state = self.backbone.step(self.encode(obs), is_first, state)
        return (*self.heads(feat), state)

    def sample(self, dist: ActionDist, greedy: bool = False) -> Tensor:
        """An action vector (B, A); `greedy` takes the mode. Gaussian samples stay unclipped (the env clips)."""
        if greedy:
            return dist.mode().detach()
        return (dist.parts.sample() if isinstance(dist.parts, Normal) else dist.sample()).detach()


def index_state(state: State, index) -> State:
    """Rows `index` of every tensor of a backbone state."""
    return {k: v[index] for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- the learner
@dataclass
class Rollout:
    """One chunk of `num_envs` sequences (B = num_envs, T = rollout); index t = observation t."""

    obs: dict[str, Tensor]  # (B, T, ...)
    is_first: Tensor  # (B, T) bool
    action: Tensor  # (B, T, A) action vectors (ActionCodec layout)
    logp: Tensor  # (B, T)
    value: Tensor  # (B, T)
    advantage: Tensor  # (B, T)
    returns: Tensor  # (B, T)
    mask: Tensor  # (B, T) bool: the action reached the env (obs t is not last)
    state0: State  # the backbone's state before observation 0, (B, ...) each


class PPO:
    """Recurrent PPO: owns the actor-critic, its optimiser and the env loop's carried state.

    `collect(envs)` steps the vectorised trials for one chunk and returns a `Rollout`; `update(rollout)`
    runs the epochs; `act(obs, state)` picks actions for evaluation.
    """

    def __init__(
        self,
        obs_space: gymnasium.spaces.Dict,
        act_space: gymnasium.Space,
        backbone: str,
        cfg: PPOConfig = PPOConfig(),
        wm_config: WorldModelConfig | None = None,
        device: str | torch.device = "cpu",
    ):
        self.cfg, self.device = cfg, torch.device(device)
        self.model = RecurrentActorCritic(obs_space, act_space, backbone, cfg, wm_config).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)  # CleanRL's Adam epsilon
        self.reward_scale = RewardScale(cfg.gamma)
        self._obs = None  # the env's current observation (numpy, batched)
        self._state = None  # the backbone's state before the current observation

    # ---- 1. collect
    @torch.no_grad()
    def collect(self, envs: gymnasium.vector.VectorEnv, seed: int | None = None) -> tuple[Rollout, dict[str, list]]:
        """Step `envs` for cfg.rollout steps, carrying the backbone's memory (reset only at is_first).

        Returns the rollout with its advantages, and the returns and lengths of the trials that ended.
        """
        cfg, model, dev = self.cfg, self.model, self.device
        if self._obs is None:
            self._obs, _ = envs.reset(seed=seed)
            self._reward = np.zeros(envs.num_envs, np.float32)  # the reward that came with self._obs
            self._scaled = self._reward.copy()  # the same, as the learner sees it
            self._state = model.initial_state(envs.num_envs, dev)
            self._trial_return, self._trial_length = np.zeros(envs.num_envs), np.zeros(envs.num_envs, np.int64)
        obs, reward, scaled, state0 = self._obs, self._reward, self._scaled, self._state
        state, keys = state0, model.keys
        steps: dict[str, list] = {k: [] for k in ("obs", "is_first", "action", "logp", "value", "reward", "is_last", "is_terminal")}
        finished: dict[str, list] = {"return": [], "length": []}
        for t in range(cfg.rollout + 1):
            o = obs_to_torch(obs, dev)
            is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=dev)
            dist, value, next_state = model.step(o, is_first, state)
            steps["value"].append(value)
            steps["reward"].append(torch.as_tensor(scaled, dtype=torch.float32, device=dev))
            steps["is_last"].append(torch.as_tensor(np.asarray(obs["is_last"]), device=dev))
            steps["is_terminal"].append(torch.as_tensor(np.asarray(obs["is_terminal"]), device=dev))
            if t == cfg.rollout:  # the observation after the chunk: its value bootstraps; it is acted on next chunk
                break
            self._track(obs, reward, finished)
            action = model.sample(dist)
            steps["obs"].append(o), steps["is_first"].append(is_first), steps["action"].append(action)
            steps["logp"].append(dist.log_prob(action))
            obs, reward, _, _, _ = envs.step(model.codec.to_env(action.cpu().numpy()))
            scaled = self.reward_scale(np.asarray(reward, np.float64), np.asarray(obs["is_first"])) if cfg.scale_rewards else reward
            state = next_state
        self._obs, self._reward, self._scaled, self._state = obs, reward, scaled, state

        S = {k: torch.stack(v, 1) for k, v in steps.items() if k != "obs"}  # (B, T[+1], ...)
        adv, ret = gae(S["reward"], S["value"], S["is_last"], S["is_terminal"], cfg.gamma, cfg.gae_lambda)
        rollout = Rollout(
            obs={k: torch.stack([o[k] for o in steps["obs"]], 1) for k in keys},
            is_first=S["is_first"],
            action=S["action"],
            logp=S["logp"],
            value=S["value"][:, :-1],
            advantage=adv,
            returns=ret,
            mask=~S["is_last"][:, :-1],
            state0=state0,
        )
        return rollout, finished

    def _track(self, obs: dict[str, np.ndarray], reward: np.ndarray, finished: dict[str, list]) -> None:
        """Add the reward that came with `obs` to each env's trial return; report the trials that end at it."""
        first = np.asarray(obs["is_first"])
        self._trial_return = np.where(first, 0.0, self._trial_return + np.asarray(reward, np.float64))
        self._trial_length = np.where(first, 0, self._trial_length + 1)
        for i in np.flatnonzero(np.asarray(obs["is_last"])):
            finished["return"].append(float(self._trial_return[i]))
            finished["length"].append(int(self._trial_length[i]))

    # ---- 3. update
    def update(self, rollout: Rollout, lr: float | None = None) -> dict[str, float]:
        """cfg.epochs passes over minibatches of whole env sequences, each from its stored initial state."""
        cfg = self.cfg
        if lr is not None:
            for group in self.opt.param_groups:
                group["lr"] = lr
        B = rollout.is_first.shape[0]
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.epochs):
            for idx in torch.randperm(B, device=self.device).tensor_split(min(cfg.minibatches, B)):
                metrics = self.update_minibatch(rollout, idx)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
            if cfg.target_kl and sums["ppo/approx_kl"] / count > cfg.target_kl:
                break  # early stopping on the KL (CleanRL's target_kl)
        out = {k: v / count for k, v in sums.items()}
        var = rollout.returns[rollout.mask].var()
        out["ppo/explained_variance"] = float(1 - (rollout.returns - rollout.value)[rollout.mask].var() / var) if var > 0 else float("nan")
        out["ppo/lr"] = self.opt.param_groups[0]["lr"]
        return out

    def minibatch_loss(self, rollout: Rollout, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The PPO loss of the env sequences `idx` (M,), re-run through the backbone from their stored states."""
        model = self.model
        obs = {k: v[idx] for k, v in rollout.obs.items()}
        dist, value, _ = model(obs, rollout.is_first[idx], index_state(rollout.state0, idx))
        return ppo_loss(
            dist.log_prob(rollout.action[idx]),
            rollout.logp[idx],
            rollout.advantage[idx],
            value,
            rollout.value[idx],
            rollout.returns[idx],
            dist.entropy(),
            rollout.mask[idx],
            self.cfg,
        )

    def update_minibatch(self, rollout: Rollout, idx: Tensor) -> dict[str, Tensor]:
        loss, metrics = self.minibatch_loss(rollout, idx)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"PPO loss is not finite: { ({k: float(v) for k, v in metrics.items()}) }")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        metrics["ppo/grad_norm"] = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.opt.step()
        metrics["ppo/loss"] = loss.detach()
        return metrics

    # ---- acting (evaluation)
    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], state: State | None, greedy: bool = False) -> tuple[np.ndarray, State]:
        """Actions for a batch of observations (numpy, (N, ...)), carrying `state` (None: a fresh one)."""
        o = obs_to_torch(obs, self.device)
        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device)
        if state is None:
            state = self.model.initial_state(len(is_first), self.device)
        dist, _, state = self.model.step(o, is_first, state)
        return self.model.codec.to_env(self.model.sample(dist, greedy).cpu().numpy()), state

    # ---- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "reward_scale": self.reward_scale.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.reward_scale.load_state_dict(state["reward_scale"])


class RecurrentPolicy:
    """A PPO learner's policy as an `agents.icrl.Policy`: `act(obs)` carries the memory between calls
    (reset where obs["is_first"]). Sampling by default: in context, exploring is part of the policy."""

    def __init__(self, ppo: PPO, greedy: bool = False):
        self.ppo, self.greedy, self.state = ppo, greedy, None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action, self.state = self.ppo.act(obs, self.state, self.greedy)
        return action


# ---------------------------------------------------------------------------------------------- the run
def identity(config) -> dict[str, Any]:
    """What a resume of a PPO run must match: the agent, the environment and the network's shape."""
    return {
        "agent": "ppo",
        "env": config.env,
        "env_options": dict(config.env_options),
        "backbone": config.backbone,
        "wm": dataclasses.asdict(config.wm),
        "ppo": {"width": config.ppo.width, "hidden": config.ppo.hidden},
    }


def build(config, device: torch.device, spaces=None) -> PPO:
    """The PPO learner for a TrainConfig; `spaces` (obs_space, act_space) avoids making an env."""
    import envs as memwm_envs

    if spaces is None:
        env = memwm_envs.make(config.env, seed=config.seed, **config.env_options)
        spaces = (env.observation_space, env.action_space)
        env.close()
    return PPO(model_obs_space(spaces[0]), spaces[1], config.backbone, config.ppo, config.wm, device)


def evaluate(ppo: PPO, config, trials: int, seed: int, out_dir=None, logger=None, step: int = 0) -> dict[str, float]:
    """Whole trials with the sampling policy; on icrl/* envs the in-context metrics, bandit regrets and PNG.

    Returns the scalars, `eval/return` (mean trial return) among them; logs them through `logger`."""
    import envs as memwm_envs
    from agents import icrl

    in_context = memwm_envs.spec(config.env).trials
    metrics, _ = icrl.evaluate(
        RecurrentPolicy(ppo),
        config.env,
        trials,
        seed,
        num_envs=min(8, trials),
        out_dir=out_dir if in_context else None,
        step=step,
        **config.env_options,
    )
    summary = {"eval/return": metrics["icrl/trial_return"], "eval/length": metrics["icrl/trial_length"], **(metrics if in_context else {})}
    if logger is not None:
        logger.scalars(summary)
        logger.write(step)
    return summary


class PPOAgent:
    """Recurrent PPO and its vectorised trials behind the run loop's Agent protocol (agents/loop.py).

    act: 1. collect a chunk of every env's trial, carrying the memory, and 2. its advantages (GAE);
    update: 3. the epochs over the chunk, the learning rate decaying linearly to zero if anneal_lr
    (PPO's Atari setting). The environments restart their trials when a run resumes.
    """

    def __init__(self, config, device: torch.device):
        import envs as memwm_envs

        self.config = config
        self.env = memwm_envs.make_vector(
            config.env, config.num_envs, seed=training_seed(config.seed, 0), asynchronous=config.async_envs, **config.env_options
        )
        self.learner = build(config, device, (self.env.single_observation_space, self.env.single_action_space))
        self.module = self.learner.model
        self.run_dir = config.run_dir
        self.rollout: Rollout | None = None

    def begin(self, counters) -> None:
        self.restart(counters)

    def restart(self, counters) -> None:
        """New trials in every environment on this step's training seeds (the next chunk resets them)."""
        self.first_seed = training_seed(self.config.seed, counters["step"])
        self.learner._obs = None

    def act(self, counters) -> Acted:
        self.rollout, finished = self.learner.collect(self.env, seed=self.first_seed)
        episodes = [{"return": r, "length": float(n)} for r, n in zip(finished["return"], finished["length"])]
        return Acted(self.rollout.mask.numel(), episodes)

    def update(self, counters) -> tuple[int, dict[str, float]]:
        cfg = self.config
        lr = cfg.ppo.lr * max(0.0, 1 - counters["step"] / cfg.steps) if cfg.ppo.anneal_lr else None
        return 1, self.learner.update(self.rollout, lr)

    def evaluate(self, episodes: int, seed: int, step: int, logger) -> dict[str, float]:
        return evaluate(self.learner, self.config, episodes, seed, self.run_dir / "icrl", None, step)

    def pictures(self, seed: int, step: int, logger) -> None:
        """PPO draws no pictures: it has no world model to imagine with."""

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.learner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["agent"])

    def close(self) -> None:
        self.env.close()
