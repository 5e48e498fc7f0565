"""The environment registry: every id, the observation format, seeding, vector envs, errors, gym:, icrl, collect."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import envs  # noqa: E402
from envs.dataset import SequenceSampler, load_episodes  # noqa: E402

HEAVY = ("dmc/", "memory-maze/")  # MuJoCo rendering on the CPU: tens of ms a step, seconds to build a maze
# Heavy ids take 10 random steps instead of 100, and 3 in a vector env.
ALL_IDS = envs.ids()
LIGHT_IDS = [i for i in ALL_IDS if not i.startswith(HEAVY)]


def steps_for(env_id: str) -> int:
    return 10 if env_id.startswith(HEAVY) else 100


def rollout(env: gym.Env, steps: int, seed: int | None = None):
    """Random actions (the action space seeded by reset) for `steps` steps, resetting after each episode's end."""
    obs, _ = env.reset(seed=seed)
    trace = [(obs, 0.0)]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append((obs, reward))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append((obs, 0.0))
    return trace


def assert_same(a, b):
    assert len(a) == len(b)
    for (oa, ra), (ob, rb) in zip(a, b):
        assert ra == rb
        assert oa.keys() == ob.keys()
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)


# ------------------------------------------------------------------ every id


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_id_resets_and_steps_within_its_declared_spaces(env_id):
    env = envs.make(env_id, seed=0)
    space = env.observation_space
    assert set(envs.FLAGS) <= set(space.spaces) and ({"image", "vector"} & set(space.spaces))
    if "image" in space.spaces:
        assert space["image"].shape == (64, 64, 3) and space["image"].dtype == np.uint8
    if "vector" in space.spaces:
        assert space["vector"].dtype == np.float32 and len(space["vector"].shape) == 1
    assert isinstance(env.action_space, (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete))
    obs, _ = env.reset()
    assert obs["is_first"] and not obs["is_last"] and not obs["is_terminal"]
    assert space.contains(obs), {k: (v.dtype, v.shape) for k, v in obs.items()}
    trace = [(obs, 0.0)]
    for _ in range(steps_for(env_id)):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append((obs, reward))
        assert space.contains(obs), {k: (v.dtype, v.shape) for k, v in obs.items()}
        assert isinstance(reward, float) and np.isfinite(reward)
        assert not obs["is_first"]
        assert bool(obs["is_last"]) == (terminated or truncated) and bool(obs["is_terminal"]) == terminated
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs["is_first"]
            trace.append((obs, 0.0))
    if env_id.startswith("memory-maze/"):  # same seed, same episode (a maze takes seconds to build: checked here)
        assert_same(trace[:6], rollout(env, 5, seed=0))
    env.close()


@pytest.mark.parametrize("env_id", LIGHT_IDS + ["dmc/cartpole-swingup"])  # dmc-pomdp/* cover every dmc domain
def test_same_seed_same_episode(env_id):
    steps = 5 if env_id.startswith(HEAVY) else 60
    a, b = envs.make(env_id, seed=3), envs.make(env_id, seed=3)
    first = rollout(a, steps)
    assert_same(first, rollout(b, steps))
    if not env_id.startswith(HEAVY):  # reset(seed=...) replays it too, on an env that has already run
        assert_same(first, rollout(a, steps, seed=3))
        other = rollout(envs.make(env_id, seed=4), steps)
        assert any(
            not np.array_equal(x[0].get("image", x[0].get("vector")), y[0].get("image", y[0].get("vector"))) for x, y in zip(first, other)
        ), "a different seed should give a different episode"
    a.close(), b.close()


# The MuJoCo families share one worker path (forkserver processes, EGL rendering inside them): one
# pixel and one vector dm_control task stand for them; Memory Maze's builds would add half a minute.
VECTOR_IDS = [i for i in LIGHT_IDS if not i.startswith("dmc-pomdp/")] + ["dmc-pomdp/walker-walk", "dmc/cartpole-swingup"]


@pytest.mark.parametrize("env_id", VECTOR_IDS)
def test_vector_env_of_two_matches_two_single_envs(env_id):
    heavy = env_id.startswith(HEAVY)
    vec = envs.make_vector(env_id, 2, seed=7)
    assert isinstance(vec, gym.vector.AsyncVectorEnv)
    obs, _ = vec.reset()
    assert obs["is_first"].shape == (2,) and obs["is_first"].all()
    singles = [] if heavy else [envs.make(env_id, seed=7 + i) for i in range(2)]
    expected = [s.reset()[0] for s in singles]
    for _ in range(3 if heavy else 20):
        for i, o in enumerate(expected):  # env i of the vector is the single env seeded 7 + i
            for k in o:
                np.testing.assert_array_equal(obs[k][i], o[k], err_msg=k)
        actions = vec.action_space.sample()
        obs, reward, terminated, truncated, _ = vec.step(actions)
        assert obs["is_last"].shape == (2,) and reward.shape == (2,)
        results = [s.step(a) for s, a in zip(singles, actions)]
        expected = [r[0] for r in results]
        if singles:
            np.testing.assert_array_equal(reward, [r[1] for r in results])
        if (terminated | truncated).any():
            singles, expected = [], []  # the singles do not autoreset; autoreset is tested below
    vec.close()


