"""Recurrent PPO (agents/ppo.py) in its environments: `Collector`, the env loop that gathers each
chunk of vectorised trials; `PPOAgent`, the learner and its trials behind the run loop's Agent
protocol (agents/loop.py), as agents/train.py's DreamerAgent is for Dreamer; `RecurrentPolicy`, the
learner's policy for in-context evaluation (agents/icrl.py); and what a run of it needs: `build`,
`identity` and `evaluate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

import envs
from agents import icrl
from agents.common import cue_scalars, obs_to_torch, training_seed
from agents.loop import Acted
from agents.ppo import PPO, Rollout
from agents.ppo_losses import gae
from world_models.imagine import model_obs_space


class Collector:
    """The env loop of recurrent PPO: steps vectorised trials one chunk at a time for `learner`,
    carrying the env's observation and the backbone's memory from chunk to chunk."""

    def __init__(self, learner: PPO, env: gymnasium.vector.VectorEnv):
        self.learner, self.env = learner, env
        self._obs = None  # the env's current observation (numpy, batched); None: new trials at the next chunk
        self._state = None  # the backbone's state before the current observation

    def restart(self) -> None:
        """New trials in every environment at the next chunk (on the seed `collect` is given then)."""
        self._obs = None

    @torch.no_grad()
    def collect(self, seed: int | None = None) -> tuple[Rollout, dict[str, list]]:
        """Step the vector env for cfg.rollout steps, carrying the backbone's memory (reset only at is_first);
        `seed` seeds its reset when new trials start.

        Returns the rollout with its advantages, and the returns and lengths of the trials that ended.
        """
        env, learner = self.env, self.learner
        cfg, model, dev = learner.cfg, learner.model, learner.device
        if self._obs is None:
            self._obs, _ = env.reset(seed=seed)
            self._reward = np.zeros(env.num_envs, np.float32)  # the reward that came with self._obs
            self._scaled = self._reward.copy()  # the same, as the learner sees it
            self._state = model.initial_state(env.num_envs, dev)
            self._trial_return, self._trial_length = np.zeros(env.num_envs), np.zeros(env.num_envs, np.int64)
        obs, reward, scaled, state0 = self._obs, self._reward, self._scaled, self._state
        state, keys = state0, model.keys
        steps: dict[str, list] = {k: [] for k in ("obs", "is_first", "action", "logp", "value", "reward", "is_last", "is_terminal")}
        finished: dict[str, list] = {"return": [], "length": []}
        for t in range(cfg.rollout + 1):
            o = obs_to_torch(obs, dev)
            is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=dev)
            dist, value, next_state = model.step(o, is_first, state)
            steps["value"].append(value)
            steps["reward"].append(torch.as_tensor(scaled, dtype=torch.float32, device=dev))
            steps["is_last"].append(torch.as_tensor(np.asarray(obs["is_last"]), device=dev))
            steps["is_terminal"].append(torch.as_tensor(np.asarray(obs["is_terminal"]), device=dev))
            if t == cfg.rollout:  # the observation after the chunk: its value bootstraps; it is acted on next chunk
                break
            self._track(obs, reward, finished)
            action = model.sample(dist)
            steps["obs"].append(o), steps["is_first"].append(is_first), steps["action"].append(action)
            steps["logp"].append(dist.log_prob(action))
            obs, reward, _, _, _ = env.step(model.codec.to_env(action.cpu().numpy()))
            scaled = learner.reward_scale(np.asarray(reward, np.float64), np.asarray(obs["is_first"])) if cfg.scale_rewards else reward
            state = next_state
        self._obs, self._reward, self._scaled, self._state = obs, reward, scaled, state

        S = {k: torch.stack(v, 1) for k, v in steps.items() if k != "obs"}  # (B, T[+1], ...)
        adv, ret = gae(S["reward"], S["value"], S["is_last"], S["is_terminal"], cfg.gamma, cfg.gae_lambda)
        rollout = Rollout(
            obs={k: torch.stack([o[k] for o in steps["obs"]], 1) for k in keys},
            is_first=S["is_first"],
            action=S["action"],
            logp=S["logp"],
            value=S["value"][:, :-1],
            advantage=adv,
            returns=ret,
            mask=~S["is_last"][:, :-1],
            state0=state0,
        )
        return rollout, finished

    def _track(self, obs: dict[str, np.ndarray], reward: np.ndarray, finished: dict[str, list]) -> None:
        """Add the reward that came with `obs` to each env's trial return; report the trials that end at it."""
        first = np.asarray(obs["is_first"])
        self._trial_return = np.where(first, 0.0, self._trial_return + np.asarray(reward, np.float64))
        self._trial_length = np.where(first, 0, self._trial_length + 1)
        for i in np.flatnonzero(np.asarray(obs["is_last"])):
            finished["return"].append(float(self._trial_return[i]))
            finished["length"].append(int(self._trial_length[i]))


