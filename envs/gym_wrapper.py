"""`gym:<registered id>`: any installed gymnasium environment in memwm's observation format.

Observations: a Box of shape (H, W, 3) or (H, W, 1) or (H, W) with dtype uint8 is an image,
resized to 64x64 (nearest neighbour, grey repeated to RGB); any other Box is flattened into the
float32 `vector`; Discrete and MultiDiscrete are one-hot encoded into it; a Tuple or Dict of
those (Dict in key order) is encoded part by part, with at most one image part. Actions:
Discrete (offset by its `start`), MultiDiscrete as they are, Box as float32 (rescaled to
[-1, 1] when its bounds are finite). Any other space raises a ValueError that names it.
Options given to `envs.make("gym:ID", **options)` go to `gymnasium.make`.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from envs.core import flat_size, flat_vector, image_space, resize_nearest

SUPPORTED_OBS = "Box (image or vector), Discrete, MultiDiscrete, or a Tuple/Dict of those"
SUPPORTED_ACTIONS = "Discrete, MultiDiscrete or Box"


def _is_image(space: gym.spaces.Box) -> bool:
    shape = space.shape
    return space.dtype == np.uint8 and (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3)))


def _encoders(space: gym.spaces.Space, where: str) -> list[tuple[str, int, Callable[[Any], np.ndarray]]]:
    """(kind, size, encode) per leaf: kind 'image' (size 0) or 'vector' (its float32 size)."""
    if isinstance(space, gym.spaces.Box) and _is_image(space):
        return [("image", 0, _image)]
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return [("vector", flat_size(space), lambda x: flat_vector(space, x))]
    if isinstance(space, gym.spaces.Tuple):
        return [
            (kind, size, lambda x, i=i, f=f: f(x[i]))
            for i, sub in enumerate(space.spaces)
            for kind, size, f in _encoders(sub, f"{where}[{i}]")
        ]
    if isinstance(space, gym.spaces.Dict):
        return [
            (kind, size, lambda x, k=k, f=f: f(x[k]))
            for k, sub in space.spaces.items()
            for kind, size, f in _encoders(sub, f"{where}[{k!r}]")
        ]
    raise ValueError(f"gym: unsupported observation space {where} = {space}; supported: {SUPPORTED_OBS}")


def _image(x) -> np.ndarray:
    x = np.asarray(x, np.uint8)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(resize_nearest(x))


class GymnasiumEnv(gym.Env):
    """A registered gymnasium environment, observed as {"image"?, "vector"?}."""

    def __init__(self, env_id: str, keep: tuple[int, ...] | None = None, **kwargs):
        """`keep`: indices of the flat observation vector to observe (the rest hidden, e.g. the
        velocities of CartPole, which turns it into a memory task); None keeps everything."""
        try:
            spec = gym.spec(env_id)
        except gym.error.Error as e:
            raise ValueError(f"gym: no registered gymnasium environment {env_id!r} ({e})") from None
        self.env = gym.make(spec, **kwargs)
        self.metadata = self.env.metadata
        self._parts = _encoders(self.env.observation_space, "observation")
        images = [p for p in self._parts if p[0] == "image"]
        if len(images) > 1:
            raise ValueError(f"gym: {env_id} observes {len(images)} images; memwm observations hold at most one")
        spaces: dict[str, gym.spaces.Space] = {}
        if images:
            spaces["image"] = image_space()
        vector_size = sum(size for kind, size, _ in self._parts if kind == "vector")
        self._keep = None if keep is None else np.asarray(keep, np.int64)
        if self._keep is not None:
            if self._keep.ndim != 1 or len(self._keep) == 0 or self._keep.min() < 0 or self._keep.max() >= vector_size:
                raise ValueError(f"gym: keep must be indices into {env_id}'s {vector_size}-long observation vector, got {keep}")
            vector_size = len(self._keep)
        if vector_size:
            spaces["vector"] = gym.spaces.Box(-np.inf, np.inf, (vector_size,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space, self._decode = _action_codec(self.env.action_space)

    def _encode(self, obs) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        vectors = []
        for kind, _, encode in self._parts:
            if kind == "image":
                out["image"] = encode(obs)
            else:
                vectors.append(encode(obs))
        if vectors:
            vector = np.concatenate(vectors)
            out["vector"] = vector if self._keep is None else vector[self._keep]
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._encode(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self._decode(action))
        return self._encode(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def _action_codec(space: gym.spaces.Space) -> tuple[gym.spaces.Space, Callable[[Any], Any]]:
    """(the action space memwm agents see, a function from their action to the wrapped env's)."""
    if isinstance(space, gym.spaces.Discrete):
        start = int(space.start)
        return gym.spaces.Discrete(int(space.n)), lambda a: start + int(a)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return space, lambda a: np.asarray(a, space.dtype)
    if isinstance(space, gym.spaces.Box):
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        if np.isfinite(low).all() and np.isfinite(high).all():
            unit = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)

            def decode(a):
                a = np.clip(np.asarray(a, np.float64), -1.0, 1.0)
                return (low + (a + 1.0) / 2.0 * (high - low)).astype(space.dtype)

            return unit, decode
        return gym.spaces.Box(space.low, space.high, space.shape, np.float32), lambda a: np.asarray(a, space.dtype)
    raise ValueError(f"gym: unsupported action space {space}; supported: {SUPPORTED_ACTIONS}")
