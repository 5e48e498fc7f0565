"""Stochastic latents z_t: 32 categoricals x 32 classes with 1% unimix (default) or a Gaussian.

A `Latent` is a distribution over the flat latent vector (..., z_dim); `LatentNet` maps features to one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_models.config import WorldModelConfig
from world_models.distributions import Normal, OneHotCategorical
from world_models.nets import MLP


def latent_dim(config: WorldModelConfig) -> int:
    """Size of the flat latent vector z."""
    return config.stoch * config.classes if config.latent == "categorical" else config.stoch


class Latent:
    """A distribution over flat latents z (..., z_dim), built from raw statistics (..., stat_dim).

    categorical: stats are logits (..., stoch * classes); samples are one-hot per variable with
    straight-through gradients. gaussian: stats are (mean, pre-std) (..., 2 * stoch).
    """

    def __init__(self, stats: Tensor, config: WorldModelConfig):
        self.stats, self.config = stats, config
        if config.latent == "categorical":
            logits = stats.reshape(*stats.shape[:-1], config.stoch, config.classes)
            self.dist = OneHotCategorical(logits, config.unimix)
        else:
            mean, std = stats.chunk(2, -1)
            self.dist = Normal(mean, 2 * torch.sigmoid(std / 2) + config.min_std)

    def _flat(self, z: Tensor) -> Tensor:
        return z.reshape(*self.stats.shape[:-1], -1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self._flat(self.dist.sample(generator))

    def mode(self) -> Tensor:
        return self._flat(self.dist.mode())

    def entropy(self) -> Tensor:
        """(...) summed over latent variables."""
        ent = self.dist.entropy()
        return ent.sum(-1) if self.config.latent == "categorical" else ent

    def kl(self, other: Latent) -> Tensor:
        """KL(self || other) (...) summed over latent variables."""
        kl = self.dist.kl(other.dist)
        return kl.sum(-1) if self.config.latent == "categorical" else kl

    def kl_balanced(self, other: Latent) -> tuple[Tensor, Tensor]:
        """(KL(sg(self) || other), KL(self || sg(other))) (...) each, summed over latent variables: equal
        values, the first training only `other`, the second only `self` (one pass for categoricals)."""
        if self.config.latent == "categorical":
            dyn, rep = self.dist.kl_balanced(other.dist)
            return dyn.sum(-1), rep.sum(-1)
        return self.detach().kl(other), self.kl(other.detach())

    def detach(self) -> Latent:
        out = object.__new__(Latent)
        out.stats, out.config, out.dist = self.stats.detach(), self.config, self.dist.detach()
        return out

    def __getitem__(self, index) -> Latent:
        return Latent(self.stats[index], self.config)


class LatentNet(nn.Module):
    """(..., in_dim) -> Latent: one hidden layer, then the statistics (DreamerV3's img_out/obs_out)."""

    def __init__(self, in_dim: int, config: WorldModelConfig):
        super().__init__()
        self.config = config
        stat_dim = config.stoch * config.classes if config.latent == "categorical" else 2 * config.stoch
        self.net = MLP(in_dim, stat_dim, config.hidden, 1, config.norm, config.act)

    def forward(self, x: Tensor) -> Latent:
        return Latent(self.net(x), self.config)


def kl_losses(post: Latent, prior: Latent, free_bits: float) -> tuple[Tensor, Tensor, Tensor]:
    """DreamerV3 KL balancing: (dyn, rep, kl), each (...).

    dyn = max(free, KL(sg(post) || prior)) trains the prior; rep = max(free, KL(post || sg(prior)))
    trains the representation; kl is the undetached value for logging."""
    dyn, rep = post.kl_balanced(prior)
    return dyn.clamp(min=free_bits), rep.clamp(min=free_bits), rep.detach()


__all__ = ["Latent", "LatentNet", "kl_losses", "latent_dim"]
