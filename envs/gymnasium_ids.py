"""Every memwm task as a plain gymnasium environment, `memwm/<name>-v0`, for agents from outside memwm.

Names: memwm's own tasks drop their `memory/` prefix, every other family is joined to its name
with '-' (gymnasium names cannot hold '/'):

    memory/recall-k8          -> memwm/recall-k8-v0
    memory/distracting-100    -> memwm/distracting-100-v0
    minigrid/memory-s7        -> memwm/minigrid-memory-s7-v0
    pomdp/cartpole-positions  -> memwm/pomdp-cartpole-positions-v0
    dmc-pomdp/walker-walk     -> memwm/dmc-pomdp-walker-walk-v0

Parametric families are also registered without their number and take the underlying
constructor's parameter as a keyword (`FAMILIES`): `gymnasium.make("memwm/recall-v0", k=12)`
is `memory/recall-k12`. Any value memwm's registry makes is accepted: any K for recall, count
and bandit, the registered sizes for the others. Other keywords are memwm's options
(`gymnasium.make("memwm/rooms-4-v0", steps_per_room=200)`).

Observations are one Box: the `image` (64, 64, 3) uint8 when the task has one, else the
`vector` (K,) float32 (no task has both; were one to, the image would be observed). memwm's
flags `is_first`/`is_last`/`is_terminal` are dropped (gymnasium says the same with reset and
terminated/truncated), and so are the icrl/* tasks' extra keys, whose values the `vector`
already holds. `render()` returns the current frame (rgb_array) for image tasks.

Importing `envs` registers the ids (strings only: an environment is built at `gymnasium.make`).
gymnasium 1.x loads no plugins by itself, so a process that has not imported memwm names the
package in the id, as gymnasium's `module:id` form does: `gymnasium.make("envs:memwm/recall-k8-v0")`.
"""

from __future__ import annotations

import re
import string
from typing import Any

import gymnasium as gym

from envs.build import make
from envs.registry import ids

NAMESPACE, VERSION = "memwm", 0
OWN_FAMILY = "memory"  # memwm's own tasks, named without their family

# gymnasium name -> memwm id, with the constructor's parameter in braces
FAMILIES = {
    "recall": "memory/recall-k{k}",
    "count": "memory/count-{length}",
    "distracting": "memory/distracting-{length}",
    "rooms": "memory/rooms-{n_rooms}",
    "doors-keys": "memory/doors-keys-{n_keys}",
    "minigrid-memory": "minigrid/memory-s{size}",
    "memory-maze": "memory-maze/{size}x{size}",
    "icrl-bandit": "icrl/bandit-{arms}",
}


def gym_name(memwm_id: str) -> str:
    """The gymnasium name (no namespace, no version) of a memwm id: `memory/recall-k8` -> `recall-k8`."""
    family, name = memwm_id.split("/", 1)
    return name if family == OWN_FAMILY else f"{family}-{name}"


def gym_id(memwm_id: str) -> str:
    """The gymnasium id of a memwm id: `memory/recall-k8` -> `memwm/recall-k8-v0`."""
    return f"{NAMESPACE}/{gym_name(memwm_id)}-v{VERSION}"


class MemwmEnv(gym.Env):
    """The memwm task `env_id` (a memwm id, or a `FAMILIES` template filled from `options`) with a Box observation."""

    metadata = {"render_modes": ["rgb_array"]}  # narrowed per instance: vector tasks draw no frames

    def __init__(self, env_id: str, render_mode: str | None = None, **options: Any):
        fields = [name for _, name, _, _ in string.Formatter().parse(env_id) if name]
        missing = [f for f in fields if f not in options]
        if missing:
            # the escaped template with each {field} as digits: which registered ids the family stands for
            pattern = re.sub(r"\\\{\w+\\\}", r"\\d+", re.escape(env_id))
            known = ", ".join(i for i in ids() if re.fullmatch(pattern, i))
            raise ValueError(f"the family {env_id!r} needs the keyword {missing[0]}= (registered: {known})")
        env_id = env_id.format(**{f: options.pop(f) for f in fields})
        self._env = make(env_id, **options)
        self.memwm_id = env_id
        spaces = self._env.observation_space.spaces
        self._key = "image" if "image" in spaces else "vector"
        self.metadata = {**self._env.unwrapped.metadata, "render_modes": ["rgb_array"] if self._key == "image" else []}
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = ", ".join(self.metadata["render_modes"]) or "none: it observes a vector"
            self._env.close()
            raise ValueError(f"{gym_id(env_id)} cannot render {render_mode!r}; its render modes: {modes}")
        self.render_mode = render_mode
        self.observation_space = spaces[self._key]
        self.action_space = self._env.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed, options=options)
        return obs[self._key], info

    def step(self, action):
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs[self._key], reward, terminated, truncated, info

    def render(self):
        """The current frame, (64, 64, 3) uint8, with render_mode "rgb_array"; None otherwise."""
        return self._env.render().copy() if self.render_mode == "rgb_array" else None

    def close(self):
        self._env.close()


ENTRY_POINT = f"{__name__}:{MemwmEnv.__name__}"


def gym_make(memwm_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` of any id memwm's registry makes, registered or not (`memory/recall-k2` has no
    `memwm/recall-k2-v0`; it is built as the family's `memwm/recall-v0` with k=2 would build it)."""
    gid = gym_id(memwm_id)
    if gid in gym.registry:
        return gym.make(gid, **kwargs)
    return gym.make(gym.envs.registration.EnvSpec(gid, entry_point=ENTRY_POINT, kwargs={"env_id": memwm_id}), **kwargs)


def register() -> None:
    """Register every memwm id and every family with gymnasium (names only; nothing is built). Idempotent."""
    table = {gym_id(i): i for i in ids()}
    table.update({f"{NAMESPACE}/{name}-v{VERSION}": template for name, template in FAMILIES.items()})
    for gid, env_id in table.items():
        if gid not in gym.registry:
            gym.register(id=gid, entry_point=ENTRY_POINT, kwargs={"env_id": env_id})


register()
