"""memwm environments: one registry, `envs.make(id)`, with one observation format.

    envs.make(id, seed=None, **options) -> gymnasium.Env      observations: dict with `image`
    envs.make_vector(id, n, seed=None, asynchronous=None)      (64, 64, 3) uint8 and/or `vector`
    envs.ids(), envs.spec(id) (facts), envs.describe(id)       (K,) float32, plus the flags
    envs.scripted_policy(env) -> obs -> action (memory/*,      `is_first`, `is_last`, `is_terminal`
        minigrid/memory-*)
    envs.collect.collect_episodes(...): episode files; envs.dataset: their format and sequence sampling
    gymnasium.make("memwm/recall-k8-v0"): every task as a plain gymnasium env (envs.gymnasium_ids)

numpy only: nothing here imports torch or the agents.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for dm_control and Memory Maze; set before mujoco loads

from envs.collect import collect_episodes  # noqa: E402
from envs.core import FLAGS  # noqa: E402
from envs.build import make, make_vector, scripted_policy  # noqa: E402
from envs.listing import cli_envs  # noqa: E402
from envs.registry import describe, ids, spec  # noqa: E402
from envs import gymnasium_ids  # noqa: E402, F401  (registers the memwm/*-v0 gymnasium ids)

__all__ = ["FLAGS", "cli_envs", "collect_episodes", "describe", "ids", "make", "make_vector", "scripted_policy", "spec"]
