"""The world model's input checks: plain functions that raise ValueError naming what was wrong and
what would be right (keys, shapes, dtypes), before a tensor reaches a network. `where` names the
method that was called (observe, step, imagine, loss); `lead` is the leading shape every input of
that call shares: (B, L) for sequences, (B,) for one step."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from world_models.nets import IMAGE_SHAPE
from world_models.state import State


def obs_keys(image: bool, vector_dim: int) -> list[str]:
    """The observation keys a model with an image (or not) and a vector of `vector_dim` (0 = none) reads."""
    return [k for k, on in (("image", image), ("vector", vector_dim)) if on]


def check_obs(obs: dict[str, Tensor], image: bool, vector_dim: int, lead: tuple[int, ...], where: str) -> None:
    """obs: image (*lead, 64, 64, 3) uint8 if `image`, vector (*lead, vector_dim) float if `vector_dim`."""
    keys = obs_keys(image, vector_dim)
    if not isinstance(obs, dict):
        raise ValueError(f"{where}: obs must be a dict with keys {keys}, got {type(obs).__name__}")
    for key in keys:
        if key not in obs:
            raise ValueError(f"{where}: obs is missing {key!r}; expected keys {keys}, got {list(obs)}")
    if image:
        pixels = obs["image"]
        if tuple(pixels.shape) != (*lead, *IMAGE_SHAPE) or pixels.dtype != torch.uint8:
            raise ValueError(f"{where}: obs['image'] must be uint8 {(*lead, *IMAGE_SHAPE)}, got {pixels.dtype} {tuple(pixels.shape)}")
    if vector_dim:
        vector = obs["vector"]
        if tuple(vector.shape) != (*lead, vector_dim) or not vector.is_floating_point():
            raise ValueError(f"{where}: obs['vector'] must be float {(*lead, vector_dim)}, got {vector.dtype} {tuple(vector.shape)}")


def check_action(action: Tensor, act_dim: int, lead: tuple[int, ...], where: str) -> None:
    """action: (*lead, act_dim) float (one-hot for discrete actions)."""
    if tuple(action.shape) != (*lead, act_dim) or not action.is_floating_point():
        raise ValueError(
            f"{where}: action must be float {(*lead, act_dim)} (one-hot for discrete actions), got {action.dtype} {tuple(action.shape)}"
        )


def check_flags(flags: Tensor, lead: tuple[int, ...], name: str, where: str) -> Tensor:
    """flags (`lead`) of any dtype -> the same flags as bool (nonzero = set)."""
    if tuple(flags.shape) != lead:
        raise ValueError(f"{where}: {name} must be {lead}, got {tuple(flags.shape)}")
    return flags if flags.dtype == torch.bool else flags != 0


def check_state(state: State, batch: int, h_dim: int, z_dim: int, where: str) -> None:
    """state: `batch` rows, h (B, h_dim), z (B, z_dim)."""
    if state.batch_size != batch or state.h.shape[1] != h_dim or state.z.shape[1] != z_dim:
        raise ValueError(
            f"{where}: state must have batch {batch}, h (B, {h_dim}), z (B, {z_dim}); "
            f"got h {tuple(state.h.shape)}, z {tuple(state.z.shape)}"
        )


def check_sequence(action: Tensor, act_dim: int) -> tuple[int, int]:
    """The (B, L) of `observe`'s action (B, L, act_dim), which must hold at least one step."""
    if action.dim() != 3:
        raise ValueError(f"observe: action must be (B, L, {act_dim}), got {tuple(action.shape)}")
    B, L = action.shape[:2]
    if L == 0:
        raise ValueError("observe: sequences must hold at least one step, got L = 0")
    return B, L


def check_policy(policy: Callable[[Tensor], Tensor] | Tensor, act_dim: int, N: int, horizon: int) -> bool:
    """Whether `imagine`'s policy is given actions (N, horizon, act_dim) rather than a function of the features."""
    if horizon < 0:
        raise ValueError(f"imagine: horizon must be >= 0, got {horizon}")
    given = isinstance(policy, Tensor)
    if given:
        check_action(policy, act_dim, (N, horizon), "imagine (given actions)")
    elif not callable(policy):
        raise ValueError(f"imagine: policy must be a callable or an action tensor (N, H, A), got {type(policy).__name__}")
    return given


def check_batch(batch: dict[str, Tensor], keys: list[str]) -> tuple[int, ...]:
    """The (B, L) of a `loss` batch, which must hold the observation `keys`, `action` (B, L, A), `reward`
    (B, L), `is_first` and `is_terminal`."""
    missing = [k for k in ("action", "reward", "is_first", "is_terminal", *keys) if k not in batch]
    if missing:
        raise ValueError(f"loss: batch is missing {missing}; got keys {sorted(batch)}")
    lead = tuple(batch["action"].shape[:2])
    reward = batch["reward"]
    if tuple(reward.shape) != lead:
        raise ValueError(f"loss: reward must be {lead}, got {tuple(reward.shape)}")
    return lead


__all__ = ["obs_keys", "check_obs", "check_action", "check_flags", "check_state", "check_sequence", "check_policy", "check_batch"]
