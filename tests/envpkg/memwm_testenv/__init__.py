"""A test-only package: importing it registers MemwmTestRecall-v0, for `envs.make("gym:memwm_testenv:MemwmTestRecall-v0")`."""

import gymnasium as gym
import numpy as np


class Recall(gym.Env):
    """See a bit at the first step, then zeros; at step `length` name the bit: +1 if right, -1 if wrong."""

    observation_space, action_space = gym.spaces.Box(0, 1, (1,), np.float32), gym.spaces.Discrete(2)

    def __init__(self, length: int = 5):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.bit, self.t = int(self.np_random.integers(2)), 0
        return np.array([self.bit], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = (1.0 if int(action) == self.bit else -1.0) if self.t == self.length else 0.0
        return np.zeros(1, np.float32), reward, self.t == self.length, False, {}


gym.register("MemwmTestRecall-v0", entry_point=Recall)
