"""The learning chain of a memory task, link by link, on tensors.

A Dreamer agent solves a memory task only if every link holds:
1. the latent z_t or the backbone's output h_t holds what must be remembered (a linear probe reads it);
2. the reward head tells the outcomes apart (the reward's sign) on the steps whose reward depends on memory;
3. imagination from an observed state ranks the right action first (its imagined return is the highest);
4. the actor then follows (its entropy falls at those states).
These functions score links 1 to 3 against what a model that knows nothing scores (the held-out
majority rate, or 1/A for A actions); agents/chain.py plays the labelled episodes and logs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from world_models.retention import fit_linear_probe, probe_predict
from world_models.state import State


@dataclass(frozen=True)
class Score:
    """An accuracy and the accuracy of knowing nothing (`chance`), over `count` scored items; NaN when none."""

    accuracy: float
    chance: float
    count: int


NOTHING = Score(math.nan, math.nan, 0)


def majority_rate(labels: Tensor) -> float:
    """labels (M,) int >= 0 -> the share of the most frequent one (NaN when empty)."""
    if labels.numel() == 0:
        return math.nan
    return float(torch.bincount(labels.long()).max()) / labels.numel()


def probe_score(features: Tensor, labels: Tensor, ridge: float = 1e-2) -> Score:
    """A linear probe of `labels` from `features`, fitted on the first half of the episodes and scored on the rest.

    features (N, T, F) float: N episodes; labels (N, T) int, -1 where a step has no label.
    The probe is world_models.retention's ridge regression on standardised features; chance is the
    majority rate of the scored labels. NOTHING when fewer than 2 fitting or 1 scored steps are labelled.
    """
    if features.shape[:2] != labels.shape:
        raise ValueError(f"probe_score: features (N, T, F) {tuple(features.shape)} and labels (N, T) {tuple(labels.shape)} disagree")
    half = features.shape[0] // 2
    fit, scored = labels[:half] >= 0, labels[half:] >= 0
    if int(fit.sum()) < 2 or int(scored.sum()) < 1:
        return NOTHING
    y, y_scored = labels[:half][fit], labels[half:][scored]  # (n,), (m,)
    classes = int(max(y.max(), y_scored.max())) + 1
    probe = fit_linear_probe(features[:half][fit].float().cpu(), y.cpu(), max(classes, 2), ridge)
    predicted = probe_predict(probe, features[half:][scored].float().cpu())
    return Score(float((predicted == y_scored.cpu()).double().mean()), majority_rate(y_scored.cpu()), len(y_scored))


def sign_score(predicted: Tensor, reward: Tensor, scored: Tensor | None = None) -> Score:
    """How often the predicted reward is on the true one's side of the outcomes' midpoint, on the `scored` steps.

    predicted, reward (...) float; scored (...) bool, default the steps with a nonzero reward. The
    midpoint is halfway between the lowest and the highest true reward of the scored steps when they
    take both signs or include 0 (+-r: the sign; a success's r against a failure's 0: r/2), else 0;
    a prediction at or below it counts as the low side. Chance is the majority side's share (a head
    that always says that side scores it).
    """
    if predicted.shape != reward.shape:
        raise ValueError(f"sign_score: predicted {tuple(predicted.shape)} and reward {tuple(reward.shape)} must have one shape")
    scored = reward != 0 if scored is None else scored.bool()
    if not scored.any():
        return NOTHING
    true = reward[scored]
    low, high = float(true.min()), float(true.max())
    middle = (low + high) / 2 if low <= 0 <= high and low < high else 0.0
    truth, guess = true > middle, predicted[scored] > middle
    positive = float(truth.double().mean())
    return Score(float((truth == guess).double().mean()), max(positive, 1.0 - positive), int(scored.sum()))


def rank_score(returns: Tensor, answer: Tensor, tol: float = 1e-6) -> Score:
    """How often the right action has the highest return: returns (M, A) float, answer (M,) int in [0, A).

    A tie at the top (returns within `tol` of the best, so that rounding does not break it) counts 1/k
    for k tied actions, so returns that say nothing score 1/A, the chance.
    """
    if returns.dim() != 2 or answer.shape != returns.shape[:1]:
        raise ValueError(f"rank_score: returns must be (M, A) and answer (M,), got {tuple(returns.shape)} and {tuple(answer.shape)}")
    if len(answer) == 0:
        return NOTHING
    top = returns >= returns.max(-1, keepdim=True).values - tol  # (M, A)
    hit = top.gather(1, answer.long()[:, None])[:, 0].double() / top.sum(-1).double()
    return Score(float(hit.mean()), 1.0 / returns.shape[1], len(answer))


@torch.no_grad()
def first_action_returns(
    wm,
    start: State,
    actor: Callable[[Tensor], Tensor],
    num_actions: int,
    horizon: int,
    gamma: float,
    value: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """The imagined return of taking each action first from each start, then following `actor`.

    start: M states (after observing the query step); actor: features (n, F) -> actions (n, A),
    deterministic for a deterministic answer (the mode); value: features (n, F) -> (n,) bootstraps
    the return after `horizon` steps (none: 0). Imagination takes the prior's modes. The return is
    DreamerV3's with lambda = 1: R = r_1 + d_1 (r_2 + d_2 (... + d_H v_H)), d_i = gamma * continue_i.
    Returns (M, num_actions).
    """
    if horizon < 1:
        raise ValueError(f"first_action_returns: horizon must be >= 1, got {horizon}")
    M, A = start.batch_size, num_actions
    starts = start.map(lambda t: t.repeat_interleave(A, 0))  # (M*A, ...): each start once per first action
    first = torch.eye(A, device=start.h.device).repeat(M, 1)  # (M*A, A)
    taken = []

    def policy(feat: Tensor) -> Tensor:
        taken.append(None)
        return first if len(taken) == 1 else actor(feat)

    imag = wm.imagine(starts, policy, horizon, sample=False)
    feat = imag.features  # (M*A, H+1, F)
    reward, discount = wm.reward(feat, imag.actions)[:, 1:].float(), gamma * wm.cont(feat)[:, 1:].float()  # (M*A, H)
    ret = value(feat[:, -1]).float() if value is not None else torch.zeros_like(reward[:, 0])
    for i in reversed(range(horizon)):
        ret = reward[:, i] + discount[:, i] * ret
    return ret.view(M, A)


__all__ = ["Score", "NOTHING", "majority_rate", "probe_score", "sign_score", "rank_score", "first_action_returns"]
