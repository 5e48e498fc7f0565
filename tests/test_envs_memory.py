"""The memory suite: each task's scripted policy reaches its query phase and earns its reward, and the cue
(what must be remembered) really decides what is seen or earned later, with everything else fixed by the seed."""

import numpy as np
import pytest

import envs
from envs.memory import tiles

MEMORY_IDS = [i for i in envs.ids() if i.startswith("memory/")]
HUD = tiles.TILE  # the top 8 pixel rows are the HUD


def play(env_id, seed=0, cue=None, actions=None):
    """One episode (or as many steps as `actions`, replayed instead of the scripted policy), as a dict of lists
    (`image` holds the vector of the tasks that observe one)."""
    env = envs.make(env_id)
    policy = envs.scripted_policy(env)
    obs, info = env.reset(seed=seed, options=None if cue is None else {"cue": cue})
    out = {"image": [obs.get("image", obs.get("vector"))], "reward": [0.0], "info": [info], "action": [], "pos": [_pos(env)]}
    t = 0
    while not obs["is_last"] and (actions is None or t < len(actions)):
        action = policy(obs) if actions is None else actions[t]
        obs, reward, *_, info = env.step(action)
        out["action"].append(action)
        out["image"].append(obs.get("image", obs.get("vector")))
        out["reward"].append(reward)
        out["info"].append(info)
        out["pos"].append(_pos(env))
        t += 1
    out["cue"] = getattr(env.unwrapped, "cue", None)
    return out


def _pos(env):
    inner = env.unwrapped
    if hasattr(inner, "pos"):
        return tuple(inner.pos)
    return (inner.y, inner.x) if hasattr(inner, "y") else inner.t


def phases(ep):
    return np.array([i["phase"] == "query" for i in ep["info"]])


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_scripted_policy_reaches_the_query_phase_and_earns_the_reward(env_id):
    ep = play(env_id, seed=1)
    q = phases(ep)
    counting = env_id.startswith("memory/count-")  # asks after every card, the first one too: no context phase
    assert q[0] == counting and q[-1] and (np.diff(q.astype(int)) >= 0).all(), "context first, then query, never back"
    assert sum(ep["reward"]) == pytest.approx(1.0)
    rewarded = int(np.flatnonzero(ep["reward"])[0])
    assert q[rewarded], "the reward is earned in the query phase"


@pytest.mark.parametrize(
    "env_id,length", [("memory/rooms-2", 300), ("memory/rooms-10", 1500), ("memory/distracting-200", 202), ("memory/teleport", None)]
)
def test_episode_lengths(env_id, length):
    ep = play(env_id, seed=0)
    if length:
        assert len(ep["image"]) == length + (env_id.startswith("memory/rooms"))
    else:
        assert 100 < len(ep["image"]) <= 161


def test_distracting_cue_decides_the_reward_and_nothing_else():
    red = play("memory/distracting-100", seed=5, cue=0)
    blue = play("memory/distracting-100", seed=5, cue=1, actions=red["action"])  # the same choice at the junction
    assert red["reward"][-1] == 1.0 and blue["reward"][-1] == -1.0
    visible = np.array([i["cue_visible"] for i in red["info"]])
    assert visible[:5].all() and not visible[5:].any()
    for t in range(len(red["image"])):  # the frames differ exactly while the cue is in view
        assert np.array_equal(red["image"][t], blue["image"][t]) != visible[t]
    assert [i["reward_decided"] for i in red["info"]] == [False] * 101 + [True]
    # the distractors are fresh every step: consecutive corridor frames differ beyond the shift
    assert not np.array_equal(red["image"][20][:, 8:], red["image"][21][:, :-8])


def test_distracting_junction_shows_red_above_and_blue_below():
    ep = play("memory/distracting-100", seed=0, cue=0)
    junction = ep["image"][100]  # the agent's cell is at rows 32..40, columns 24..32
    assert (junction[24:32, 24:32] == tiles.PALETTE[0]).all() and (junction[40:48, 24:32] == tiles.PALETTE[3]).all()