class RecurrentPolicy:
    """A PPO learner's policy as an `agents.icrl.Policy`: `act(obs)` carries the memory between calls
    (reset where obs["is_first"]). Sampling by default: in context, exploring is part of the policy."""

    def __init__(self, ppo: PPO, greedy: bool = False):
        self.ppo, self.greedy, self.state = ppo, greedy, None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action, self.state = self.ppo.act(obs, self.state, self.greedy)
        return action


def identity(config) -> dict[str, Any]:
    """What a resume of a PPO run must match: the agent, the environment and the network's shape."""
    return {
        "agent": "ppo",
        "env": config.env,
        "env_options": dict(config.env_options),
        "backbone": config.backbone,
        "wm": dataclasses.asdict(config.wm),
        "ppo": {"width": config.ppo.width, "hidden": config.ppo.hidden},
    }


def build(config, device: torch.device, spaces=None) -> PPO:
    """The PPO learner for a TrainConfig; `spaces` (obs_space, act_space) avoids making an env."""
    if spaces is None:
        env = envs.make(config.env, seed=config.seed, **config.env_options)
        spaces = (env.observation_space, env.action_space)
        env.close()
    return PPO(model_obs_space(spaces[0]), spaces[1], config.backbone, config.ppo, config.wm, device)


def evaluate(ppo: PPO, config, trials: int, seed: int, out_dir=None, logger=None, step: int = 0) -> dict[str, float]:
    """Whole trials with the sampling policy; on icrl/* envs the in-context metrics, bandit regrets and PNG; on
    other goal tasks the success rate, on tasks with a cue whether the policy looked at it.

    Returns the scalars, `eval/return` (mean trial return) among them; logs them through `logger`."""
    spec = envs.spec(config.env)
    if spec.trials:
        metrics, _ = icrl.evaluate(
            RecurrentPolicy(ppo), config.env, trials, seed, num_envs=min(8, trials), out_dir=out_dir, step=step, **config.env_options
        )
        summary = {"eval/return": metrics["icrl/trial_return"], "eval/length": metrics["icrl/trial_length"], **metrics}
    else:  # one-episode trials: their returns, and what a goal or cue task's evaluation says
        played = icrl.run_trials(RecurrentPolicy(ppo), config.env, trials, seed, num_envs=min(8, trials), **config.env_options)
        returns = played.returns.sum(-1)
        summary = {"eval/return": float(returns.mean()), "eval/length": float(played.length.mean())}
        successes = [spec.success(info, r) if spec.goal else float("nan") for info, r in zip(played.final_info, returns)]
        if spec.goal:
            summary["eval/success"] = float(np.mean(successes))
        seen = [int(info["cue_step"]) >= 0 for info in played.final_info] if spec.cue else []
        summary |= cue_scalars(seen, successes)
    if logger is not None:
        logger.scalars(summary)
        logger.write(step)
    return summary


class PPOAgent:
    """Recurrent PPO and its vectorised trials behind the run loop's Agent protocol (agents/loop.py).

    act: 1. collect a chunk of every env's trial, carrying the memory, and 2. its advantages (GAE);
    update: 3. the epochs over the chunk, the learning rate decaying linearly to zero if anneal_lr
    (PPO's Atari setting). The environments restart their trials when a run resumes.
    """

    def __init__(self, config, device: torch.device):
        self.config = config
        self.env = envs.make_vector(
            config.env, config.num_envs, seed=training_seed(config.seed, 0), asynchronous=config.async_envs, **config.env_options
        )
        self.learner = build(config, device, (self.env.single_observation_space, self.env.single_action_space))
        self.collector = Collector(self.learner, self.env)
        self.module = self.learner.model
        self.run_dir = config.run_dir
        self.rollout: Rollout | None = None

    def begin(self, counters) -> None:
        self.restart(counters)

    def restart(self, counters) -> None:
        """New trials in every environment on this step's training seeds (the next chunk resets them)."""
        self.first_seed = training_seed(self.config.seed, counters["step"])
        self.collector.restart()

    def act(self, counters) -> Acted:
        self.rollout, finished = self.collector.collect(seed=self.first_seed)
        episodes = [{"return": r, "length": float(n)} for r, n in zip(finished["return"], finished["length"])]
        return Acted(self.rollout.mask.numel(), episodes)

    def update(self, counters) -> tuple[int, dict[str, float]]:
        cfg = self.config
        lr = cfg.ppo.lr * max(0.0, 1 - counters["step"] / cfg.steps) if cfg.ppo.anneal_lr else None
        return 1, self.learner.update(self.rollout, lr)

    def evaluate(self, episodes: int, seed: int, step: int, logger) -> dict[str, float]:
        return evaluate(self.learner, self.config, episodes, seed, self.run_dir / "icrl", None, step)

    def pictures(self, seed: int, step: int, logger) -> None:
        """PPO draws no pictures: it has no world model to imagine with."""

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.learner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["agent"])

    def close(self) -> None:
        self.env.close()