def test_vector_env_autoresets_on_the_next_step_with_is_first():
    vec = envs.make_vector("icrl/bandit-5", 2, seed=0, pulls=3)  # trials of 4 observations
    obs, _ = vec.reset()
    seen_last = 0
    for _t in range(25):
        was_last = obs["is_last"].copy()
        obs, reward, terminated, truncated, _ = vec.step(np.array([0, 1]))
        assert (obs["is_first"] == was_last).all(), "the step after is_last returns the next episode's first observation"
        assert (reward[was_last] == 0).all() and not (terminated | truncated)[was_last].any()
        seen_last += int(was_last.sum())
    assert seen_last >= 4
    vec.close()


def test_vector_env_of_one_is_synchronous():
    vec = envs.make_vector("icrl/bandit-5", 1, seed=0)
    assert isinstance(vec, gym.vector.SyncVectorEnv)
    obs, _ = vec.reset()
    assert obs["vector"].shape == (1, 7)
    vec.close()


# ------------------------------------------------------------------ ids, descriptions, errors


def test_ids_cover_the_issue_and_every_one_has_a_description(capsys):
    expected = [f"memory/rooms-{n}" for n in (2, 4, 10)] + [f"memory/distracting-{n}" for n in (100, 200, 400)]
    expected += [f"memory/doors-keys-{k}" for k in (3, 5, 7)] + ["memory/teleport", "icrl/dark-room", "icrl/meta-cartpole"]
    expected += [f"minigrid/memory-s{s}" for s in (7, 9, 11, 13)] + ["minigrid/memory-s13-random", "minigrid/memory-s17-random"]
    expected += [f"memory-maze/{s}x{s}" for s in (9, 11, 13, 15)] + ["icrl/bandit-5"]
    for t in ("cartpole-swingup", "cartpole-balance", "walker-walk", "cheetah-run", "reacher-easy", "finger-spin", "cup-catch"):
        expected += [f"dmc/{t}", f"dmc-pomdp/{t}"]
    assert set(expected) <= set(ALL_IDS)
    envs.cli_envs()
    printed = capsys.readouterr().out
    for env_id in ALL_IDS:
        assert envs.describe(env_id) and env_id in printed and "\n" not in envs.describe(env_id)


def test_unknown_id_error_lists_the_closest_ids():
    with pytest.raises(ValueError, match="memory/rooms-2") as e:
        envs.make("memory/rooms-3")
    assert "memwm envs" in str(e.value)
    with pytest.raises(ValueError, match="memory/distracting-100"):
        envs.make("memory/distracting100")
    with pytest.raises(ValueError, match="dmc/cartpole-swingup"):
        envs.make("dmc/cartpole-swingupp")
    with pytest.raises(ValueError, match="CartPole-v1"):
        envs.make("gym:CartPole-v2")


def test_bad_options_name_the_valid_ones():
    with pytest.raises(ValueError, match="steps_per_room"):
        envs.make("memory/rooms-2", step_per_room=200)
    with pytest.raises(ValueError, match="n_rooms"):
        envs.make("memory/rooms-2", n_rooms=3)  # fixed by the id
    with pytest.raises(ValueError, match="steps_per_room must be >= 130"):
        envs.make("memory/rooms-2", steps_per_room=10)
    with pytest.raises(ValueError, match="make_vector needs n >= 1"):
        envs.make_vector("memory/teleport", 0)


def test_any_dm_control_task_and_bandit_size_can_be_made():
    env = envs.make("dmc-pomdp/pendulum-swingup", seed=0)
    obs, _ = env.reset()
    assert obs["vector"].shape == (2,)  # orientation (2); the angular velocity is hidden
    assert envs.make("icrl/bandit-3").action_space.n == 3


@pytest.mark.parametrize("env_id", ["minigrid/memory-s7", "minigrid/memory-s13-random"])
def test_minigrid_view_from_cached_tiles_equals_minigrids_renderer(env_id):
    env = envs.make(env_id, seed=1)
    obs, _ = env.reset()
    for _ in range(150):
        np.testing.assert_array_equal(obs["image"], env.unwrapped.reference_image())
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()


