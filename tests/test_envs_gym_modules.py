"""gym:<module>:<id>: the module is imported (registering the id) wherever the env is made, vector-env workers too."""

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs

PACKAGES = str(Path(__file__).parent / "envpkg")  # holds memwm_testenv, which registers MemwmTestRecall-v0 on import
ENV_ID = "gym:memwm_testenv:MemwmTestRecall-v0"


@pytest.fixture
def on_path(monkeypatch):
    monkeypatch.syspath_prepend(PACKAGES)
    monkeypatch.setenv("PYTHONPATH", PACKAGES)


def play(env, seed, actions):
    """Observations and rewards of the episode of MemwmTestRecall-v0 (5 steps) seeded `seed`, under `actions`."""
    obs, _ = env.reset(seed=seed)
    vectors, rewards = [obs["vector"]], []
    for a in actions:
        obs, reward, *_ = env.step(a)
        vectors.append(obs["vector"])
        rewards.append(reward)
    return np.array(vectors), rewards


def test_module_id_imports_the_module_and_plays_its_env(on_path):
    env = envs.make(ENV_ID, seed=3)
    assert "memwm_testenv" in sys.modules and env.action_space == gym.spaces.Discrete(2)
    bits = set()
    for seed in range(6):
        bit = int(env.reset(seed=seed)[0]["vector"][0])
        bits.add(bit)
        vectors, rewards = play(env, seed, [0, 0, 0, 0, bit])
        np.testing.assert_array_equal(vectors[:, 0], [bit, 0, 0, 0, 0, 0])  # the bit is seen at the first step only
        assert rewards == [0.0] * 4 + [1.0]
        assert play(env, seed, [0, 0, 0, 0, 1 - bit])[1] == [0.0] * 4 + [-1.0]
    assert bits == {0, 1}
    assert envs.spec(ENV_ID).episode_length is None and not envs.spec(ENV_ID).goal
    assert envs.make("gym:CartPole-v1").action_space.n == 2  # registered ids need no module


def test_module_is_imported_in_vector_env_workers(on_path):
    """spawn starts each worker as a fresh interpreter: the id exists there only if making the env imports the module
    (forkserver, the default for gym:, would reuse a server started earlier in this process, with its old sys.path)."""
    vec = envs.make_vector(ENV_ID, 2, seed=11, asynchronous=True, context="spawn")
    assert isinstance(vec, gym.vector.AsyncVectorEnv)
    singles = [envs.make(ENV_ID, seed=11 + i) for i in range(2)]
    obs, _ = vec.reset()
    np.testing.assert_array_equal(obs["vector"], [s.reset()[0]["vector"] for s in singles])
    bits = obs["vector"][:, 0].astype(int)
    for _ in range(4):
        obs, reward, terminated, *_ = vec.step(np.zeros(2, int))
    obs, reward, terminated, *_ = vec.step(bits)
    assert terminated.all() and (reward == 1.0).all()
    vec.close()


def test_missing_module_is_a_one_line_error_naming_it():
    with pytest.raises(ValueError, match=r"cannot import module 'memwm_no_such_pkg'.*PYTHONPATH") as e:
        envs.make("gym:memwm_no_such_pkg:MyEnv-v0")
    assert "\n" not in str(e.value)


def test_id_the_module_does_not_register_names_the_close_ones(on_path):
    with pytest.raises(
        ValueError,
        match=r"module 'memwm_testenv' registers no gymnasium environment 'MemwmTestRecal-v0'; "
        r"closest: MemwmTestRecall-v0",
    ) as e:
        envs.make("gym:memwm_testenv:MemwmTestRecal-v0")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="gym:<module>:<id>"):
        envs.make("gym::MemwmTestRecall-v0")
