"""Actions as the world model and the actor see them (one vector per step) and as gymnasium environments take them.

- Discrete(n): a one-hot vector (n,).
- MultiDiscrete(nvec): one-hots of every component, concatenated (sum(nvec),).
- Box(shape): the flattened action scaled to [-1, 1] (DreamerV3 normalises bounded actions); the
  environment gets it scaled back to [low, high] (unbounded dimensions pass through unchanged).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ActionCodec:
    """Converts between action vectors (N, A) float32 and a batch of environment actions."""

    def __init__(self, space: gym.Space):
        self.space = space
        if isinstance(space, gym.spaces.Discrete):
            self.kind, self.sizes = "discrete", [int(space.n)]
        elif isinstance(space, gym.spaces.MultiDiscrete):
            if space.nvec.ndim != 1:
                raise ValueError(f"MultiDiscrete actions must be one-dimensional, got nvec of shape {space.nvec.shape}")
            self.kind, self.sizes = "discrete", [int(n) for n in space.nvec]
        elif isinstance(space, gym.spaces.Box):
            self.kind, self.sizes = "continuous", [int(np.prod(space.shape))]
            low, high = space.low.reshape(-1).astype(np.float64), space.high.reshape(-1).astype(np.float64)
            self._bounded = np.isfinite(low) & np.isfinite(high)
            self._low, self._high = np.where(self._bounded, low, -1.0), np.where(self._bounded, high, 1.0)
        else:
            raise ValueError(f"unsupported action space {space}; expected Discrete, MultiDiscrete or Box")
        self.dim = sum(self.sizes)

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def enumerable(self) -> bool:
        """One discrete choice per step, whose actions can be listed one by one (the all-actions policy gradient)."""
        return self.discrete and len(self.sizes) == 1

    def to_env(self, vectors: np.ndarray) -> np.ndarray:
        """Action vectors (N, A) -> a batch of environment actions (N,) / (N, k) / (N, *shape)."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"action vectors must have shape (N, {self.dim}), got {vectors.shape}")
        if self.discrete:
            parts = np.split(vectors, np.cumsum(self.sizes)[:-1], axis=1)
            indices = np.stack([p.argmax(1) for p in parts], 1).astype(np.int64)  # (N, k)
            return indices[:, 0] if isinstance(self.space, gym.spaces.Discrete) else indices
        x = np.clip(vectors, -1.0, 1.0)
        scaled = np.where(self._bounded, self._low + (x + 1.0) * 0.5 * (self._high - self._low), vectors)
        return scaled.reshape(len(vectors), *self.space.shape).astype(self.space.dtype)

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n uniformly random action vectors (N, A) float32 (the prefill policy)."""
        if self.discrete:
            return np.concatenate([np.eye(k, dtype=np.float32)[rng.integers(0, k, size=n)] for k in self.sizes], 1)
        return rng.uniform(-1.0, 1.0, size=(n, self.dim)).astype(np.float32)
