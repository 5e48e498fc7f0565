"""One registry of environments: `make(id)`, `make_vector(id, n)`, `ids()`, `describe(id)`.

Registered ids are listed by `ids()`; on top of them every `dmc/<domain>-<task>` and
`dmc-pomdp/<domain>-<task>` that dm_control's suite has, every `icrl/bandit-<k>`, and every
`gym:<registered gymnasium id>` can be made.

Vector environments use gymnasium's NEXT_STEP autoreset: after a step that returns `is_last`
(terminated or truncated), the next `step()` ignores its action and returns the first
observation of the next episode, with `is_first=True`, reward 0 and no termination, exactly
as a `reset()` would. Agents therefore read `is_first` to reset their memory and must not
count the reward of that step.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym

from envs.core import Standard


@dataclass(frozen=True)
class Spec:
    """A registered environment: `target` ("module:Class") is built with `kwargs` plus the user's options."""

    id: str
    description: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def cls(self) -> type[gym.Env]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


ROOMS, DISTRACTING = "envs.memory.rooms:Rooms", "envs.memory.distracting:Distracting"
DOORS_KEYS, TELEPORT = "envs.memory.doors_keys:DoorsKeys", "envs.memory.teleport:Teleport"
MINIGRID, DMC, MEMORY_MAZE = "envs.minigrid_memory:MiniGridMemory", "envs.dmc:DMC", "envs.memory_maze:MemoryMaze"
BANDIT, DARK_ROOM, META_CARTPOLE = "envs.icrl:Bandit", "envs.icrl:DarkRoom", "envs.icrl:MetaCartPole"
GYM = "envs.gym_wrapper:GymnasiumEnv"

DMC_TASKS = ("cartpole-swingup", "cartpole-balance", "walker-walk", "cheetah-run", "reacher-easy", "finger-spin", "cup-catch")


def _registered() -> dict[str, Spec]:
    specs = [
        *(Spec(f"memory/rooms-{n}", f"explore {n} rooms, then walk back through them: regenerate views seen up to {150 * n} steps earlier ({150 * n}-step episodes)",
               ROOMS, {"n_rooms": n}) for n in (2, 4, 10)),
        *(Spec(f"memory/distracting-{n}", f"a colour cue, a {n}-step corridor of random distractors, then +1/-1 for the arm that matches the cue",
               DISTRACTING, {"length": n}) for n in (8, 16, 32, 100, 200, 400)),
        *(Spec(f"memory/doors-keys-{k}", f"collect some of {k} coloured keys; later each door looks open only if its key is held (+1 through an open door)",
               DOORS_KEYS, {"n_keys": k}) for k in (3, 5, 7)),
        Spec("pomdp/cartpole-positions", "CartPole-v1 observing only the cart position and pole angle: the velocities must be "
             "inferred from memory (POPGym's stateless CartPole); return up to 500", GYM, {"env_id": "CartPole-v1", "keep": (0, 2)}),
        Spec("memory/teleport", "explore a room of coloured regions, get teleported to a visited cell, then find the gold goal (+1)", TELEPORT),
        *(Spec(f"minigrid/memory-s{s}", f"MiniGrid Memory S{s}: see an object, walk the corridor, touch its match; first-person 64x64",
               MINIGRID, {"size": s}) for s in (7, 9, 11, 13)),
        *(Spec(f"minigrid/memory-s{s}-random", f"MiniGrid Memory S{s} with a random corridor length; first-person 64x64",
               MINIGRID, {"size": s, "random_length": True}) for s in (13, 17)),
        *(Spec(f"dmc/{t}", f"dm_control {t} from 64x64 pixels, action repeat 2", DMC, _dmc_kwargs(t, True)) for t in DMC_TASKS),
        *(Spec(f"dmc-pomdp/{t}", f"dm_control {t} from positions only (no velocities), action repeat 2", DMC, _dmc_kwargs(t, False))
          for t in DMC_TASKS),
        *(Spec(f"memory-maze/{s}x{s}", f"Memory Maze {s}x{s}: find the targets whose colour the border shows, 64x64 first-person",
               MEMORY_MAZE, {"size": s}) for s in (9, 11, 13, 15)),
        *(_bandit_spec(k) for k in (5, 10)),
        Spec("icrl/dark-room", "trials of 10 episodes of 20 steps in a 9x9 room with an invisible goal fixed per trial; sees only its position",
             DARK_ROOM),
        Spec("icrl/meta-cartpole", "trials of 1,000 steps of CartPole behind a random projection and action permutation drawn per trial",
             META_CARTPOLE),
    ]
    return {s.id: s for s in specs}


def _dmc_kwargs(name: str, pixels: bool) -> dict[str, Any]:
    domain, task = name.split("-", 1)
    return {"domain": domain, "task": task, "pixels": pixels}


