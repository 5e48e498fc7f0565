"""Making environments from registry ids: `make(id)`, `make_vector(id, n)` (checking the options
first), and the scripted policy of a made memory task (memory/*, minigrid/memory-*).

Vector environments use gymnasium's NEXT_STEP autoreset: after a step that returns `is_last`
(terminated or truncated), the next `step()` ignores its action and returns the first
observation of the next episode, with `is_first=True`, reward 0 and no termination, exactly
as a `reset()` would. Agents therefore read `is_first` to reset their memory and must not
count the reward of that step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from envs.core import Standard
from envs.facts import Spec
from envs.registry import GYM, ids, spec


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


def make_vector(
    env_id: str, n: int, seed: int | None = None, asynchronous: bool | None = None, context: str | None = None, **options
) -> gym.vector.VectorEnv:
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
    """The task's scripted (optimal where the task has one) policy as a function obs -> action (memory/* and
    minigrid/memory-* only; call it once per step)."""
    inner = env.unwrapped
    if not hasattr(inner, "scripted_action"):
        raise ValueError(
            f"{getattr(env, 'env_id', type(inner).__name__)} has no scripted policy; the memory/* and minigrid/memory-* tasks have one: "
            + ", ".join(i for i in ids() if i.startswith(("memory/", "minigrid/memory-")))
        )
    return lambda obs: inner.scripted_action()
