"""Evaluation: episodes with the policy's mode, their returns, success rate and videos; what `memwm eval` reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from agents.common import OBS_KEYS, cue_scalars, evaluation_seed, obs_to_torch, pick_device
from world_models.video import episode_video, write_video


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    successes: list[float]
    frames: list[np.ndarray] = field(default_factory=list)  # per episode (T, 64, 64, 3) uint8, when recorded
    cue_seen: list[bool] = field(default_factory=list)  # tasks with a cue: per episode, whether it came into view

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes))

    def video(self, max_episodes: int = 4) -> np.ndarray:
        """The recorded episodes side by side: (T, H, W, 3) uint8."""
        return episode_video(self.frames[:max_episodes])


def has_success(env_id: str) -> bool:
    """Whether episodes of `env_id` succeed or fail (a goal task, its spec says), so that a success rate means something."""
    return envs.spec(env_id).goal


def has_trials(env_id: str) -> bool:
    """Whether `env_id` is an in-context RL task (its spec's `trials` fact): an episode is a trial of several."""
    return envs.spec(env_id).trials


def episode_success(env_id: str, info: dict, episode_return: float) -> float:
    """1.0 or 0.0 for a finished episode of the goal task `env_id` (the spec's rule: the env's own `success`
    flag at the last step, else whether the return was positive)."""
    return envs.spec(env_id).success(info, episode_return)


@torch.no_grad()
def run_episodes(
    agent, env_id: str, env_options: dict, episodes: int, seed: int, device: torch.device, record: int = 0, explore: bool = False
) -> EvalResult:
    """Play `episodes` episodes of `env_id` one after another with the agent's policy mode (explore=False).

    record: how many of the first episodes keep their frames (observations' `image`) for a video.
    """
    env = envs.make(env_id, seed=seed, **env_options)
    codec, wm = agent.codec, agent.wm
    result = EvalResult([], [], [])
    goal, cue = has_success(env_id), envs.spec(env_id).cue
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            state = wm.initial_state(1, device)
            prev_action = torch.zeros(1, codec.dim, device=device)
            total, length, frames = 0.0, 0, []
            while True:
                if episode < record and "image" in obs:
                    frames.append(obs["image"])
                batch_obs = obs_to_torch({k: np.asarray(v)[None] for k, v in obs.items() if k in OBS_KEYS}, device)
                is_first = torch.tensor([length == 0], device=device)
                prev_action, state = agent.policy(state, batch_obs, prev_action, is_first, explore=explore)
                obs, reward, terminated, truncated, info = env.step(codec.to_env(prev_action.cpu().numpy())[0])
                total += float(reward)
                length += 1
                if terminated or truncated:
                    if episode < record and "image" in obs:
                        frames.append(obs["image"])
                    break
            result.returns.append(total)
            result.lengths.append(length)
            result.successes.append(episode_success(env_id, info, total) if goal else float("nan"))
            if cue:
                result.cue_seen.append(int(info["cue_step"]) >= 0)
            if frames:
                result.frames.append(np.stack(frames))
    finally:
        env.close()
    return result


@dataclass
class RunEvaluation:
    """What `memwm eval` found: the run, its checkpoint, and the scalars of the episodes it played."""

    config: object  # the run's TrainConfig
    checkpoint: Path
    step: int
    episodes: int
    scalars: dict[str, float]  # eval/return, eval/success (goal tasks), icrl/... (in-context tasks)
    video: Path | None = None
    plot: Path | None = None


def evaluate_dreamer(
    learner,
    env_id: str,
    env_options: dict,
    episodes: int,
    seed: int,
    device: torch.device,
    icrl_dir: Path,
    step: int,
    logger=None,
    record: int = 0,
) -> tuple[dict[str, float], EvalResult]:
    """The one evaluation of a Dreamer learner (training's and `memwm eval`'s): `episodes` episodes with its policy's
    mode from `seed`. Scalars eval/return, eval/length, eval/success (goal tasks), whether it looked at a task's cue
    (agents.common.cue_scalars) and, on in-context tasks, the
    return by episode index, gain and bandit regret (with their PNG in `icrl_dir`, logged through `logger`)."""
    result = run_episodes(learner, env_id, env_options, episodes, seed, device, record=record)
    scalars = {"eval/return": result.mean_return, "eval/length": float(np.mean(result.lengths))}
    if has_success(env_id):
        scalars["eval/success"] = result.success_rate
    scalars.update(cue_scalars(result.cue_seen, result.successes))
    if has_trials(env_id):
        from agents import icrl

        metrics, _ = icrl.evaluate(
            icrl.DreamerPolicy(learner, device), env_id, episodes, seed, out_dir=icrl_dir, logger=logger, step=step, **env_options
        )
        scalars.update(metrics)
    return scalars, result


def evaluate_run(
    run: str | Path, episodes: int = 0, video: bool = False, device: str = "auto", seed: int | None = None, posterior: str = "run"
) -> RunEvaluation:
    """Restore a run's config and latest checkpoint and play `episodes` episodes (0: the run's eval_episodes):
    a Dreamer with its policy's mode, a PPO learner with its sampling policy over whole trials. `seed`: the
    first episode's; default, the first of the run's evaluation seeds (never a training episode). `posterior`:
    a Dreamer's latent while playing, "run" (the run's dreamer.act_posterior), "sample" or "mode"."""
    from agents import ppo_agent
    from agents.logger import Logger
    from agents.runs import build_dreamer, latest_checkpoint, load_run_config

    run = Path(run)
    config = load_run_config(run)
    torch_device = pick_device(device)
    payload, path = latest_checkpoint(run, torch_device)
    step = payload["counters"]["step"]
    n = episodes or config.eval_episodes
    seed = evaluation_seed(config.seed, 0, n) if seed is None else seed
    in_context = has_trials(config.env)
    plot = run / "icrl" / f"icrl-{step:09d}.png" if in_context else None
    if config.agent == "ppo":
        learner = ppo_agent.build(config, torch_device)
        learner.load_state_dict(payload["agent"])
        logger = Logger(run, config.tensorboard)
        try:
            scalars = ppo_agent.evaluate(learner, config, n, seed, run / "icrl", logger, step)
        finally:
            logger.close()
        return RunEvaluation(config, path, step, n, scalars, plot=plot)
    if posterior not in ("run", "sample", "mode"):
        raise ValueError(f"posterior must be run, sample or mode, got {posterior!r}")
    if posterior != "run":
        act = "sample" if posterior == "sample" else "eval_mode"
        config = dataclasses.replace(config, dreamer=dataclasses.replace(config.dreamer, act_posterior=act))
    agent, _ = build_dreamer(config, torch_device)
    agent.load_state_dict(payload["agent"])
    agent.eval()
    logger = Logger(run, config.tensorboard) if in_context else None
    try:
        scalars, result = evaluate_dreamer(
            agent, config.env, config.env_options, n, seed, torch_device, run / "icrl", step, logger, record=min(n, 4) if video else 0
        )
    finally:
        if logger is not None:
            logger.close()
    written = None
    if video and result.frames:
        written = write_video(run / "videos" / f"eval-cli-{step:09d}.gif", result.video())
    return RunEvaluation(config, path, step, n, scalars, video=written, plot=plot)
