"""dm_control suite tasks: `dmc/<domain>-<task>` from 64x64 pixels, `dmc-pomdp/<domain>-<task>` without velocities.

Both repeat each action twice (rewards summed), so an episode of 1,000 physics control steps
is 500 environment steps, truncated at the end (dm_control's time limit; a discount of 0
would end it as terminated). Pixels are rendered headless with MuJoCo's EGL backend
(`MUJOCO_GL=egl`, set by `envs` unless already set) from camera 0 (camera 2 for quadruped, as
in DreamerV3). The POMDP variant observes the concatenation of every observation entry whose
name does not contain "velocity", as a float32 vector, so velocities must be inferred from memory.
Actions are a float32 Box with the task's bounds (dm_control's are [-1, 1]).

`reset(seed=s)` rebuilds the task with `task_kwargs={"random": s}`; unseeded resets continue
the task's random stream, so a seed fixes the whole sequence of episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import image_space

ALIASES = {"cup": "ball_in_cup", "pointmass": "point_mass"}


def load_triton_first() -> None:
    """Load libtriton before MuJoCo: once dm_control (and its GL back end) is loaded, triton's LLVM
    segfaults when torch imports it later (torch._dynamo does, lazily). Call before importing
    dm_control or memory_maze; a no-op without triton or once it is loaded."""
    try:
        import triton  # noqa: F401
    except ImportError:
        pass


def suite():
    load_triton_first()
    from dm_control import suite

    return suite


def all_tasks() -> list[tuple[str, str]]:
    return list(suite().ALL_TASKS)


class DMC(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, domain: str, task: str, pixels: bool = True, action_repeat: int = 2, size: int = 64, camera: int | None = None):
        domain = ALIASES.get(domain, domain)
        if (domain, task) not in all_tasks():
            raise ValueError(f"dm_control has no task {domain}-{task}")
        if action_repeat < 1:
            raise ValueError(f"dmc: action_repeat must be >= 1, got {action_repeat}")
        if pixels and size != 64:
            raise ValueError(f"dmc: memwm images are 64x64, got size={size}")
        self.domain, self.task, self.pixels, self.action_repeat = domain, task, pixels, action_repeat
        self.camera = camera if camera is not None else (2 if domain == "quadruped" else 0)
        self._env = self._load(None)
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32), spec.maximum.astype(np.float32), dtype=np.float32)
        if pixels:
            self.observation_space = gym.spaces.Dict({"image": image_space()})
        else:
            self._keys = [k for k in self._env.observation_spec() if "velocity" not in k]
            dim = sum(int(np.prod(self._env.observation_spec()[k].shape)) for k in self._keys)
            self.observation_space = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)})

    def _load(self, seed: int | None):
        return suite().load(self.domain, self.task, task_kwargs={"random": seed})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._env = self._load(seed)
        return self._observe(self._env.reset()), {}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), self.action_space.low, self.action_space.high)
        reward = 0.0
        for _ in range(self.action_repeat):
            ts = self._env.step(action)
            reward += ts.reward or 0.0
            if ts.last():
                break
        terminated = ts.last() and ts.discount == 0
        truncated = ts.last() and not terminated
        return self._observe(ts), reward, bool(terminated), bool(truncated), {}

    def _observe(self, ts) -> dict[str, np.ndarray]:
        if self.pixels:
            return {"image": self.render()}
        return {"vector": np.concatenate([np.asarray(ts.observation[k], np.float32).ravel() for k in self._keys])}

    def render(self) -> np.ndarray:
        return self._env.physics.render(64, 64, camera_id=self.camera)

    def close(self):
        self._env.close()
