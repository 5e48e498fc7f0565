"""Open-loop imagination on tensors: real episodes as a batch, observe a context, imagine on.

`open_loop` observes the first `context` steps of real sequences (posterior features), then
imagines `horizon` steps open-loop from the last observed state with the sequences' own actions
(or a policy's), and returns the features of both phases in one time axis, so that decoding
them gives the model's version of every frame: reconstructions (context) then predictions.
`memwm imagine` (agents/commands/imagine.py) and the compare probes (world_models/probes.py)
both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from world_models.model import OBS_KEYS


def model_obs_space(space):
    """The observation keys a world model reads (image, vector) of an environment's dict space, without the flags."""
    import gymnasium as gym

    keys = {k: v for k, v in space.spaces.items() if k in OBS_KEYS}
    if not keys:
        raise ValueError(f"the observations carry no image or vector: keys {sorted(space.spaces)}")
    return gym.spaces.Dict(keys)


# --------------------------------------------------------------------------- episodes as tensors


def action_vectors(action: np.ndarray, act_space) -> np.ndarray:
    """Stored actions -> the float vectors a world model reads: (T,) ints of a Discrete space or
    (T, k) ints of a MultiDiscrete space -> concatenated one-hots; Box actions -> float32 (T, A)."""
    import gymnasium as gym

    action = np.asarray(action)
    if isinstance(act_space, gym.spaces.Discrete):
        if action.ndim == 2 and action.shape[1] == act_space.n:  # already one-hot
            return action.astype(np.float32)
        index = action.reshape(-1).astype(np.int64) - int(act_space.start)
        if index.size and (index.min() < 0 or index.max() >= act_space.n):
            raise ValueError(
                f"discrete actions must lie in [{act_space.start}, {act_space.start + act_space.n}), "
                f"got values from {index.min() + act_space.start} to {index.max() + act_space.start}"
            )
        return np.eye(act_space.n, dtype=np.float32)[index]
    if isinstance(act_space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(act_space.nvec).reshape(-1)
        if action.ndim == 2 and action.shape[1] == int(nvec.sum()):
            return action.astype(np.float32)
        action = action.reshape(len(action), len(nvec)).astype(np.int64)
        return np.concatenate([np.eye(n, dtype=np.float32)[action[:, i]] for i, n in enumerate(nvec)], -1)
    if isinstance(act_space, gym.spaces.Box):
        return action.reshape(len(action), -1).astype(np.float32)
    raise ValueError(f"unsupported action space {act_space}; expected Discrete, MultiDiscrete or Box")


def episodes_to_batch(
    episodes: list[dict[str, np.ndarray]], act_space, device: str | torch.device = "cpu", length: int | None = None
) -> dict[str, Tensor]:
    """Episodes (dicts of (T, ...) arrays, all at least `length` long) -> a batch of (N, L, ...)
    tensors with the keys `WorldModel.loss` and `observe` read; L = `length` or the shortest episode."""
    if not episodes:
        raise ValueError("episodes_to_batch needs at least one episode, got none")
    L = length or min(len(ep["action"]) for ep in episodes)
    short = [len(ep["action"]) for ep in episodes if len(ep["action"]) < L]
    if short:
        raise ValueError(f"every episode must hold at least {L} steps, got episodes of {short} steps")
    batch: dict[str, Tensor] = {}
    for key in OBS_KEYS:
        if key in episodes[0]:
            batch[key] = torch.as_tensor(np.stack([ep[key][:L] for ep in episodes])).to(device)
    if not batch:
        raise ValueError(f"episodes carry none of the observation keys {OBS_KEYS}; keys: {sorted(episodes[0])}")
    batch["action"] = torch.as_tensor(np.stack([action_vectors(ep["action"][:L], act_space) for ep in episodes])).to(device)
    for key in ("reward",):
        batch[key] = torch.as_tensor(np.stack([np.asarray(ep[key][:L], np.float32) for ep in episodes])).to(device)
    for key in ("is_first", "is_terminal"):
        flags = np.stack([np.asarray(ep[key][:L], bool) for ep in episodes])
        batch[key] = torch.as_tensor(flags).to(device)
    batch["is_first"][:, 0] = True  # every sequence here starts an episode (or is cut from one)
    return batch


# --------------------------------------------------------------------------- the open-loop rollout


@dataclass
class OpenLoop:
    """The model's view of `context + horizon` steps.

    features: (N, C + H, F) posterior features for t < C, imagined (prior) features for t >= C.
    actions: (N, C + H, A) the action taken after each step (the sequence's in the context; from step C-1 on
        the ones imagination was driven with; after the last step, the policy's or, without one, zero).
    """

    features: Tensor
    actions: Tensor
    context: int


@torch.no_grad()
def open_loop(
    wm, batch: dict[str, Tensor], context: int, horizon: int, policy: Callable[[Tensor], Tensor] | None = None, sample: bool = False
) -> OpenLoop:
    """Observe steps [0, context) of `batch` (N, L, ...), then imagine `horizon` steps.

    The action after the last observed step is `batch["action"][:, context - 1]` (DreamerV3 replay
    order), so imagined step C + i is driven by `action[:, C - 1 + i]`; with a `policy`
    (features (N, F) -> actions (N, A)) the policy chooses every action instead, the first included.
    sample=False takes the latents' modes (deterministic, the model's best guess); True samples them.
    """
    L = batch["action"].shape[1]
    if not 1 <= context <= L:
        raise ValueError(f"context must be in [1, {L}] for sequences of {L} steps, got {context}")
    if horizon < 0 or (policy is None and context + horizon > L):
        raise ValueError(
            f"horizon must be in [0, {L - context}] to imagine with the sequences' own actions "
            f"after a context of {context} of {L} steps, got {horizon}"
        )
    obs = {k: batch[k][:, :context] for k in OBS_KEYS if k in batch}
    _, _, feat_ctx, state = wm.observe(obs, batch["action"][:, :context], batch["is_first"][:, :context], sample=sample)  # (N, C, F)
    if horizon == 0:
        return OpenLoop(feat_ctx, batch["action"][:, :context], context)
    drive = policy if policy is not None else batch["action"][:, context - 1 : context - 1 + horizon]  # (N, H, A)
    imag = wm.imagine(state, drive, horizon, sample=sample)
    features = torch.cat([feat_ctx, imag.features[:, 1:]], 1)  # (N, C + H, F)
    return OpenLoop(features, torch.cat([batch["action"][:, : context - 1], imag.actions], 1), context)


@torch.no_grad()
def decode_frames(wm, features: Tensor, chunk: int = 256) -> Tensor:
    """features (N, T, F) -> predicted images (N, T, 64, 64, 3) float in [0, 1], decoded in time chunks."""
    out = []
    for t in range(0, features.shape[1], chunk):
        out.append(wm.decode(features[:, t : t + chunk])["image"].clamp(0, 1).float())
    return torch.cat(out, 1)


def default_context(episodes: list[dict[str, np.ndarray]]) -> int:
    """The first query step shared by all episodes (their `phase` arrays), else half the shortest episode."""
    starts = [query_start(ep) for ep in episodes]
    if all(s is not None for s in starts):
        return max(1, min(starts))
    return max(1, min(len(ep["action"]) for ep in episodes) // 2)


def query_start(ep: dict[str, np.ndarray]) -> int | None:
    """The first step of the query phase (`phase` == 1), or None if the episode has no phases."""
    phase = ep.get("phase")
    if phase is None:
        return None
    idx = np.flatnonzero(np.asarray(phase) == 1)
    return int(idx[0]) if len(idx) else None


__all__ = [
    "action_vectors",
    "episodes_to_batch",
    "OpenLoop",
    "open_loop",
    "decode_frames",
    "default_context",
    "query_start",
    "model_obs_space",
]
