"""The losses of recurrent PPO (agents/ppo.py) and its reward scaling: generalised advantage
estimation over a chunk in DreamerV3's stream format, the clipped objective with its value loss
and entropy bonus, and the running scale of the rewards."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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
    *,
    clip: float,
    clip_value: bool,
    norm_adv: bool,
    vf_coef: float,
    ent_coef: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO objective on one minibatch; every input (B, T), `mask` (B, T) bool marks the real steps.

    Clipped surrogate (PPO eq. 7) with ratio range [1 - clip, 1 + clip], value loss (clipped like the
    policy if `clip_value`) weighted `vf_coef`, and the entropy bonus weighted `ent_coef`, each a mean
    over the masked steps; `norm_adv` normalises the advantages over those steps. The settings are
    agents.ppo.PPOConfig's. Returns (loss, metrics).
    """
    m = mask.to(logp.dtype)
    n = m.sum().clamp(min=1.0)

    def mean(x: Tensor) -> Tensor:
        return (x * m).sum() / n

    if norm_adv:
        mu = mean(adv)
        adv = (adv - mu) / (mean((adv - mu) ** 2).sqrt() + 1e-8)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    pg_loss = mean(torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)))
    if clip_value:
        clipped = old_value + (value - old_value).clamp(-clip, clip)
        v_loss = 0.5 * mean(torch.max((value - returns) ** 2, (clipped - returns) ** 2))
    else:
        v_loss = 0.5 * mean((value - returns) ** 2)
    ent = mean(entropy)
    loss = pg_loss - ent_coef * ent + vf_coef * v_loss
    with torch.no_grad():
        metrics = {
            "ppo/policy_loss": pg_loss.detach(),
            "ppo/value_loss": v_loss.detach(),
            "ppo/entropy": ent.detach(),
            "ppo/approx_kl": mean((ratio - 1) - log_ratio),  # Schulman's low-variance KL estimator
            "ppo/clip_fraction": mean(((ratio - 1).abs() > clip).to(m.dtype)),
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
