"""Play episodes with a scripted or random policy and write them as episode files (the data of the probes).

`memwm collect` (agents/commands/collect.py) is the command around `collect_episodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from envs.build import make, scripted_policy
from envs.dataset import encode_action, save_episode


def collect_episodes(
    env: str, episodes: int, policy: Literal["scripted", "random"], out: Path, seed: int = 0, progress: bool = False, **options
) -> list[Path]:
    """Play `episodes` episodes of `env` (made with `options`) and write each to `out` as a compressed .npz
    (envs.dataset's layout); returns the files.

    Episode i is reset with seed `seed` + i, so any one of them can be replayed alone. `policy` is
    the task's scripted policy (memory/* tasks: explores, then queries) or uniform random actions.
    Besides observations, actions, rewards and flags, each file holds the probe arrays:
    `phase` (0 context, 1 query), the task's masks (e.g. `door_visible`), `cue`, `episode`, `arm_means`.
    """
    if episodes < 1:
        raise ValueError(f"collect needs episodes >= 1, got {episodes}")
    if policy not in ("scripted", "random"):
        raise ValueError(f"policy must be 'scripted' or 'random', got {policy!r}")
    environment = make(env, seed=seed, **options)
    paths = []
    try:
        act = scripted_policy(environment) if policy == "scripted" else (lambda obs: environment.action_space.sample())
        for i in tqdm(range(episodes), desc=f"collect {env}", disable=not progress):
            paths.append(save_episode(out, i, play_episode(environment, act, seed + i)))
    finally:
        environment.close()
    return paths


def play_episode(env, act, seed: int | None = None) -> dict[str, np.ndarray]:
    """One episode as a dict of (T, ...) arrays (the layout of envs.dataset)."""
    obs, info = env.reset(seed=seed)
    inner = env.unwrapped
    probe_keys = tuple(getattr(inner, "probe_keys", ()))
    steps = [_record(obs, 0.0, info, probe_keys)]
    while True:
        action = act(obs)
        steps[-1]["action"] = encode_action(env.action_space, action)
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append(_record(obs, reward, info, probe_keys))
        if terminated or truncated:
            break
    steps[-1]["action"] = np.zeros_like(steps[0]["action"])
    episode = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
    for key in ("cue", "arm_means"):
        value = info.get(key, getattr(inner, key, None))
        if value is not None:
            episode[key] = np.asarray(value)
    return episode


def _record(obs: dict[str, np.ndarray], reward: float, info: dict[str, Any], probe_keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    step = {k: np.asarray(v) for k, v in obs.items()}
    step["reward"] = np.float32(reward)
    if "phase" in info:
        step["phase"] = np.int8(info["phase"] == "query")
    for key in probe_keys:
        step[key] = np.bool_(info[key])
    if "episode" in info:
        step["episode"] = np.int64(info["episode"])
    return step
