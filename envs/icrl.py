"""Meta-RL trials for in-context RL (icrl/*): several episodes of one task drawn when the trial starts.

One gymnasium episode is one trial: `is_first` is set only at the trial start, and the agent's
memory should be kept across the episodes inside it. When an inner episode ends, the next
observation is already the first of the next episode (its last observation is skipped; the
reward that ended it arrives with the new one). Observations carry

- `vector` (K,) float32 = [task observation, one-hot previous action, previous reward, episode_start],
  so that a world model that reads `vector` sees everything;
- the same pieces as separate keys: `prev_action` (A,) float32 one-hot (zeros at the trial start),
  `prev_reward` () float32, `episode_start` () bool (True on the first observation of each episode).

`info["episode"]` is the index, within the trial, of the episode the returned observation
belongs to, i.e. the episode that the next action and its reward count towards; bandits add
`info["arm_means"]` (k,). Trials have a fixed number of steps, so returns can be compared by
episode index across trials.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from envs.core import one_hot

_FLAG = gym.spaces.Box(0, 1, (), bool)


class Trial(gym.Env):
    """Plumbing shared by the trials; subclasses define the task and its episodes."""

    metadata = {"render_modes": []}
    task_dim: int
    num_actions: int
    trial_steps: int

    def __init__(self):
        a = self.num_actions
        self.action_space = gym.spaces.Discrete(a)
        self.observation_space = gym.spaces.Dict(
            {
                "vector": gym.spaces.Box(-np.inf, np.inf, (self.task_dim + a + 2,), np.float32),
                "prev_action": gym.spaces.Box(0, 1, (a,), np.float32),
                "prev_reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
                "episode_start": _FLAG,
            }
        )

    # subclasses: draw the task, start an episode, take one step of it
    def _new_task(self) -> None:
        raise NotImplementedError

    def _start_episode(self) -> np.ndarray:
        raise NotImplementedError

    def _act(self, action: int) -> tuple[np.ndarray, float, bool]:
        """(task observation, reward, whether the inner episode ended)."""
        raise NotImplementedError

    def _trial_over(self) -> tuple[bool, bool]:
        """(terminated, truncated) after the step just taken."""
        return self.t >= self.trial_steps, False

    def _task_info(self) -> dict[str, Any]:
        return {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._new_task()
        self.t, self.episode = 0, 0
        task_obs = self._start_episode()
        return self._observe(task_obs, np.zeros(self.num_actions, np.float32), 0.0, True), self._info()

    def step(self, action):
        if self.t >= self.trial_steps:
            raise RuntimeError(f"{type(self).__name__}: step() after the trial ended; call reset()")
        action = int(action)
        if not 0 <= action < self.num_actions:
            raise ValueError(f"{type(self).__name__}: action must be in 0..{self.num_actions - 1}, got {action}")
        task_obs, reward, episode_over = self._act(action)
        self.t += 1
        terminated, truncated = self._trial_over()
        start = episode_over and not (terminated or truncated)
        if start:
            self.episode += 1
            task_obs = self._start_episode()
        obs = self._observe(task_obs, one_hot(action, self.num_actions), reward, start)
        return obs, reward, terminated, truncated, self._info()

    def _observe(self, task_obs: np.ndarray, prev_action: np.ndarray, prev_reward: float, start: bool):
        vector = np.concatenate([task_obs, prev_action, [prev_reward, float(start)]]).astype(np.float32)
        return {
            "vector": vector,
            "prev_action": prev_action,
            "prev_reward": np.array(prev_reward, np.float32),
            "episode_start": np.array(bool(start)),
        }

    def _info(self) -> dict[str, Any]:
        return {"episode": self.episode, **self._task_info()}


class Bandit(Trial):
    """icrl/bandit-<k>: a k-armed Bernoulli bandit, arm means ~ U(0, 1) per trial, `pulls` pulls (each an episode)."""

    task_dim = 0

    def __init__(self, arms: int = 5, pulls: int = 100):
        if arms < 2 or pulls < 1:
            raise ValueError(f"bandit: need arms >= 2 and pulls >= 1, got arms={arms}, pulls={pulls}")
        self.num_actions, self.trial_steps = arms, pulls
        super().__init__()

    def _new_task(self) -> None:
        self.arm_means = self.np_random.random(self.num_actions)

    def _start_episode(self) -> np.ndarray:
        return np.zeros(0, np.float32)

    def _act(self, action: int) -> tuple[np.ndarray, float, bool]:
        reward = float(self.np_random.random() < self.arm_means[action])
        return np.zeros(0, np.float32), reward, True

    def _task_info(self) -> dict[str, Any]:
        return {"arm_means": self.arm_means.copy()}


class DarkRoom(Trial):
    """icrl/dark-room: a 9x9 room, an invisible goal fixed per trial; +1 for each step on the goal.

    The agent starts each episode in the centre and observes only its position (one-hot row and
    column); moves 0 up, 1 down, 2 left, 3 right, 4 stay; 20-step episodes, 10 per trial.
    """

    size = 9
    num_actions = 5
    MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))

    def __init__(self, episode_steps: int = 20, episodes: int = 10):
        if episode_steps < 1 or episodes < 1:
            raise ValueError(f"dark-room: need episode_steps >= 1 and episodes >= 1, got {episode_steps}, {episodes}")
        self.task_dim = 2 * self.size
        self.episode_steps, self.trial_steps = episode_steps, episode_steps * episodes
        super().__init__()

    def _new_task(self) -> None:
        self.goal = tuple(int(v) for v in self.np_random.integers(self.size, size=2))

    def _position(self) -> np.ndarray:
        return np.concatenate([one_hot(self.pos[0], self.size), one_hot(self.pos[1], self.size)])

    def _start_episode(self) -> np.ndarray:
        self.pos, self.steps = (self.size // 2, self.size // 2), 0
        return self._position()

    def _act(self, action: int) -> tuple[np.ndarray, float, bool]:
        dy, dx = self.MOVES[action]
        self.pos = (min(max(self.pos[0] + dy, 0), self.size - 1), min(max(self.pos[1] + dx, 0), self.size - 1))
        self.steps += 1
        return self._position(), float(self.pos == self.goal), self.steps >= self.episode_steps

    def _task_info(self) -> dict[str, Any]:
        return {"goal": self.goal}


class MetaCartPole(Trial):
    """icrl/meta-cartpole: CartPole seen through a random linear projection, with permuted actions (Lu et al. 2023).

    Per trial: a (4, 4) Gaussian projection of the state (scale 1/2) and a permutation of the two
    actions. The pole is reset whenever it falls or after `episode_steps`; the trial is cut
    (truncated) after `trial_steps` steps, so trials have a fixed length.
    """

    task_dim = 4
    num_actions = 2

    def __init__(self, trial_steps: int = 1000, episode_steps: int = 200):
        if trial_steps < 1 or episode_steps < 1:
            raise ValueError(f"meta-cartpole: need trial_steps >= 1 and episode_steps >= 1, got {trial_steps}, {episode_steps}")
        self.trial_steps, self.episode_steps = trial_steps, episode_steps
        self.cartpole = CartPoleEnv()
        super().__init__()

    def _new_task(self) -> None:
        self.projection = (self.np_random.standard_normal((4, 4)) / 2).astype(np.float32)
        self.permutation = self.np_random.permutation(2)
        self.cartpole.reset(seed=int(self.np_random.integers(2**31)))

    def _start_episode(self) -> np.ndarray:
        state, _ = self.cartpole.reset()
        self.steps = 0
        return self.projection @ state

    def _act(self, action: int) -> tuple[np.ndarray, float, bool]:
        state, reward, terminated, _, _ = self.cartpole.step(int(self.permutation[action]))
        self.steps += 1
        return self.projection @ state, float(reward), terminated or self.steps >= self.episode_steps

    def _trial_over(self) -> tuple[bool, bool]:
        return False, self.t >= self.trial_steps
