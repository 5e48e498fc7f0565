"""DreamerV3's small distributions: symlog/symexp, two-hot symlog, unimix categorical with
straight-through samples, Bernoulli, Gaussian. Each has `sample`, `mode`, `log_prob`, `entropy`.

Batch shapes are whatever the parameters have in front of the event dimensions; `sample` takes an
optional `torch.Generator` so that tests (and evaluations) can control the noise.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes (DreamerV3 inputs and targets)."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of symlog."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class OneHotCategorical:
    """Independent categoricals over the last dim, mixed with `unimix` of the uniform (DreamerV3).

    logits: (..., K). Samples and modes are one-hot (..., K) with straight-through gradients to the
    probabilities, so that a loss on a sample trains the logits. `base`: the logits as given, before the mixture
    (a logit far below the mixture's floor moves the mixed probabilities, and so their gradients, hardly at all).
    """

    def __init__(self, logits: Tensor, unimix: float = 0.0):
        if unimix < 0 or unimix >= 1:
            raise ValueError(f"unimix must be in [0, 1), got {unimix}")
        self.base = logits
        if unimix > 0:  # the mixture is normalised already: its log is the normalised log-probability
            self.probs = F.softmax(logits.float(), -1).mul(1 - unimix).add_(unimix / logits.shape[-1])  # (..., K)
            self.logits = torch.log(self.probs)
        else:
            self.logits = torch.log_softmax(logits.float(), -1)  # (..., K) normalised
            self.probs = self.logits.exp()

    def detach(self) -> OneHotCategorical:
        """The same distribution cut from the graph (no recomputation)."""
        out = object.__new__(OneHotCategorical)
        out.logits, out.probs, out.base = self.logits.detach(), self.probs.detach(), self.base.detach()
        return out

    def _straight_through(self, index: Tensor) -> Tensor:
        hard = torch.zeros_like(self.probs, memory_format=torch.contiguous_format).scatter_(-1, index[..., None], 1.0)
        if not self.probs.requires_grad:
            return hard
        return _StraightThrough.apply(hard, self.probs)  # exactly one-hot forward, gradient of probs

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        # Inverse CDF: one uniform per variable, index = #{k : cdf_k <= u * cdf_K}; a class of probability 0
        # is never drawn. One cumsum and one comparison for all the (B*L*stoch, classes) rows of a batch at
        # once, where torch.multinomial samples row by row.
        cdf = self.probs.detach().cumsum(-1)  # (..., K)
        u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device, dtype=cdf.dtype)
        index = (cdf <= u * cdf[..., -1:]).sum(-1)  # (...)
        return self._straight_through(index)

    def mode(self) -> Tensor:
        return self._straight_through(self.probs.argmax(-1))

    def log_prob(self, value: Tensor) -> Tensor:
        """value: one-hot (..., K) -> (...)."""
        return (value * self.logits).sum(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)

    def kl(self, other: OneHotCategorical) -> Tensor:
        """KL(self || other) over the last dim -> (...)."""
        return (self.probs * (self.logits - other.logits)).sum(-1)

    def kl_balanced(self, other: OneHotCategorical) -> tuple[Tensor, Tensor]:
        """(KL(sg(self) || other), KL(self || sg(other))) (...) each, from one pass (DreamerV3's dyn and rep):
        equal values; the first trains only `other`, the second only `self`."""
        return _BalancedKL.apply(self.logits, other.logits, self.probs.detach())


class _StraightThrough(torch.autograd.Function):
    """hard forward, identity gradient to probs: `hard + probs - sg(probs)` without two full-size passes."""

    @staticmethod
    def forward(ctx, hard: Tensor, probs: Tensor) -> Tensor:
        return hard

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, grad


class _BalancedKL(torch.autograd.Function):
    """KL(p || q) = sum_k p_k (lp_k - lq_k) over the last dim, returned twice: (dyn, rep) (...).

    dyn's gradient goes to lq only: -p g_dyn; rep's to lp only (p = exp(lp)): p (lp - lq + 1) g_rep.
    inputs: lp, lq (..., K) normalised log-probabilities, p = exp(lp) detached (..., K)."""

    @staticmethod
    def forward(ctx, lp: Tensor, lq: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        diff = lp - lq  # (..., K)
        kl = torch.linalg.vecdot(p, diff)  # (...)
        ctx.save_for_backward(lp, lq, p)
        return kl, kl.clone()

    @staticmethod
    def backward(ctx, g_dyn: Tensor, g_rep: Tensor):
        lp, lq, p = ctx.saved_tensors
        grad_lp = grad_lq = None
        if ctx.needs_input_grad[0] and g_rep is not None:
            grad_lp = (lp - lq).add_(1.0).mul_(p).mul_(g_rep[..., None])
        if ctx.needs_input_grad[1] and g_dyn is not None:
            grad_lq = p * (-g_dyn[..., None])
        return grad_lp, grad_lq, None


class Normal:
    """Diagonal Gaussian with reparameterised samples; mean, std: (..., D), event dim last."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean.float(), std.float()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, value: Tensor) -> Tensor:
        z = (value - self.mean) / self.std
        return (-0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std)).sum(-1)

    def detach(self) -> Normal:
        return Normal(self.mean.detach(), self.std.detach())

    def kl(self, other: Normal) -> Tensor:
        var_ratio = (self.std / other.std) ** 2
        t1 = ((self.mean - other.mean) / other.std) ** 2
        return 0.5 * (var_ratio + t1 - 1 - torch.log(var_ratio)).sum(-1)


class Bernoulli:
    """Bernoulli from logits (...,); `mode` is the probability rounded, `mean` the probability."""

    def __init__(self, logits: Tensor):
        self.logits = logits.float()
        self.mean = torch.sigmoid(self.logits)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(self.mean.detach(), generator=generator)

    def mode(self) -> Tensor:
        return (self.mean > 0.5).to(self.mean.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, value.to(self.logits.dtype), reduction="none")

    def entropy(self) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, self.mean.detach(), reduction="none")


