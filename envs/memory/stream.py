"""What memory/recall-k<K> and memory/count-<n> share: a stream of one-hot symbols, a question after every observation.

An episode is `length` steps. Observation t (t = 0 .. length) is the vector one-hot of symbol
`stream[t]`; the action taken after it answers a question about the stream so far, whose right
answer is `answers[t]`. From step `first_query` on, a right answer earns +1/Q and a wrong one
-1/Q with the next observation (Q = length - first_query answers are scored), so the best
return is exactly 1 and a uniformly random policy over A answers gets (2 - A) / A. Before
`first_query` any action earns 0. The episode terminates with observation `length`.

The option `reward_scale` multiplies every reward (the best return is then `reward_scale`): the
same task in another reward unit, to check that a learner is indifferent to the unit (issue 19's
x1/32, x1, x32 comparison: `memwm train --env memory/recall-k8 --env-options reward_scale 32`).

Info at every step: `phase` ("context" before `first_query`, "query" from it on, for the
observation just returned) and `query_start` (True at observation `first_query`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import one_hot, vector_space


class StreamTask(gym.Env):
    """Subclasses draw the stream (`_draw`) and say the right answer after each observation (`_answers`)."""

    metadata = {"render_modes": []}

    def __init__(self, symbols: int, answers: int, length: int, first_query: int, reward_scale: float = 1.0):
        if not 0 <= first_query < length:
            raise ValueError(f"a stream task needs 0 <= first_query < length, got {first_query} and {length}")
        if not reward_scale > 0:
            raise ValueError(f"a stream task needs reward_scale > 0, got {reward_scale}")
        self.symbols, self.length, self.first_query = symbols, length, first_query
        self.observation_space = gym.spaces.Dict({"vector": vector_space(symbols, 0.0, 1.0)})
        self.action_space = gym.spaces.Discrete(answers)
        self._unit = float(reward_scale) / (length - first_query)

    def _draw(self, options: dict[str, Any] | None) -> np.ndarray:
        """(length + 1,) int symbols, from `self.np_random`."""
        raise NotImplementedError

    def _answers(self, stream: np.ndarray) -> np.ndarray:
        """(length,) int: the right answer after each observation 0 .. length - 1 (any value before first_query)."""
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.stream = self._draw(options)
        self.answers = self._answers(self.stream)
        self.t = 0
        return self._observe(), self._info()

    def step(self, action):
        if self.t >= self.length:
            raise RuntimeError(f"{type(self).__name__.lower()}: step() after the episode ended; call reset()")
        action = int(action)
        if not 0 <= action < self.action_space.n:
            raise ValueError(f"{type(self).__name__.lower()}: action must be in 0..{self.action_space.n - 1}, got {action}")
        reward = 0.0
        if self.t >= self.first_query:
            reward = self._unit if action == self.answers[self.t] else -self._unit
        self.t += 1
        return self._observe(), reward, self.t == self.length, False, self._info()

    def scripted_action(self) -> int:
        """The right answer (the optimal policy: return 1)."""
        return int(self.answers[self.t]) if self.first_query <= self.t < self.length else 0

    def _observe(self) -> dict[str, np.ndarray]:
        return {"vector": one_hot(int(self.stream[self.t]), self.symbols)}

    def _info(self) -> dict[str, Any]:
        return {"phase": "query" if self.t >= self.first_query else "context", "query_start": self.t == self.first_query}