@pytest.mark.parametrize("env_id", ["minigrid/memory-s7", "minigrid/memory-s13-random"])
def test_minigrid_scripted_policy_looks_at_the_cue_then_succeeds_and_its_wrong_twin_fails(env_id):
    """The scripted policy (breadth-first search) against MiniGrid's own rules: it heads for the start room's object
    until it is in view (MiniGrid's agent_sees), then reaches the success cell (wrong=True: the failure cell)."""
    for seed in range(12):
        for wrong in (False, True):
            env = envs.make(env_id, seed=seed)
            env.reset()
            inner, grid = env.unwrapped, env.unwrapped.env
            steps = 0
            while True:
                looking = not grid.agent_sees(*inner._cue_pos) and inner.cue_step < 0
                x = int(grid.agent_pos[0])
                _, reward, terminated, truncated, info = env.step(inner.scripted_action(wrong))
                if looking:  # until it has looked, it turns or walks back towards the start room, never on
                    assert int(grid.agent_pos[0]) <= x, (seed, steps)
                steps += 1
                if terminated or truncated:
                    break
            assert terminated and info["cue_step"] >= 0 and steps <= 4 * grid.width  # looked, then went straight there
            assert info["success"] is (not wrong) and (reward > 0) is (not wrong)
            assert tuple(grid.agent_pos) == (grid.failure_pos if wrong else grid.success_pos)


def test_dmc_pomdp_hides_exactly_the_velocities():
    from dm_control import suite

    env = envs.make("dmc-pomdp/walker-walk", seed=1)
    obs, _ = env.reset()
    ts = suite.load("walker", "walk", task_kwargs={"random": 1}).reset()
    expected = np.concatenate([np.ravel(ts.observation[k]) for k in ("orientations", "height")]).astype(np.float32)
    np.testing.assert_array_equal(obs["vector"], expected)


# ------------------------------------------------------------------ gym:


def _lockstep(env, raw, seed: int, steps: int, action, reset_seed: int):
    """Step a wrapped env and the raw gymnasium env it wraps with the same actions; yield each pair of
    observations (obs dict, raw obs) and check that rewards and episode ends agree."""
    obs, _ = env.reset()
    raw_obs, _ = raw.reset(seed=seed)
    for _ in range(steps):
        yield obs, raw_obs
        a = action()
        obs, r, te, tr, _ = env.step(a)
        raw_obs, raw_r, raw_te, raw_tr, _ = raw.step(a)
        assert (r, te, tr) == (raw_r, raw_te, raw_tr)
        if te or tr:
            obs, _ = env.reset(seed=reset_seed)
            raw_obs, _ = raw.reset(seed=reset_seed)


@pytest.mark.parametrize("name,size", [("CartPole-v1", 4), ("FrozenLake-v1", 16), ("Blackjack-v1", 32 + 11 + 2)])
def test_gym_wrapper_encodes_observations_like_the_raw_env(name, size):
    env = envs.make(f"gym:{name}", seed=5)
    raw = gym.make(name)
    raw.action_space.seed(5)
    for obs, raw_obs in _lockstep(env, raw, seed=5, steps=30, action=env.action_space.sample, reset_seed=6):
        assert obs["vector"].shape == (size,) and obs["vector"].dtype == np.float32
        if name == "CartPole-v1":
            np.testing.assert_array_equal(obs["vector"], raw_obs)
        elif name == "FrozenLake-v1":
            assert obs["vector"].argmax() == raw_obs and obs["vector"].sum() == 1
        else:  # Tuple(Discrete(32), Discrete(11), Discrete(2)): three one-hots
            parts = np.split(obs["vector"], [32, 43])
            assert [int(p.argmax()) for p in parts] == [int(v) for v in raw_obs] and obs["vector"].sum() == 3


def test_cartpole_positions_hides_the_velocities():
    env = envs.make("pomdp/cartpole-positions", seed=3)
    raw = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    for obs, raw_obs in _lockstep(env, raw, seed=3, steps=40, action=lambda: int(rng.integers(2)), reset_seed=4):
        assert obs["vector"].shape == (2,)
        np.testing.assert_array_equal(obs["vector"], raw_obs[[0, 2]])  # cart position, pole angle
    with pytest.raises(ValueError, match="keep must be indices into CartPole-v1's 4-long"):
        envs.make("gym:CartPole-v1", keep=(0, 4))