class TwoHotSymlog:
    """A scalar as a categorical over bins evenly spaced in symlog space (DreamerV3 reward/critic).

    logits: (..., K) over `bins` (K,). `mode()`/`mean` is symexp of the expected bin; `log_prob`
    of a real value spreads it over its two neighbouring bins (two-hot).
    """

    def __init__(self, logits: Tensor, low: float = -20.0, high: float = 20.0):
        self.logits = torch.log_softmax(logits.float(), -1)
        self.bins = torch.linspace(low, high, logits.shape[-1], device=logits.device)  # (K,) symlog space

    # probs and mean are made when first read: the world-model loss reads only log_prob
    @functools.cached_property
    def probs(self) -> Tensor:
        return self.logits.exp()

    @functools.cached_property
    def mean(self) -> Tensor:
        return symexp(self.probs @ self.bins)

    def mode(self) -> Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.mean  # a point estimate, as in DreamerV3

    def _neighbours(self, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """value (...) -> (below, above (...) bin indices, w_above (...)): symlog(value) lies between the two
        bins, with weight w_above on the upper one (w_above = 0 when below == above at the ends)."""
        x = symlog(value.float()).clamp(self.bins[0], self.bins[-1])
        K = self.bins.shape[0]
        below = (torch.bucketize(x, self.bins, right=True) - 1).clamp(0, K - 1)
        above = (below + 1).clamp(max=K - 1)
        lo, hi = self.bins[below], self.bins[above]
        span = torch.where(above == below, torch.ones_like(lo), hi - lo)
        w_above = torch.where(above == below, torch.zeros_like(x), (x - lo) / span)
        return below, above, w_above

    def two_hot(self, value: Tensor) -> Tensor:
        """value (...) -> two-hot weights (..., K) in symlog space; NaN rows for non-finite values."""
        below, above, w_above = self._neighbours(value)
        K = self.bins.shape[0]
        weights = F.one_hot(below, K) * (1 - w_above)[..., None] + F.one_hot(above, K) * w_above[..., None]
        return torch.where(torch.isfinite(value)[..., None], weights, torch.nan)  # a bad target shows in the loss

    def log_prob(self, value: Tensor) -> Tensor:
        """(two_hot(value) * logits).sum(-1) (...), reading only the two neighbouring bins' logits (no (..., K) weights)."""
        below, above, w_above = self._neighbours(value)
        lp_below = self.logits.gather(-1, below[..., None])[..., 0]
        lp_above = self.logits.gather(-1, above[..., None])[..., 0]
        out = torch.lerp(lp_below, lp_above, w_above)
        return torch.where(torch.isfinite(value), out, torch.nan)  # a bad target shows in the loss

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)
