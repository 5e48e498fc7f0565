"""One registry of environments: every id and its `Spec`, `ids()`, `spec(id)`, `describe(id)`.

Registered ids are listed by `ids()`; on top of them every `dmc/<domain>-<task>` and
`dmc-pomdp/<domain>-<task>` that dm_control's suite has, every `icrl/bandit-<k>`,
`memory/recall-k<K>` and `memory/count-<n>`, every `gym:<registered gymnasium id>` and every
`gym:<module>:<id>` (the module is imported first, which registers the id) has a spec, and
`envs.make` (envs/build.py) makes it. `spec(id)` holds the task's facts (goal task? trials?
memory horizon? cue in info? compare probe? see `Spec` in envs/facts.py).
"""

from __future__ import annotations

import difflib
import functools
import importlib

import gymnasium as gym

from envs.facts import Spec

GOAL_EVAL = 32  # over 32 episodes a policy at chance (success 1/2 or less) does not pass for a good one
FEW = 4  # memory horizon of tasks that need only the last few observations (velocities)


ROOMS, DISTRACTING = "envs.memory.rooms:Rooms", "envs.memory.distracting:Distracting"
DOORS_KEYS, TELEPORT = "envs.memory.doors_keys:DoorsKeys", "envs.memory.teleport:Teleport"
MINIGRID, DMC, MEMORY_MAZE = "envs.minigrid_memory:MiniGridMemory", "envs.dmc:DMC", "envs.memory_maze:MemoryMaze"
BANDIT, DARK_ROOM, META_CARTPOLE = "envs.icrl:Bandit", "envs.icrl:DarkRoom", "envs.icrl:MetaCartPole"
RECALL, COUNT, GYM = "envs.memory.recall:Recall", "envs.memory.count:Count", "envs.gym_wrapper:GymnasiumEnv"

DMC_TASKS = ("cartpole-swingup", "cartpole-balance", "walker-walk", "cheetah-run", "reacher-easy", "finger-spin", "cup-catch")
MEMORY_MAZE_STEPS = {9: 1000, 11: 2000, 13: 3000, 15: 4000}


def _whole_episode(steps: int) -> dict[str, int]:
    """Facts of a task that may ask about anything seen in its episode of at most `steps` steps."""
    return {"episode_length": steps, "memory_horizon": steps + 1}


