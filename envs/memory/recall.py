"""memory/recall-k<K>: name the symbol shown exactly K steps earlier (precise recall, like POPGym's RepeatPrevious).

Each observation shows one of SYMBOLS symbols (one-hot `vector`), drawn uniformly. The action
after observation t names the symbol of observation t - K: from t = K on it earns +1/QUERIES if
right and -1/QUERIES if wrong; the first K actions earn 0. Episodes are K + QUERIES steps, so
the best return is 1 and a random policy's is (2 - SYMBOLS) / SYMBOLS on average (-0.5).
A window of K + 2 observations holds a symbol, the observation where it is named and the
reward for it. (See envs.memory.stream for the step and info conventions.)

Cue: the first symbol (observation 0, named after observation K), in info `cue` with
`cue_step` 0; `reset(options={"cue": s})` sets it, leaving the rest of the stream unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory.stream import StreamTask

SYMBOLS = 4
QUERIES = 32  # a power of two: the per-step rewards add up to exactly 1


class Recall(StreamTask):
    def __init__(self, k: int = 8, symbols: int = SYMBOLS, queries: int = QUERIES, reward_scale: float = 1.0):
        if k < 1 or symbols < 2 or queries < 1:
            raise ValueError(f"recall: need k >= 1, symbols >= 2 and queries >= 1, got k={k}, symbols={symbols}, queries={queries}")
        self.k = k
        super().__init__(symbols=symbols, answers=symbols, length=k + queries, first_query=k, reward_scale=reward_scale)

    def _draw(self, options: dict[str, Any] | None) -> np.ndarray:
        stream = self.np_random.integers(self.symbols, size=self.length + 1)
        if options and options.get("cue") is not None:
            if options["cue"] not in range(self.symbols):
                raise ValueError(f"recall: cue must be a symbol in 0..{self.symbols - 1}, got {options['cue']!r}")
            stream[0] = options["cue"]
        return stream

    def _answers(self, stream: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros(self.k, np.int64), stream[: self.length - self.k]])

    @property
    def cue(self) -> int:
        return int(self.stream[0])

    def _info(self) -> dict[str, Any]:
        return {**super()._info(), "cue": self.cue, "cue_step": 0}
