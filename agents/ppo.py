"""Recurrent PPO (Schulman et al. 2017) whose memory is any memwm backbone: the model-free baseline
and the in-context RL learner of Lu et al. 2023 ("Structured State Space Models for In-Context RL").

The algorithm reads as one story, as in CleanRL's `ppo_atari_lstm.py`:

1. collect (agents/ppo_agent.py, `Collector`): `num_envs` vectorised trials step `rollout` times;
   the backbone's state is carried from step to step and from chunk to chunk, and reset only where
   `is_first` (a trial start, so the memory spans the episodes of a trial); the state at the
   start of the chunk is stored.
2. advantages: GAE over the chunk, bootstrapped from the value of the observation after it
   (agents/ppo_losses.py).
3. update (here, `PPO.update`): `epochs` passes over minibatches of whole env sequences; each
   sequence is re-run through the backbone (agents/ppo_net.py) from its stored initial state
   (`backbone.forward` over the chunk, with the same resets), then the clipped objective, the
   value loss and the entropy bonus.
4. log: stable scalar names under `ppo/...`, `episode/...`, `perf/...`.

Steps follow DreamerV3's stream format, which the environments emit: the observation at step t
comes with the reward of the action before it and the flags `is_first`, `is_last`,
`is_terminal`; the action taken at an `is_last` observation goes nowhere (the env resets), so it
is masked out of the loss, and a truncated (not terminal) trial bootstraps from its last value.

This module is the learner only: it steps no environment and opens no run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from agents.common import obs_to_torch
from agents.ppo_losses import RewardScale, ppo_loss
from agents.ppo_net import RecurrentActorCritic, State, index_state
from world_models.config import WorldModelConfig


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
    """Recurrent PPO: owns the actor-critic, its optimiser and the running reward scale.

    `update(rollout)` runs the epochs over a chunk (agents/ppo_agent.py's `Collector` gathers it);
    `act(obs, state)` picks actions.
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
        self.model = RecurrentActorCritic(
            obs_space, act_space, backbone, wm_config, width=cfg.width, hidden=cfg.hidden, init_log_std=cfg.init_log_std
        ).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)  # CleanRL's Adam epsilon
        self.reward_scale = RewardScale(cfg.gamma)  # applied to the rewards as they are collected

    # ---- update
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
            clip=self.cfg.clip,
            clip_value=self.cfg.clip_value,
            norm_adv=self.cfg.norm_adv,
            vf_coef=self.cfg.vf_coef,
            ent_coef=self.cfg.ent_coef,
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