def test_rooms_query_walks_back_and_regenerates_the_context_frames():
    ep = play("memory/rooms-4", seed=2)
    C = 300
    q = phases(ep)
    assert not q[:C].any() and q[C:].all() and ep["info"][C]["query_start"]
    for k in range(C + 1):  # query frame C + k shows the place of context frame C - k
        np.testing.assert_array_equal(ep["image"][C + k][HUD:], ep["image"][C - k][HUD:])
    rooms_seen = {i["room"] for i in ep["info"][:C]}
    assert rooms_seen == set(range(4))


def test_rooms_cue_changes_the_query_frames_but_not_the_path():
    a = play("memory/rooms-2", seed=3, cue=11)
    b = play("memory/rooms-2", seed=3, cue=12)
    assert a["pos"] == b["pos"] and a["action"] == b["action"]
    differ = [not np.array_equal(x, y) for x, y in zip(a["image"][150:], b["image"][150:])]
    assert np.mean(differ) > 0.9


def key_walk(keys, n_keys):
    """Moves along the key room's top row, dipping onto the given keys, then down to the corridor's row."""
    moves = [3]
    for i in range(n_keys):
        moves += ([3, 3] if i else []) + ([1, 0] if i in keys else [])
    return moves + [3, 1]


def test_doors_keys_doors_show_the_keys_collected_long_before():
    env_id, K = "memory/doors-keys-5", 5
    for cue in ([0, 3], [1, 2, 4]):
        ep = play(env_id, seed=4, cue=cue)
        assert ep["cue"] == tuple(cue)
        visible, q = np.array([i["door_visible"] for i in ep["info"]]), phases(ep)
        assert visible.any() and not (visible & ~q).any(), "doors are seen only in the query phase"
        assert ep["info"][int(np.flatnonzero(~q)[-1])]["keys_held"] == len(cue)
    # the same walk down the hall after collecting complementary keys: frames differ exactly where doors show
    a = play(env_id, seed=4, actions=key_walk([0, 3], K) + [3] * 30)
    b = play(env_id, seed=4, actions=key_walk([1, 2, 4], K) + [3] * 30)
    compared = 0
    for j in range(1, 31):
        ta, tb = len(a["image"]) - j, len(b["image"]) - j
        assert a["pos"][ta] == b["pos"][tb]
        if a["pos"][ta][1] - tiles.AGENT_COL > 2 * K:  # the key room (where the keys were taken) is out of view
            visible = a["info"][ta]["door_visible"]
            assert np.array_equal(a["image"][ta], b["image"][tb]) != visible
            compared += visible
    assert compared >= 10


def test_teleport_lands_on_a_visited_place_whose_view_was_seen_before():
    ep = play("memory/teleport", seed=6)
    C = 100
    assert ep["info"][C]["query_start"] and not ep["info"][C - 1]["query_start"]
    target = ep["pos"][C]
    before = [t for t in range(C) if ep["pos"][t] == target]
    assert before, "the teleport target was visited in the context phase"
    assert max(abs(target[0] - ep["pos"][C - 1][0]), abs(target[1] - ep["pos"][C - 1][1])) >= 4
    np.testing.assert_array_equal(ep["image"][C][HUD:], ep["image"][before[-1]][HUD:])
    other = play("memory/teleport", seed=6, cue=ep["cue"] + 1, actions=ep["action"])
    assert other["pos"] == ep["pos"]
    assert not np.array_equal(other["image"][C], ep["image"][C])


def test_memory_suite_bad_cues_raise():
    env = envs.make("memory/distracting-100")
    with pytest.raises(ValueError, match="cue must be 0"):
        env.reset(options={"cue": 2})
    with pytest.raises(ValueError, match="key indices in 0..2"):
        envs.make("memory/doors-keys-3").reset(options={"cue": [5]})


# ------------------------------------------------------------------ recall and count (vector observations)


def random_episode(env_id, seed, **options):
    """Symbols seen (argmax of each observation's one-hot vector), the random actions taken, the rewards, the infos."""
    env = envs.make(env_id, seed=seed, **options)
    rng = np.random.default_rng([seed, 1])  # not default_rng(seed): that is the env's own stream, and would follow it
    obs, info = env.reset()
    symbols, actions, rewards, infos = [int(obs["vector"].argmax())], [], [], [info]
    while not obs["is_last"]:
        assert obs["vector"].sum() == 1.0
        actions.append(int(rng.integers(env.action_space.n)))
        obs, reward, *_, info = env.step(actions[-1])
        symbols.append(int(obs["vector"].argmax()))
        rewards.append(reward)
        infos.append(info)
    return symbols, actions, rewards, infos