def test_gym_wrapper_rescales_bounded_box_actions_to_unit_range():
    env = envs.make("gym:Pendulum-v1", seed=0)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    decode = env.unwrapped._decode
    np.testing.assert_allclose(decode(np.array([-1.0])), [-2.0])
    np.testing.assert_allclose(decode(np.array([0.5])), [1.0])
    obs, _ = env.reset()
    assert obs["vector"].shape == (3,)


def test_gym_wrapper_images_and_multidiscrete():
    class Toy(gym.Env):
        observation_space = gym.spaces.Dict({"cam": gym.spaces.Box(0, 255, (32, 48, 3), np.uint8), "md": gym.spaces.MultiDiscrete([3, 2])})
        action_space = gym.spaces.MultiDiscrete([2, 4])

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.frame = self.np_random.integers(0, 256, (32, 48, 3), dtype=np.uint8)
            return {"cam": self.frame, "md": np.array([2, 1])}, {}

        def step(self, action):
            return {"cam": self.frame, "md": np.asarray(action) % [3, 2]}, 0.0, False, False, {}

    gym.register("MemwmToy-v0", entry_point=lambda: Toy())
    env = envs.make("gym:MemwmToy-v0", seed=0)
    obs, _ = env.reset()
    rows, cols = np.arange(64) * 32 // 64, np.arange(64) * 48 // 64
    np.testing.assert_array_equal(obs["image"], env.unwrapped.env.unwrapped.frame[rows][:, cols])
    np.testing.assert_array_equal(obs["vector"], [0, 0, 1, 0, 1])
    assert env.action_space == gym.spaces.MultiDiscrete([2, 4])


def test_gym_wrapper_names_an_unsupported_space():
    class TextObs(gym.Env):
        observation_space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Text(5)))
        action_space = gym.spaces.Discrete(2)

    gym.register("MemwmTextObs-v0", entry_point=lambda: TextObs())
    with pytest.raises(ValueError, match=r"observation\[1\] = Text"):
        envs.make("gym:MemwmTextObs-v0")


# ------------------------------------------------------------------ icrl trials


def test_bandit_trial_flags_episodes_and_arm_means():
    env = envs.make("icrl/bandit-5", seed=0)
    obs, info = env.reset()
    means = info["arm_means"]
    assert obs["is_first"] and obs["episode_start"] and info["episode"] == 0 and not obs["prev_action"].any()
    pulls = np.zeros(5)
    wins = np.zeros(5)
    for t in range(100):
        a = t % 5
        obs, r, te, tr, info = env.step(a)
        pulls[a] += 1
        wins[a] += r
        assert not obs["is_first"] and obs["prev_action"].argmax() == a and obs["prev_reward"] == r
        np.testing.assert_array_equal(obs["vector"], np.concatenate([obs["prev_action"], [r, float(obs["episode_start"])]]))
        np.testing.assert_array_equal(info["arm_means"], means)
        assert te == (t == 99) and info["episode"] == min(t + 1, 99) and obs["episode_start"] == (t < 99)
    # 100 trials' worth of pulls would be slow to test; the rewards of the arms follow their means on many trials
    env2 = envs.make("icrl/bandit-2", seed=1)
    rewards, expected = [], []
    for _trial in range(40):
        _, info = env2.reset()
        for _ in range(50):
            _, r, *_ = env2.step(0)
            rewards.append(r)
            expected.append(info["arm_means"][0])
    assert abs(np.mean(rewards) - np.mean(expected)) < 0.05


def test_dark_room_goal_is_fixed_per_trial_and_rewarded_every_step_on_it():
    env = envs.make("icrl/dark-room", seed=2)
    obs, info = env.reset()
    goal = info["goal"]
    total, starts = 0.0, [0]
    for t in range(200):
        y, x = obs["vector"][:9].argmax(), obs["vector"][9:18].argmax()
        action = 1 if goal[0] > y else 0 if goal[0] < y else 3 if goal[1] > x else 2 if goal[1] < x else 4
        obs, r, te, tr, info = env.step(action)
        total += r
        assert r == float((y + (action == 1) - (action == 0), x + (action == 3) - (action == 2)) == tuple(goal))
        if obs["episode_start"]:
            starts.append(t + 1)
            assert (obs["vector"][:9].argmax(), obs["vector"][9:18].argmax()) == (4, 4)
        assert info["goal"] == goal and te == (t == 199)
    assert starts == list(range(0, 200, 20)) and info["episode"] == 9
    distance = abs(goal[0] - 4) + abs(goal[1] - 4)
    assert total == 10 * (20 - max(distance - 1, 0))  # on the goal from step `distance` to step 20


