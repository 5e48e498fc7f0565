"""memory/count-<n>: keep a count over the episode (how many cards of kind 0 so far, after every card).

Each observation shows a card of one of KINDS kinds (one-hot `vector`), drawn uniformly. The
action after observation t names how many of observations 0 .. t showed kind 0, clipped at
CLASSES - 1 ("that many or more"), so the action space stays small. Every action is scored:
+1/n if right, -1/n if wrong, over n-step episodes, so the best return is 1 and a random
policy's is (2 - CLASSES) / CLASSES on average (-0.75). A policy that ignores the cards and
names the likeliest count for the step number stays below 0 on the registered lengths: the
count must be kept from the first observation to the last. (See envs.memory.stream for the step and info conventions.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory.stream import StreamTask

KINDS = 4
CLASSES = 8


class Count(StreamTask):
    def __init__(self, length: int = 16, kinds: int = KINDS, classes: int = CLASSES, reward_scale: float = 1.0):
        if length < 2 or kinds < 2 or classes < 2:
            raise ValueError(f"count: need length >= 2, kinds >= 2 and classes >= 2, got {length}, {kinds}, {classes}")
        self.classes = classes
        super().__init__(symbols=kinds, answers=classes, length=length, first_query=0, reward_scale=reward_scale)

    def _draw(self, options: dict[str, Any] | None) -> np.ndarray:
        return self.np_random.integers(self.symbols, size=self.length + 1)

    def _answers(self, stream: np.ndarray) -> np.ndarray:
        return np.minimum(np.cumsum(stream[: self.length] == 0), self.classes - 1)