@pytest.mark.parametrize("env_id,k", [("memory/recall-k4", 4), ("memory/recall-k8", 8), ("memory/recall-k3", 3)])
def test_recall_rewards_naming_the_symbol_seen_exactly_k_steps_earlier(env_id, k):
    for seed in range(5):
        symbols, actions, rewards, infos = random_episode(env_id, seed)
        assert len(actions) == k + 32 == envs.spec(env_id).episode_length
        for t, (action, reward) in enumerate(zip(actions, rewards)):
            expected = 0.0 if t < k else (1 / 32 if action == symbols[t - k] else -1 / 32)
            assert reward == expected, (seed, t)
        assert all(i["cue"] == symbols[0] and i["cue_step"] == 0 for i in infos)
    assert envs.spec(env_id).memory_horizon == k + 2  # the symbol at t - k, ..., its naming at t, the reward with t + 1


@pytest.mark.parametrize("env_id,n", [("memory/count-16", 16), ("memory/count-32", 32), ("memory/count-5", 5)])
def test_count_rewards_naming_how_many_of_kind_0_were_seen(env_id, n):
    for seed in range(5):
        symbols, actions, rewards, _ = random_episode(env_id, seed)
        assert len(actions) == n == envs.spec(env_id).episode_length
        seen = 0
        for t, (action, reward) in enumerate(zip(actions, rewards)):
            seen += symbols[t] == 0
            assert reward == (1 / n if action == min(seen, 7) else -1 / n), (seed, t)


@pytest.mark.parametrize("env_id,chance", [("memory/recall-k4", -0.5), ("memory/count-16", -0.75)])
def test_random_policy_scores_the_documented_chance_and_the_scripted_one_the_best(env_id, chance):
    returns = [sum(random_episode(env_id, seed)[2]) for seed in range(300)]
    assert abs(np.mean(returns) - chance) < 4 * np.std(returns) / np.sqrt(len(returns))
    assert f"chance {chance:+.2f}" in envs.describe(env_id)
    for seed in range(5):
        assert sum(play(env_id, seed=seed)["reward"]) == 1.0  # rewards of 1/2^m add up exactly


@pytest.mark.parametrize("env_id", ["memory/recall-k8", "memory/count-16"])
@pytest.mark.parametrize("scale", [1 / 32, 32.0, 3.0])
def test_reward_scale_multiplies_every_reward_and_changes_nothing_else(env_id, scale):
    for seed in range(3):
        symbols, actions, rewards, _ = random_episode(env_id, seed)
        s_symbols, s_actions, s_rewards, _ = random_episode(env_id, seed, reward_scale=scale)
        assert (s_symbols, s_actions) == (symbols, actions)
        np.testing.assert_allclose(s_rewards, np.array(rewards) * scale, rtol=1e-12)
    with pytest.raises(ValueError, match="reward_scale > 0"):
        envs.make(env_id, reward_scale=0.0)


def test_recall_cue_option_sets_the_first_symbol_and_nothing_else():
    a, b = play("memory/recall-k4", seed=2, cue=0), play("memory/recall-k4", seed=2, cue=3)
    assert a["image"][0].argmax() == 0 and b["image"][0].argmax() == 3
    np.testing.assert_array_equal(np.array(a["image"][1:]), np.array(b["image"][1:]))
    assert a["action"][4] == 0 and b["action"][4] == 3  # the scripted policy names it at step k
    with pytest.raises(ValueError, match="cue must be a symbol in 0..3"):
        envs.make("memory/recall-k4").reset(options={"cue": 4})


def test_same_seed_same_stream_and_other_seeds_differ():
    for env_id in ("memory/recall-k16", "memory/count-32"):
        first = random_episode(env_id, 7)
        assert random_episode(env_id, 7) == first
        assert random_episode(env_id, 8)[0] != first[0]
