"""Sequence backbones behind one interface (see base.py); a new backbone is one file and one line here."""

from __future__ import annotations

from world_models.backbones.base import Backbone
from world_models.backbones.mamba import MambaBackbone
from world_models.backbones.rssm import GRUBackbone
from world_models.backbones.s4 import S4Backbone
from world_models.backbones.s5 import S5Backbone
from world_models.backbones.transformer import TransformerBackbone
from world_models.config import WorldModelConfig

REGISTRY: dict[str, type[Backbone]] = {
    "rssm": GRUBackbone,
    "transformer": TransformerBackbone,
    "s4": S4Backbone,
    "s5": S5Backbone,
    "mamba": MambaBackbone,
}
BACKBONES: tuple[str, ...] = tuple(REGISTRY)


def make(name: str, in_dim: int, width: int, config: WorldModelConfig) -> Backbone:
    """A backbone mapping (B, L, in_dim) -> (B, L, out_dim) with model width `width`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    if width < 1:
        raise ValueError(f"backbone width must be >= 1, got {width}")
    return REGISTRY[name](in_dim, width, config)


__all__ = ["Backbone", "BACKBONES", "REGISTRY", "make", "GRUBackbone", "TransformerBackbone", "S4Backbone", "S5Backbone", "MambaBackbone"]
