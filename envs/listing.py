"""`memwm envs`: every environment id with a one-line description and its facts."""

from __future__ import annotations

from envs.registry import describe, ids, spec


def cli_envs(env: str | None = None) -> None:
    """List every environment id with a one-line description and its facts (goal or return task,
    episode length, memory horizon, evaluation episodes), or with --env ID, that environment's facts.

    Args:
        env: one environment id (also a pattern id such as gym:<module>:<id>) to describe in full.
    """
    if env is not None:
        s = spec(env)
        print(f"{s.id}: {s.description}")
        for name in ("goal", "trials", "memory_horizon", "episode_length", "eval_episodes", "cue", "probe", "unseen_query_steps"):
            print(f"  {name}: {getattr(s, name)}")
        return
    known = ids()
    width = max(map(len, known))
    for env_id in known:
        print(f"{env_id:<{width}}  {describe(env_id)}")
    print(f"{'dmc/<domain>-<task>':<{width}}  any dm_control suite task from pixels (dmc-pomdp/...: without velocities)")
    print(f"{'icrl/bandit-<k>':<{width}}  a k-armed bandit trial, any k >= 2")
    print(f"{'memory/recall-k<K>':<{width}}  name the symbol shown K steps earlier, any K >= 1")
    print(f"{'memory/count-<n>':<{width}}  count cards of one kind over n steps, any n >= 2")
    print(f"{'gym:<id>':<{width}}  any installed gymnasium environment with Box/Discrete/MultiDiscrete/Tuple/Dict spaces")
    print(f"{'gym:<module>:<id>':<{width}}  the same after importing <module>, which registers <id> (e.g. gym:my_pkg:MyEnv-v0)")
