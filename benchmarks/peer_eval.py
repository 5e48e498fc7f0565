"""The one evaluation that scores an outside agent on a memwm task, for `benchmarks.peers`.

    from benchmarks.peer_eval import score
    result = score(policy, "memory/recall-k8", episodes=32, seed=S)    # {"returns", "lengths", "successes"}

An outside agent sees the task as everyone outside memwm does: `gymnasium.make("memwm/<name>-v0")`, one Box
observation (envs.gymnasium_ids; ids the registry makes but gymnasium does not list, such
as memory/recall-k2, through `gym_make`). `policy` is any object with

    reset()          a new episode starts (clear the recurrent state)
    act(obs)         the action for this observation (deterministic: its mode), as the env takes it

Episode i is played from `env.reset(seed=seed + i)`, as memwm's own evaluator plays it
(agents.evaluate.run_episodes), so that the same policy gets the same returns through either path
(tests/test_peers.py checks it with memwm's Dreamer behind this interface), and success is the task's own rule
(envs.spec(id).success). numpy and gymnasium only, with memwm's `envs` package: it runs in a peer's virtual
environment, where neither memwm's agents nor its dependencies are installed.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

import envs
from envs.gymnasium_ids import gym_make


class Policy(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> Any: ...


def score(policy: Policy, env_id: str, episodes: int, seed: int, options: dict | None = None) -> dict[str, list]:
    """Play `episodes` episodes of the memwm task `env_id` with `policy`; per episode its return, length and
    success (goal tasks; None elsewhere)."""
    env = gym_make(env_id, **(options or {}))
    spec = envs.spec(env_id)
    out: dict[str, list] = {"returns": [], "lengths": [], "successes": []}
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            policy.reset()
            total, length, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs))
                total += float(reward)
                length += 1
                done = terminated or truncated
            out["returns"].append(total)
            out["lengths"].append(length)
            out["successes"].append(spec.success(info, total) if spec.goal else None)
    finally:
        env.close()
    return out


def summary(result: dict[str, list]) -> dict[str, float | None]:
    """The mean return and success rate (None where the task has no success) of a `score` result."""
    successes = [s for s in result["successes"] if s is not None]
    return {
        "return": float(np.mean(result["returns"])),
        "success": float(np.mean(successes)) if successes else None,
        "episodes": len(result["returns"]),
    }
