"""`memwm eval`: play a trained run's policy and print its return (and success rate on goal tasks)."""

from __future__ import annotations

from typing import Literal

from agents.evaluate import evaluate_run

_PER_EPISODE = ("icrl/return_ep", "icrl/return_tenth")  # the PNG shows these; the line names the summaries


def eval_command(
    run: str, episodes: int = 0, video: bool = False, device: str = "auto", posterior: Literal["run", "sample", "mode"] = "run"
) -> None:
    """Evaluate a trained run: mean return and success rate of the policy's mode.

    Args:
        run: the run folder (runs/NAME).
        episodes: episodes to play; 0 = the run's eval_episodes.
        video: also write a GIF of the first episodes to runs/NAME/videos/.
        device: auto, cpu or cuda.
        posterior: a Dreamer's posterior latent while playing: the run's setting (dreamer.act_posterior), a sample, or its mode.
    """
    found = evaluate_run(run, episodes, video, device, posterior=posterior)
    config, scalars = found.config, found.scalars
    agent = "ppo, " if config.agent == "ppo" else ""
    head = f"{config.env} ({agent}{config.backbone}, {found.checkpoint.name}, step {found.step}):"
    if "eval/success" in scalars:
        print(f"{head} mean return {scalars['eval/return']:.3f}, success rate {scalars['eval/success']:.2f} over {found.episodes} episodes")
    else:
        print(f"{head} mean return {scalars['eval/return']:.3f} over {found.episodes} episodes")
    rest = {k: v for k, v in scalars.items() if not k.startswith(("eval/return", "eval/success", *_PER_EPISODE))}
    if rest:
        print(", ".join(f"{k} {v:.3f}" for k, v in rest.items()))
    if found.plot is not None and found.plot.exists():
        print(f"plot: {found.plot}")
    if found.video is not None:
        print(f"video: {found.video}")