def _registered() -> dict[str, Spec]:
    goal = {"goal": True, "eval_episodes": GOAL_EVAL}
    specs = [
        *(
            Spec(
                f"memory/rooms-{n}",
                f"explore {n} rooms, then walk back through them: regenerate views seen up to {150 * n} steps earlier "
                f"({150 * n}-step episodes)",
                ROOMS,
                {"n_rooms": n},
                **goal,
                **_whole_episode(150 * n),
                probe="imagination",
            )
            for n in (2, 4, 10)
        ),
        *(_distracting_spec(n) for n in (8, 16, 32, 100, 200, 400)),
        *(
            Spec(
                f"memory/doors-keys-{k}",
                f"collect some of {k} coloured keys; later each door looks open only if its key is held (+1 through an open door)",
                DOORS_KEYS,
                {"n_keys": k},
                **goal,
                **_whole_episode(10 * k + 30),
                probe="doors",
            )
            for k in (3, 5, 7)
        ),
        *(_recall_spec(k) for k in (4, 8, 16)),
        *(_count_spec(n) for n in (16, 32)),
        Spec(
            "memory/teleport",
            "explore a room of coloured regions, get teleported to a visited cell, then find the gold goal (+1)",
            TELEPORT,
            **goal,
            **_whole_episode(160),
            probe="imagination",
            unseen_query_steps=1,
        ),
        Spec(
            "pomdp/cartpole-positions",
            "CartPole-v1 observing only the cart position and pole angle: the velocities must be "
            "inferred from memory (POPGym's stateless CartPole); return up to 500",
            GYM,
            {"env_id": "CartPole-v1", "keep": (0, 2)},
            memory_horizon=FEW,
            episode_length=500,
        ),
        *(
            Spec(
                f"minigrid/memory-s{s}",
                f"MiniGrid Memory S{s}: see an object, walk the corridor, touch its match; first-person 64x64",
                MINIGRID,
                {"size": s},
                **goal,
                **_whole_episode(5 * s * s),
                cue=True,
            )
            for s in (7, 9, 11, 13)
        ),
        *(
            Spec(
                f"minigrid/memory-s{s}-random",
                f"MiniGrid Memory S{s} with a random corridor length; first-person 64x64",
                MINIGRID,
                {"size": s, "random_length": True},
                **goal,
                **_whole_episode(5 * s * s),
                cue=True,
            )
            for s in (13, 17)
        ),
        *(_dmc_spec(f"dmc/{t}", True) for t in DMC_TASKS),
        *(_dmc_spec(f"dmc-pomdp/{t}", False) for t in DMC_TASKS),
        *(
            Spec(
                f"memory-maze/{s}x{s}",
                f"Memory Maze {s}x{s}: find the targets whose colour the border shows, 64x64 first-person",
                MEMORY_MAZE,
                {"size": s},
                eval_episodes=4,
                **_whole_episode(MEMORY_MAZE_STEPS[s]),
            )
            for s in (9, 11, 13, 15)
        ),
        *(_bandit_spec(k) for k in (5, 10)),
        Spec(
            "icrl/dark-room",
            "trials of 10 episodes of 20 steps in a 9x9 room with an invisible goal fixed per trial; sees only its position",
            DARK_ROOM,
            trials=True,
            **_whole_episode(200),
        ),
        Spec(
            "icrl/meta-cartpole",
            "trials of 1,000 steps of CartPole behind a random projection and action permutation drawn per trial",
            META_CARTPOLE,
            trials=True,
            **_whole_episode(1000),
        ),
    ]
    return {s.id: s for s in specs}


def _distracting_spec(n: int) -> Spec:
    # the cue is seen at observation 0 and decides the reward that comes with observation n + 1
    return Spec(
        f"memory/distracting-{n}",
        f"a colour cue, a {n}-step corridor of random distractors, then +1/-1 for the arm that matches the cue",
        DISTRACTING,
        {"length": n},
        goal=True,
        eval_episodes=GOAL_EVAL,
        **_whole_episode(n + 1),
        cue=True,
        probe="reward",
    )


def _recall_spec(k: int) -> Spec:
    from envs.memory.recall import QUERIES, SYMBOLS

    # a window holds the symbol, the K - 1 after it, the observation where it is named and the reward
    return Spec(
        f"memory/recall-k{k}",
        f"name the symbol (of {SYMBOLS}) shown exactly {k} steps earlier, {QUERIES} times; "
        f"+-1/{QUERIES} a step, best return 1, chance {(2 - SYMBOLS) / SYMBOLS:+.2f}",
        RECALL,
        {"k": k},
        memory_horizon=k + 2,
        episode_length=k + QUERIES,
        eval_episodes=GOAL_EVAL,
        cue=True,
    )


def _count_spec(n: int) -> Spec:
    from envs.memory.count import CLASSES, KINDS

    return Spec(
        f"memory/count-{n}",
        f"cards of {KINDS} kinds for {n} steps; each step name how many of kind 0 were seen so far "
        f"(clipped at {CLASSES - 1}); +-1/{n} a step, best return 1, chance {(2 - CLASSES) / CLASSES:+.2f}",
        COUNT,
        {"length": n},
        eval_episodes=GOAL_EVAL,
        **_whole_episode(n),
    )


