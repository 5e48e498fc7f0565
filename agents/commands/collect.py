"""`memwm collect`: write episodes of an environment played by its scripted policy or at random."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from envs.collect import collect_episodes


def collect(
    env: str,
    episodes: int = 10,
    policy: Literal["scripted", "random"] = "scripted",
    out: Path = Path("runs/data"),
    seed: int = 0,
    progress: bool = True,
) -> None:
    """Play EPISODES episodes of ENV and write each to OUT as a compressed .npz (see envs.dataset).

    Episode i is reset with seed SEED + i, so any one of them can be replayed alone. POLICY is
    the task's scripted policy (memory/* tasks: explores, then queries) or uniform random actions.
    Besides observations, actions, rewards and flags, each file holds the probe arrays:
    `phase` (0 context, 1 query), the task's masks (e.g. `door_visible`), `cue`, `episode`, `arm_means`.

    Args:
        env: environment id, e.g. memory/distracting-100 (`memwm envs` lists them).
        episodes: how many episodes to write.
        policy: scripted (memory/* only) or random.
        out: directory for the episode files (created if missing).
        seed: seed of the first episode.
        progress: show a progress bar.
    """
    paths = collect_episodes(env, episodes, policy, out, seed, progress=progress)
    print(f"collect: wrote {len(paths)} episodes of {env} to {out}")
