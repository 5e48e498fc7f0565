"""Every memwm task is a plain gymnasium environment `memwm/<name>-v0` (envs/gymnasium_ids.py).

References: gymnasium's own checker (`gymnasium.utils.env_checker.check_env`: spaces, seeding and
step determinism, fresh data per call, render modes, close) passes for every registered id; the
Box observation equals memwm's `image` or `vector` step for step; gymnasium's `module:id` form
(`gymnasium/envs/registration.py`, `_find_spec`) makes the ids in a process that imported nothing of memwm.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import contextlib  # noqa: E402
import re  # noqa: E402
import string  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.envs.registration import parse_env_id  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402
from envs.gymnasium_ids import FAMILIES, gym_id, gym_name  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("dmc/", "memory-maze/")  # MuJoCo rendering on the CPU; a maze takes seconds to build
ALL_IDS = envs.ids()
CHECKED = [i for i in ALL_IDS if not i.startswith(HEAVY)] + ["dmc/cartpole-swingup"]  # the full checker
PASSIVE = [i for i in ALL_IDS if i.startswith("dmc/") and i not in CHECKED] + ["memory-maze/9x9"]  # first steps only
UNBUILT = [i for i in ALL_IDS if i not in CHECKED + PASSIVE]  # the larger mazes: made, never reset (seconds a build)
FAMILY_IDS = [f"memwm/{name}-v0" for name in FAMILIES]


def one_per_family() -> list[str]:
    """The first registered id of each task family: memory/rooms-2, ..., minigrid/memory-s7, dmc/cartpole-swingup, ..."""
    first = {}
    for i in ALL_IDS:
        prefix = i.split("/")[0]
        first.setdefault(prefix if prefix in ("dmc", "dmc-pomdp", "memory-maze") else re.sub(r"\d+(x\d+)?(-random)?$", "", i), i)
    return list(first.values())


def test_names_follow_the_documented_scheme():
    assert gym_id("memory/recall-k8") == "memwm/recall-k8-v0"
    assert gym_id("memory/distracting-100") == "memwm/distracting-100-v0"
    assert gym_id("memory/count-16") == "memwm/count-16-v0"
    assert gym_id("minigrid/memory-s7") == "memwm/minigrid-memory-s7-v0"
    assert gym_id("pomdp/cartpole-positions") == "memwm/pomdp-cartpole-positions-v0"
    assert gym_id("dmc-pomdp/walker-walk") == "memwm/dmc-pomdp-walker-walk-v0"
    assert gym_id("icrl/bandit-10") == "memwm/icrl-bandit-10-v0"


def test_every_memwm_id_is_registered_under_one_distinct_legal_gymnasium_id():
    gids = [gym_id(i) for i in ALL_IDS]
    assert len(set(gids)) == len(gids)
    assert not set(gids) & set(FAMILY_IDS)
    for memwm_id, gid in zip(ALL_IDS, gids):
        assert parse_env_id(gid) == ("memwm", gym_name(memwm_id), 0)
        assert gym.spec(gid).kwargs == {"env_id": memwm_id}
    assert sorted(k for k in gym.registry if k.startswith("memwm/")) == sorted(gids + FAMILY_IDS)


def test_registration_stores_names_only_and_is_idempotent():
    for gid in FAMILY_IDS + [gym_id(i) for i in ALL_IDS]:
        assert gym.spec(gid).entry_point == "envs.gymnasium_ids:MemwmEnv"
        assert gym.spec(gid).max_episode_steps is None  # the tasks end their own episodes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is registered twice
        envs.gymnasium_ids.register()


@contextlib.contextmanager
def checker_findings_are_errors():
    """Every warning gymnasium's checkers give fails the test but two that describe the tasks, not the wrapper:
    unbounded vector spaces (the true bounds of positions and velocities are unknown) and no declared frame rate."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", module="gymnasium")
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is -?infinity")
        warnings.filterwarnings("ignore", message=".*No render fps was declared")
        yield


def make_for_check(env_id: str, **options) -> gym.Env:
    image = "image" in envs.make(env_id).observation_space.spaces
    return gym.make(gym_id(env_id), render_mode="rgb_array" if image else None, **options)


@pytest.mark.parametrize("env_id", CHECKED)
def test_gymnasium_env_checker_passes(env_id):
    env = make_for_check(env_id)
    with checker_findings_are_errors():
        check_env(env.unwrapped)
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", PASSIVE)
def test_heavy_ids_pass_gymnasiums_passive_checks(env_id):
    """The rest of dmc/* and the smallest maze: `gymnasium.make`'s PassiveEnvChecker checks the first reset, step
    and render (the full checker rebuilds a maze at each of its seeded resets, seconds each; dmc/cartpole-swingup
    stands for the same wrapper over the same class above)."""
    env = make_for_check(env_id)
    with checker_findings_are_errors():
        obs, _ = env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(3):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs) and isinstance(reward, float)
        assert np.array_equal(env.render(), obs)
    env.close()


