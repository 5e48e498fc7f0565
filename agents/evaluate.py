"""Evaluation: episodes with the policy's mode, their returns, success rate and videos; `memwm eval`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from world_models.video import episode_video

OBS_KEYS = ("image", "vector")


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    successes: list[float]
    frames: list[np.ndarray] = field(default_factory=list)  # per episode (T, 64, 64, 3) uint8, when recorded

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes))

    def video(self, max_episodes: int = 4) -> np.ndarray:
        """The recorded episodes side by side: (T, H, W, 3) uint8."""
        return episode_video(self.frames[:max_episodes])


def obs_to_torch(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """The model keys of a batched observation (N, ...) as tensors on `device`."""
    return {k: torch.as_tensor(np.asarray(obs[k]), device=device) for k in OBS_KEYS if k in obs}


# Families of tasks with a goal, where an episode succeeds or fails. Control tasks (pomdp/, dmc/,
# dmc-pomdp/, gym:) have no such notion: their runs log and print returns only.
GOAL_FAMILIES = ("memory/", "minigrid/", "memory-maze/", "icrl/")


def has_success(env_id: str) -> bool:
    """Whether episodes of `env_id` succeed or fail (a goal task), so that a success rate means something."""
    return env_id.startswith(GOAL_FAMILIES)


def episode_success(info: dict, episode_return: float) -> float:
    """An environment's own `success` flag at the episode's last step, else whether the return was positive
    (the goal tasks without a flag pay +1 for the goal and 0 or -1 otherwise)."""
    if "success" in info:
        return float(bool(info["success"]))
    return float(episode_return > 0)


@torch.no_grad()
def run_episodes(agent, env_id: str, env_options: dict, episodes: int, seed: int, device: torch.device, record: int = 0, explore: bool = False) -> EvalResult:
    """Play `episodes` episodes of `env_id` one after another with the agent's policy mode (explore=False).

    record: how many of the first episodes keep their frames (observations' `image`) for a video.
    """
    env = envs.make(env_id, seed=seed, **env_options)
    codec, wm = agent.codec, agent.wm
    result = EvalResult([], [], [])
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
            result.successes.append(episode_success(info, total))
            if frames:
                result.frames.append(np.stack(frames))
    finally:
        env.close()
    return result


def evaluate(run: str, episodes: int = 0, video: bool = False, device: str = "auto", seed: int = 10_000) -> EvalResult:
    """Restore a run's config and latest checkpoint and play `episodes` episodes with the policy's mode."""
    from agents.train import build_agent, load_run_config, pick_device
    from agents import checkpoint

    config = load_run_config(Path(run))
    if config.agent == "ppo":  # in-context RL issue: PPO runs are restored and evaluated by agents/ppo.py
        from agents import ppo

        return ppo.evaluate_run(run, episodes, device, seed)
    torch_device = pick_device(device)
    agent, _ = build_agent(config, torch_device)
    found = checkpoint.load(Path(run) / "checkpoints", map_location=torch_device)
    if found is None:
        raise ValueError(f"run {run} has no checkpoint in {Path(run) / 'checkpoints'}; train it first")
    payload, path = found
    agent.load_state_dict(payload["agent"])
    agent.eval()
    n = episodes or config.eval_episodes
    result = run_episodes(agent, config.env, config.env_options, n, seed, torch_device, record=min(n, 4) if video else 0)
    step = payload["counters"]["step"]
    success = f", success rate {result.success_rate:.2f}" if has_success(config.env) else ""
    print(f"{config.env} ({config.backbone}, {path.name}, step {step}): mean return {result.mean_return:.3f}{success} "
          f"over {n} episodes")
    if config.env.startswith("icrl/"):  # in-context RL issue: return by episode index, gain, bandit regret, PNG
        from agents import icrl
        from agents.logger import Logger

        logger = Logger(Path(run), config.tensorboard)
        try:
            metrics, png = icrl.evaluate(icrl.DreamerPolicy(agent, torch_device), config.env, n, seed, out_dir=Path(run) / "icrl",
                                         logger=logger, step=step, **config.env_options)
        finally:
            logger.close()
        print(", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if not k.startswith(("icrl/return_ep", "icrl/return_tenth"))) + f"; plot: {png}")
    if video and result.frames:
        from world_models.video import write_video

        out = write_video(Path(run) / "videos" / f"eval-cli-{step:09d}.gif", result.video())
        print(f"video: {out}")
    return result


def eval_command(run: str, episodes: int = 0, video: bool = False, device: str = "auto") -> None:
    """Evaluate a trained run: mean return and success rate of the policy's mode.

    Args:
        run: the run folder (runs/NAME).
        episodes: episodes to play; 0 = the run's eval_episodes.
        video: also write a GIF of the first episodes to runs/NAME/videos/.
        device: auto, cpu or cuda.
    """
    try:
        evaluate(run, episodes, video, device)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"memwm eval: error: {e}", file=sys.stderr)
        raise SystemExit(1)
