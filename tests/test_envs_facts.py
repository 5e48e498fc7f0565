"""The facts each Spec carries (goal, trials, memory horizon, episode length, evaluation episodes, action
repeat, cue), checked against what the environments do; `memwm envs` shows them."""

import numpy as np
import pytest

import envs

ALL_IDS = envs.ids()


def random_episode(env_id, seed=0, steps=None):
    """Infos and rewards of one episode under random actions (the first `steps` steps if given)."""
    env = envs.make(env_id, seed=seed)
    obs, info = env.reset()
    infos, rewards = [info], []
    while not obs["is_last"] and (steps is None or len(rewards) < steps):
        obs, reward, *_, info = env.step(env.action_space.sample())
        infos.append(info)
        rewards.append(reward)
    return infos, rewards


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_facts_are_consistent(env_id):
    s = envs.spec(env_id)
    assert s.trials == env_id.startswith("icrl/")
    compared = ("memory/rooms-", "memory/teleport", "memory/distracting-", "memory/doors-keys-")
    assert (s.probe is not None) == env_id.startswith(compared) and s.unseen_query_steps == (env_id == "memory/teleport")
    if s.goal:
        assert s.eval_episodes >= 32
    assert s.eval_episodes >= 1 and s.episode_length >= 1
    assert 1 <= s.memory_horizon <= s.episode_length + 1
    assert s.facts() in envs.describe(env_id) and "\n" not in envs.describe(env_id)


# Tasks whose every episode has exactly `episode_length` steps, and tasks cut at it under a random policy.
FIXED = [
    "memory/distracting-8",
    "memory/distracting-32",
    "memory/recall-k8",
    "memory/count-16",
    "memory/rooms-2",
    "icrl/bandit-5",
    "icrl/dark-room",
]
CUT = ["memory/doors-keys-3", "memory/teleport", "minigrid/memory-s7", "pomdp/cartpole-positions"]


@pytest.mark.parametrize("env_id", FIXED + CUT)
def test_episode_length_is_the_most_steps_an_episode_takes(env_id):
    lengths = [len(random_episode(env_id, seed)[1]) for seed in range(3)]
    length = envs.spec(env_id).episode_length
    if env_id in FIXED:
        assert lengths == [length] * 3
    else:
        assert max(lengths) <= length


def test_distracting_memory_horizon_spans_the_cue_and_the_reward_it_decides():
    for n in (8, 100):
        infos, rewards = random_episode(f"memory/distracting-{n}", seed=n)
        assert infos[0]["cue_visible"]
        reward_obs = int(np.flatnonzero(rewards)[0]) + 1  # rewards[t] comes with observation t + 1
        assert reward_obs + 1 == envs.spec(f"memory/distracting-{n}").memory_horizon


@pytest.mark.parametrize("env_id", [i for i in ALL_IDS if envs.spec(i).cue and not i.startswith("minigrid/")])
def test_cue_envs_report_the_cue_in_every_info(env_id):
    env = envs.make(env_id, seed=0)
    for cue in (0, 1):
        obs, info = env.reset(options={"cue": cue})
        infos = [info]
        while not obs["is_last"]:
            obs, _, _, _, info = env.step(env.action_space.sample())
            infos.append(info)
        assert all(type(i["cue"]) is int and i["cue"] == cue and i["cue_step"] == 0 for i in infos)


@pytest.mark.parametrize("env_id", ["minigrid/memory-s7", "minigrid/memory-s13-random"])
def test_minigrid_cue_is_the_start_rooms_object_and_its_step_when_first_seen(env_id):
    """References from MiniGrid itself: the object beside the success cell is the start room's kind, and
    `agent_sees` says when the start room's object is in view (first: `cue_step`; at each step: `cue_visible`)."""
    cues, visible = set(), 0
    for seed in range(8):
        env = envs.make(env_id, seed=seed)
        obs, info = env.reset()
        grid = env.unwrapped.env
        x, y = grid.success_pos
        match = grid.grid.get(x, y - 1 if y < grid.height // 2 else y + 1)  # the object next to the success cell
        seen, t = -1, 0
        while True:
            sees = grid.agent_sees(1, grid.height // 2 - 1)
            if seen < 0 and sees:
                seen = t
            assert info["cue"] == ("key", "ball").index(match.type) and info["cue_step"] == seen, (seed, t)
            assert info["cue_visible"] is sees, (seed, t)
            visible += sees
            if obs["is_last"] or t == 60:
                break
            obs, _, _, _, info = env.step(env.action_space.sample())
            t += 1
        cues.add(info["cue"])
    assert cues == {0, 1}
    assert visible > 8  # it is in view at some steps after the first


def test_success_follows_the_goal_tasks_rule_and_return_tasks_have_none():
    s = envs.spec("memory/distracting-8")
    assert s.success({}, 1.0) == 1.0 and s.success({}, -1.0) == 0.0
    m = envs.spec("minigrid/memory-s7")
    assert m.success({"success": True}, 0.0) == 1.0 and m.success({"success": False}, 0.9) == 0.0
    for env_id in ("memory/recall-k8", "dmc/cartpole-swingup", "icrl/bandit-10", "gym:CartPole-v1"):
        with pytest.raises(ValueError, match="has no goal"):
            envs.spec(env_id).success({}, 1.0)


def test_pattern_ids_have_facts_too():
    assert envs.spec("memory/recall-k5").memory_horizon == 7 and envs.spec("memory/recall-k5").episode_length == 37
    assert envs.spec("memory/count-7").episode_length == 7 and envs.spec("memory/count-7").memory_horizon == 8
    assert envs.spec("icrl/bandit-3").trials and not envs.spec("dmc/pendulum-swingup").trials
    gym_spec = envs.spec("gym:CartPole-v1")
    assert gym_spec.episode_length == 500 and gym_spec.memory_horizon is None and not gym_spec.goal


def test_cli_envs_shows_the_facts_and_names_close_ids_for_a_bad_one(capsys):
    envs.cli_envs(env="memory/recall-k8")
    out = capsys.readouterr().out
    assert "memory_horizon: 10" in out and "goal: False" in out and "cue: True" in out
    envs.cli_envs()
    out = capsys.readouterr().out
    assert "memory/count-16" in out and "eval 32" in out
    with pytest.raises(ValueError, match="closest: memory/recall-k4"):
        envs.cli_envs(env="memory/recall-4")
