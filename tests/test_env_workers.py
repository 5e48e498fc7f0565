"""Vector envs in worker processes (agents/env_workers.py): a worker that dies or raises gives an
error naming the environment and the worker, and a healthy vector env passes through unchanged."""

import os
import signal

import gymnasium as gym
import numpy as np
import pytest

from agents.env_workers import parallel_envs


class _Exploding(gym.Env):
    """Raises inside its worker on the third step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == 3:
            raise ValueError("the simulator exploded")
        return np.zeros(2, np.float32), 0.0, False, False, {}


gym.register("MemwmExploding-v0", entry_point=_Exploding)


def test_a_killed_env_worker_raises_an_error_naming_the_env_not_a_hang():
    env = parallel_envs("gym:CartPole-v1", 2, seed=0, asynchronous=True)
    env.reset()
    victim = env.unwrapped.processes[1]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=10)
    with pytest.raises(RuntimeError, match=r"environment 'gym:CartPole-v1' failed in step\(\).*worker 1 \(pid \d+\) exited with code -9"):
        env.step(np.zeros(2, np.int64))
    env.close()  # no error, no hang
    assert not any(p.is_alive() for p in env.unwrapped.processes)


def test_an_env_raising_inside_its_worker_gives_an_error_naming_the_env():
    env = parallel_envs("gym:MemwmExploding-v0", 2, seed=0, asynchronous=True, context="fork")  # the registration is inherited
    env.reset()
    env.step(np.zeros(2, np.int64))
    env.step(np.zeros(2, np.int64))
    with pytest.raises(RuntimeError, match=r"environment 'gym:MemwmExploding-v0' failed in step\(\).*the simulator exploded"):
        env.step(np.zeros(2, np.int64))
    env.close()
    assert not any(p.is_alive() for p in env.unwrapped.processes)


def test_the_guard_passes_a_healthy_vector_env_through_unchanged():
    import envs

    guarded = parallel_envs("gym:CartPole-v1", 2, seed=3, asynchronous=False)
    plain = envs.make_vector("gym:CartPole-v1", 2, seed=3, asynchronous=False)
    obs_a, _ = guarded.reset()
    obs_b, _ = plain.reset()
    for k in obs_b:
        np.testing.assert_array_equal(obs_a[k], obs_b[k])
    for _ in range(5):
        obs_a, r_a, *_ = guarded.step(np.ones(2, np.int64))
        obs_b, r_b, *_ = plain.step(np.ones(2, np.int64))
        np.testing.assert_array_equal(obs_a["vector"], obs_b["vector"])
        np.testing.assert_array_equal(r_a, r_b)
    assert guarded.single_action_space == plain.single_action_space and guarded.num_envs == 2
    guarded.close()
    plain.close()