def _bandit_spec(k: int) -> Spec:
    return Spec(f"icrl/bandit-{k}", f"trials of 100 pulls of a {k}-armed Bernoulli bandit with arm means drawn per trial", BANDIT, {"arms": k})


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
        name = env_id[len("gym:"):]
        if name not in gym.registry:
            raise _unknown(name, sorted(gym.registry), "no registered gymnasium environment")
        return Spec(env_id, f"gymnasium {name}", GYM, {"env_id": name})
    for prefix, pixels in (("dmc/", True), ("dmc-pomdp/", False)):
        if env_id.startswith(prefix) and "-" in env_id[len(prefix):]:
            from envs.dmc import ALIASES, all_tasks

            domain, task = env_id[len(prefix):].split("-", 1)
            if (ALIASES.get(domain, domain), task) in all_tasks():
                kind = "pixels" if pixels else "positions only"
                return Spec(env_id, f"dm_control {domain}-{task} ({kind}), action repeat 2", DMC, {"domain": domain, "task": task, "pixels": pixels})
            raise _unknown(env_id, [f"{prefix}{d}-{t}" for d, t in all_tasks()])
    if env_id.startswith("icrl/bandit-") and env_id[len("icrl/bandit-"):].isdigit():
        k = int(env_id[len("icrl/bandit-"):])
        if k >= 2:
            return _bandit_spec(k)
    raise _unknown(env_id, list(specs))


def describe(env_id: str) -> str:
    """A one-line description of `env_id`."""
    return spec(env_id).description


def _check_options(s: Spec, options: dict[str, Any]) -> None:
    """ValueError for options the environment does not take (checked before anything is built)."""
    if s.target == GYM:
        return  # gymnasium.make checks its own kwargs
    params = inspect.signature(s.cls()).parameters
    valid = [p for p in params if p not in s.kwargs]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(f"{s.id} takes no option {', '.join(map(repr, unknown))}; its options: {', '.join(valid) or 'none'}")


def make(env_id: str, seed: int | None = None, **options) -> gym.Env:
    """The environment `env_id` in memwm's observation format; `seed` fixes its episodes.

    The first `reset()` without a seed uses `seed`; later unseeded resets continue the stream,
    so the same seed gives the same sequence of episodes. Options are the environment's
    constructor arguments (e.g. `envs.make("memory/rooms-4", steps_per_room=200)`).
    """
    s = spec(env_id)
    _check_options(s, options)
    env = s.cls()(**{**s.kwargs, **options})
    wrapped = Standard(env, seed=seed)
    wrapped.env_id = env_id
    return wrapped


NUMPY_ONLY = ("memory/", "icrl/", "minigrid/", "pomdp/")  # families that hold no MuJoCo/EGL state: safe to fork


def make_vector(env_id: str, n: int, seed: int | None = None, asynchronous: bool | None = None,
                context: str | None = None, **options) -> gym.vector.VectorEnv:
    """`n` copies of `env_id` (env i seeded `seed + i`) with NEXT_STEP autoreset (see the module doc).

    asynchronous: one process per env (gymnasium's AsyncVectorEnv); default: yes for n > 1.
    context: how the worker processes start. Default: "fork" for the numpy-only families
    (memory/, icrl/, minigrid/), "forkserver" for the others, because a process forked after its
    parent rendered with MuJoCo's EGL backend hangs at its first render.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"make_vector needs n >= 1 environments, got {n!r}")
    s = spec(env_id)
    _check_options(s, options)
    fns = [functools.partial(make, env_id, None if seed is None else seed + i, **options) for i in range(n)]
    mode = gym.vector.AutoresetMode.NEXT_STEP
    if asynchronous if asynchronous is not None else n > 1:
        if context is None:
            context = "fork" if env_id.startswith(NUMPY_ONLY) else "forkserver"
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context=context)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


def scripted_policy(env: gym.Env) -> Callable[[dict], Any]:
    """The task's scripted policy as a function obs -> action (memory/* only; call it once per step)."""
    inner = env.unwrapped
    if not hasattr(inner, "scripted_action"):
        raise ValueError(
            f"{getattr(env, 'env_id', type(inner).__name__)} has no scripted policy; the memory/* tasks have one: "
            + ", ".join(i for i in ids() if i.startswith("memory/"))
        )
    return lambda obs: inner.scripted_action()


def cli_envs() -> None:
    """List every environment id with a one-line description."""
    specs = _specs()
    width = max(map(len, specs))
    for s in specs.values():
        print(f"{s.id:<{width}}  {s.description}")
    print(f"{'dmc/<domain>-<task>':<{width}}  any dm_control suite task from pixels (dmc-pomdp/...: without velocities)")
    print(f"{'icrl/bandit-<k>':<{width}}  a k-armed bandit trial, any k >= 2")
    print(f"{'gym:<id>':<{width}}  any installed gymnasium environment with Box/Discrete/MultiDiscrete/Tuple/Dict spaces")