@pytest.mark.parametrize("env_id", UNBUILT)
def test_larger_mazes_make_with_the_box_of_their_image(env_id):
    env = gym.make(gym_id(env_id), render_mode="rgb_array")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    env.close()


@pytest.mark.parametrize("env_id", [i for i in one_per_family() if not i.startswith("memory-maze/")])  # a maze build: seconds
def test_observation_is_memwm_image_or_vector_step_for_step(env_id):
    """Same seed, same actions: the Box observation is memwm's `image` (if any, else `vector`), the rest equal."""
    ours, theirs = envs.make(env_id), gym.make(gym_id(env_id))
    key = "image" if "image" in ours.observation_space.spaces else "vector"
    assert theirs.observation_space == ours.observation_space[key]
    a, _ = ours.reset(seed=3)
    b, _ = theirs.reset(seed=3)
    theirs.action_space.seed(3)
    for _ in range(12):
        assert np.array_equal(a[key], b)
        action = theirs.action_space.sample()
        a, *rest_a = ours.step(action)
        b, *rest_b = theirs.step(action)
        assert rest_a[:3] == rest_b[:3]  # reward, terminated, truncated
        if rest_a[1] or rest_a[2]:
            break


def test_render_is_the_current_frame_and_vector_tasks_refuse_to_render():
    env = gym.make("memwm/distracting-8-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs) and env.render().dtype == np.uint8
    obs, *_ = env.step(0)
    assert np.array_equal(env.render(), obs)
    unrendered = gym.make("memwm/distracting-8-v0")
    unrendered.reset(seed=0)
    assert unrendered.render() is None
    with pytest.raises(ValueError, match="observes a vector"):
        gym.make("memwm/recall-k8-v0", render_mode="rgb_array")


def test_family_ids_take_the_constructors_parameter_as_a_keyword():
    for name, template in FAMILIES.items():
        (param,) = {p for _, p, _, _ in string.Formatter().parse(template) if p}
        registered = [i for i in ALL_IDS if gym_name(i).startswith(name) and param in envs.spec(i).kwargs]
        assert registered, f"{name}: no registered id built with {param}="
        value = envs.spec(registered[0]).kwargs[param]
        assert template.format(**{param: value}) == registered[0]
    a, b = gym.make("memwm/recall-v0", k=8), gym.make("memwm/recall-k8-v0")
    assert np.array_equal(a.reset(seed=1)[0], b.reset(seed=1)[0])
    assert gym.make("memwm/recall-v0", k=12).unwrapped.memwm_id == "memory/recall-k12"  # beyond the registered K
    assert gym.make("memwm/count-v0", length=5).unwrapped.memwm_id == "memory/count-5"
    assert gym.make("memwm/icrl-bandit-v0", arms=3).action_space == gym.spaces.Discrete(3)
    with checker_findings_are_errors():
        check_env(gym.make("memwm/recall-v0", k=3).unwrapped)  # its spec keeps k for the checker's own makes
    with pytest.raises(ValueError, match="needs the keyword k"):
        gym.make("memwm/recall-v0")
    with pytest.raises(ValueError, match="unknown env 'memory/distracting-7'"):
        gym.make("memwm/distracting-v0", length=7)
    with pytest.raises(ValueError, match="takes no option 'k'"):
        gym.make("memwm/recall-k8-v0", k=4)


def test_other_keywords_are_memwm_options():
    env = gym.make("memwm/rooms-2-v0", steps_per_room=130)
    env.reset(seed=0)
    steps = 1
    while not any(env.step(0)[2:4]):
        steps += 1
    assert steps == 2 * 130 == envs.spec("memory/rooms-2").episode_length - 2 * 20


def test_a_fresh_process_makes_one_id_of_every_family_through_module_colon_id():
    """gymnasium's `module:id` form imports `envs` itself; registering builds nothing heavy. (A maze is built at
    its first reset, seconds: memory-maze is made but not reset here.)"""
    ids = [gym_id(i) for i in one_per_family()]
    script = f"""
import sys, gymnasium
assert not any(m == "envs" or m.startswith(("envs.", "agents", "world_models", "kernels")) for m in sys.modules)
env = gymnasium.make("envs:memwm/recall-k8-v0")
heavy = [m for m in ("dm_control", "mujoco", "memory_maze", "minigrid") if m in sys.modules]
assert not heavy, f"registering imported {{heavy}}"
for gid in {ids!r}:
    env = gymnasium.make("envs:" + gid)
    assert isinstance(env.observation_space, gymnasium.spaces.Box), gid
    if "memory-maze" not in gid:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs), gid
        env.step(env.action_space.sample())
    env.close()
print("ok", len({ids!r}))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["ok", str(len(ids))]
