"""Decoder-free representation objectives: what teaches the features to describe the observation
when no decoder reconstructs it.

Barlow Twins (Zbontar et al., 2021) as R2-Dreamer (ICLR 2026, NM512/r2dreamer) uses it in a world
model: the posterior features (h_t, z_t), through a linear projector, and the encoder embedding of
the same step are standardised per dimension over every step of the batch; their cross-correlation
matrix is pulled towards the identity. The diagonal makes each projected feature agree with one
embedding dimension (the features keep what the observation shows); the off-diagonal term, weighted
by lambda, decorrelates the dimensions (no collapse, no redundancy). The embedding is a detached
target: the encoder learns only through the posterior, as in R2-Dreamer, so that the target cannot
move towards the prediction. No decoder, no pixels and no augmentation are in the gradient.

Next-embedding prediction (NE-Dreamer, 2026) aligns, with the same loss, a prediction of the embedding
made before the observation is seen. NE-Dreamer adds a causal transformer over the latents for it;
here the backbone already is one: h_t is computed from (z_{<t}, a_{<t}), so the projected h_t against
o_t's embedding asks the dynamics, not the posterior, to carry what comes next.
"""

from __future__ import annotations

import torch
from torch import Tensor

BATCH_NORM_EPS = 1e-5  # as the batch norm of the Barlow Twins paper: a constant dimension stays finite


def standardise(x: Tensor, eps: float = BATCH_NORM_EPS) -> Tensor:
    """x (N, D) -> (N, D): each dimension shifted to mean 0 and scaled to variance 1 over the N rows
    (the population variance, so that a dimension correlates with itself at exactly 1)."""
    mean = x.mean(0)
    var = x.var(0, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


def barlow_twins(x1: Tensor, x2: Tensor, off_diagonal: float) -> Tensor:
    """Barlow Twins loss between two views x1, x2 (N, D) of the same N samples -> scalar.

    c = standardise(x1)^T standardise(x2) / N  (D, D), the cross-correlation of each pair of dimensions;
    loss = sum_i (1 - c_ii)^2 + off_diagonal * sum_{i != j} c_ij^2.
    """
    if x1.dim() != 2 or x1.shape != x2.shape:
        raise ValueError(f"barlow_twins: x1 and x2 must both be (N, D), got {tuple(x1.shape)} and {tuple(x2.shape)}")
    dtype = torch.promote_types(x1.dtype, torch.float32)
    with torch.autocast(x1.device.type, enabled=False):  # a correlation near 1 needs more digits than bfloat16's
        c = standardise(x1.to(dtype)).T @ standardise(x2.to(dtype)) / x1.shape[0]  # (D, D)
    diagonal = torch.diagonal(c)  # (D,)
    on = (1.0 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return on + off_diagonal * off


__all__ = ["barlow_twins", "standardise"]