def test_meta_cartpole_projects_states_and_permutes_actions_per_trial():
    env = envs.make("icrl/meta-cartpole", seed=0, trial_steps=300)
    obs, info = env.reset()
    inner = env.unwrapped
    projections = [inner.projection.copy()]
    for t in range(300):
        obs, r, te, tr, info = env.step(t % 2)
        if not obs["episode_start"]:
            np.testing.assert_allclose(
                obs["vector"][:4], inner.projection @ np.asarray(inner.cartpole.state, np.float32), rtol=1e-5, atol=1e-6
            )
    assert tr and not te and info["episode"] >= 1  # random-ish play drops the pole within 300 steps
    env.reset()
    projections.append(inner.projection.copy())
    assert not np.allclose(*projections)


# ------------------------------------------------------------------ collect and the data set


def test_collect_round_trips_and_replays_from_its_seed(tmp_path):
    paths = envs.collect_episodes("memory/doors-keys-3", 3, "scripted", tmp_path, seed=10)
    episodes = load_episodes(tmp_path)
    assert [p.name for p in paths] == sorted(p.name for p in tmp_path.iterdir())
    assert len(episodes) == 3 and not list(tmp_path.glob("*.tmp"))
    env = envs.make("memory/doors-keys-3")
    policy = envs.scripted_policy(env)
    for i, ep in enumerate(episodes):
        T = len(ep["reward"])
        assert ep["image"].shape == (T, 64, 64, 3) and ep["action"].shape == (T, 4) and ep["phase"].dtype == np.int8
        assert ep["is_first"][0] and not ep["is_first"][1:].any() and ep["is_last"][-1] and ep["reward"][0] == 0
        assert ep["phase"][0] == 0 and ep["phase"][-1] == 1 and ep["door_visible"].any() and ep["reward"].sum() == 1
        obs, _ = env.reset(seed=10 + i)
        for t in range(T):
            np.testing.assert_array_equal(obs["image"], ep["image"][t])
            if t + 1 < T:
                action = policy(obs)
                assert ep["action"][t].argmax() == action and ep["action"][t].sum() == 1
                obs, *_ = env.step(action)
        assert not ep["action"][-1].any()


def test_collect_random_policy_and_cli(tmp_path):
    from agents.cli import main

    main(["collect", "--env", "icrl/bandit-5", "--episodes", "2", "--policy", "random", "--out", str(tmp_path), "--no-progress"])
    episodes = load_episodes(tmp_path)
    assert len(episodes) == 2 and episodes[0]["vector"].shape == (101, 7) and episodes[0]["arm_means"].shape == (5,)
    np.testing.assert_array_equal(episodes[0]["episode"][:3], [0, 1, 2])
    with pytest.raises(ValueError, match="no scripted policy"):
        envs.collect_episodes("icrl/bandit-5", 1, "scripted", tmp_path)


def test_sequence_sampler_windows_mark_episode_starts():
    eps = [
        {"reward": np.arange(n, dtype=np.float32) + 100 * i, "is_first": np.arange(n) == 0, "cue": np.array(i)}
        for i, n in enumerate((5, 7, 3))
    ]
    sampler = SequenceSampler(eps, length=6, seed=0)
    stream = np.concatenate([e["reward"] for e in eps])
    for _ in range(50):
        w = sampler.sample()
        assert set(w) == {"reward", "is_first"} and w["reward"].shape == (6,)
        start = int(np.flatnonzero(stream == w["reward"][0])[0])
        np.testing.assert_array_equal(w["reward"], stream[start : start + 6])
        np.testing.assert_array_equal(w["is_first"], (w["reward"] % 100 == 0) | (np.arange(6) == 0))
    inside = SequenceSampler(eps, length=6, seed=0, within_episode=True).batch(8)
    assert inside["reward"].shape == (8, 6) and (inside["reward"] // 100 == 1).all()
    with pytest.raises(ValueError, match="no episode has 8 steps"):
        SequenceSampler(eps, length=8, within_episode=True)


def test_dm_control_env_then_world_model_does_not_crash():
    """Building a world model after a dm_control env used to segfault: torch imports triton lazily,
    and libtriton's LLVM crashed once MuJoCo and its GL back end were loaded (envs.dmc now loads
    triton first). Run in a fresh interpreter, where the import order is the user's."""
    import subprocess
    import sys

    code = (
        "import envs, world_models\n"
        "e = envs.make('dmc-pomdp/cartpole-balance'); e.reset(seed=0)\n"
        "wm = world_models.make('s5', e.observation_space, e.action_space, world_models.WorldModelConfig.preset('tiny'))\n"
        "e.step(e.action_space.sample()); print('built', wm.num_params() > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "built True" in out.stdout