def _dmc_spec(env_id: str, pixels: bool) -> Spec:
    """dmc/<domain>-<task> or dmc-pomdp/<domain>-<task>: 1,000 control steps at action repeat 2."""
    domain, task = env_id.split("/", 1)[1].split("-", 1)
    kind = "64x64 pixels" if pixels else "positions only (no velocities)"
    return Spec(
        env_id,
        f"dm_control {domain}-{task} from {kind}, action repeat 2",
        DMC,
        {"domain": domain, "task": task, "pixels": pixels},
        memory_horizon=FEW,
        episode_length=500,
        eval_episodes=4,
    )


def _bandit_spec(k: int) -> Spec:
    return Spec(
        f"icrl/bandit-{k}",
        f"trials of 100 pulls of a {k}-armed Bernoulli bandit with arm means drawn per trial",
        BANDIT,
        {"arms": k},
        trials=True,
        **_whole_episode(100),
    )


@functools.lru_cache(maxsize=1)
def _specs() -> dict[str, Spec]:
    return _registered()


def ids() -> list[str]:
    """Every registered id (dmc/*, dmc-pomdp/*, icrl/bandit-<k> and gym:<id> accept more)."""
    return list(_specs())


def _unknown(env_id: str, candidates: list[str], why: str = "unknown env") -> ValueError:
    close = difflib.get_close_matches(env_id, candidates, n=5, cutoff=0.4)
    hint = f"closest: {', '.join(close)}" if close else f"known: {', '.join(candidates[:12])}, ..."
    return ValueError(f"{why} {env_id!r}; {hint} (`memwm envs` lists every id)")


def spec(env_id: str) -> Spec:
    """The Spec of a registered or pattern id; ValueError naming the closest valid ids otherwise."""
    if not isinstance(env_id, str):
        raise ValueError(f"an env id is a string like 'memory/rooms-2', got {env_id!r}")
    specs = _specs()
    if env_id in specs:
        return specs[env_id]
    if env_id.startswith("gym:"):
        return _gym_spec(env_id)
    for prefix, pixels in (("dmc/", True), ("dmc-pomdp/", False)):
        if env_id.startswith(prefix) and "-" in env_id[len(prefix) :]:
            from envs.dmc import ALIASES, all_tasks

            domain, task = env_id[len(prefix) :].split("-", 1)
            if (ALIASES.get(domain, domain), task) in all_tasks():
                return _dmc_spec(env_id, pixels)
            raise _unknown(env_id, [f"{prefix}{d}-{t}" for d, t in all_tasks()])
    for prefix, least, make_spec in (
        ("icrl/bandit-", 2, _bandit_spec),
        ("memory/recall-k", 1, _recall_spec),
        ("memory/count-", 2, _count_spec),
    ):
        size = env_id[len(prefix) :]
        if env_id.startswith(prefix) and size.isdigit() and int(size) >= least:
            return make_spec(int(size))
    raise _unknown(env_id, list(specs))


def _gym_spec(env_id: str) -> Spec:
    """`gym:<id>` or `gym:<module>:<id>` (gymnasium's convention: importing the module registers the id).

    The module is imported here, so every process that makes the env (vector-env workers too)
    imports it before looking the id up."""
    name = env_id[len("gym:") :]
    module = None
    if name not in gym.registry and ":" in name:
        module, _, name = name.partition(":")
        if not module or not name:
            raise ValueError(f"{env_id!r}: expected gym:<registered id> or gym:<module>:<id>, e.g. gym:my_pkg:MyEnv-v0")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"{env_id!r}: cannot import module {module!r} ({e}); is it installed or on PYTHONPATH?") from None
    if name not in gym.registry:
        why = f"module {module!r} registers no gymnasium environment" if module else "no registered gymnasium environment"
        raise _unknown(name, sorted(gym.registry), why)
    steps = gym.registry[name].max_episode_steps
    return Spec(
        env_id,
        f"gymnasium {name}" + (f" (imported from {module})" if module else ""),
        GYM,
        {"env_id": name},
        episode_length=steps,
        eval_episodes=4,
    )


def describe(env_id: str) -> str:
    """A one-line description of `env_id` with its facts."""
    s = spec(env_id)
    return f"{s.description} [{s.facts()}]"
