"""A registry entry, `Spec`: how to build an environment and the facts of its task (goal task?
in-context trials? memory horizon? cue in info? compare probe?), as `envs.spec(id)` returns it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class Spec:
    """A registered environment and the facts of its task.

    How to build it: `target` ("module:Class") is built with `kwargs` plus the user's options.

    The facts, for the default options (an option such as rooms' `steps_per_room` changes the
    episode length; the facts are not recomputed for it):

    - goal: an episode succeeds or fails; `success(info, episode_return)` says which. Tasks
      without a goal are scored by their return only (control tasks, in-context trials, the
      per-step recall and counting tasks, Memory Maze, whose return counts targets reached).
    - trials: an in-context RL task: one episode is a trial of several inner episodes, and
      memory is kept across them (icrl/*).
    - memory_horizon: how many consecutive observations a replayed window must hold to contain
      both what must be remembered and the reward that depends on it. Tasks that may ask about
      anything seen in the episode have the whole episode, `episode_length + 1`; tasks that
      need only recent observations (velocities from positions or pixels) have a few steps;
      None when unknown (gym:*).
    - episode_length: the most steps (actions) an episode takes, None when unknown.
    - eval_episodes: episodes per evaluation: for goal tasks enough that a policy at chance
      cannot pass for a successful one (at least 32); fewer for control tasks with costly steps.
    - cue: on reset and every step the env's `info` holds `cue`, an int class label of what must
      be remembered, and `cue_step`, the observation index (0 = the reset's) at which it was
      first in view, -1 while it has not been seen yet. For probes of what a model retains.
    - probe: the S4WM probe of what a world model remembers that `memwm compare` scores on the
      task (memory/* tasks with a context and a query phase), None for the others:
      "imagination" (imagine the query phase after the context: memory/rooms-*, memory/teleport),
      "reward" (the reward a remembered cue decides: memory/distracting-*) or "doors" (the frames
      showing doors that remembered keys open: memory/doors-keys-*).
    - unseen_query_steps: query steps at the start of the query phase that show what no memory
      can hold (memory/teleport's first query frame shows where the agent was teleported to);
      the imagination probe observes them before imagining.
    """

    id: str
    description: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    goal: bool = False
    trials: bool = False
    memory_horizon: int | None = None
    episode_length: int | None = None
    eval_episodes: int = 8
    cue: bool = False
    probe: str | None = None
    unseen_query_steps: int = 0

    def cls(self) -> type[gym.Env]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    def success(self, info: dict, episode_return: float) -> float:
        """1.0 or 0.0 for a finished episode of a goal task: the env's own `success` flag in the `info` of its
        last step, else whether the return was positive (goal tasks pay +1 for the goal, 0 or -1 otherwise)."""
        if not self.goal:
            raise ValueError(f"{self.id} has no goal (episodes neither succeed nor fail); score it by its return")
        if "success" in info:
            return float(bool(info["success"]))
        return float(episode_return > 0)

    def facts(self) -> str:
        """The facts in a few words, for `describe` and `memwm envs`."""
        words = ["goal" if self.goal else "return", *(["trials"] if self.trials else [])]
        if self.episode_length is not None:
            words.append(f"<= {self.episode_length} steps")
        if self.memory_horizon is not None:
            words.append(f"memory {self.memory_horizon} obs")
        words.append(f"eval {self.eval_episodes}")
        if self.cue:
            words.append("cue in info")
        if self.probe is not None:
            words.append(f"compare probe {self.probe}")
        return ", ".join(words)
