"""`memwm imagine`: watch what a world model imagines.

It loads the world model of a `memwm compare` backbone (`DIR/model.pt`) or of a `memwm train` run
(`DIR/checkpoints/`), observes C steps of real episodes of the run's environment, imagines H steps
open-loop (world_models/imagine.py), and writes the video of world_models/video.py (rows truth /
model / error, context framed green, imagination red) as a GIF/MP4 and as a TensorBoard video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.common import pick_device
from agents.runs import episodes_for, load_run_policy, load_run_world_model, run_folder
from world_models.imagine import decode_frames, default_context, episodes_to_batch, open_loop
from world_models.video import add_tensorboard_video, imagination_video, write_video


def imagine(
    run: Path,
    context: int = 0,
    horizon: int = 0,
    episodes: int = 6,
    out: Path | None = None,
    policy: bool = False,
    seed: int = 0,
    fps: int = 10,
    scale: int = 1,
    device: str = "auto",
) -> Path:
    """Observe C steps of real episodes, imagine H steps open-loop and write the video.

    Args:
        run: a `memwm train` run folder, a `memwm compare` backbone folder (holding model.pt), or a model file.
        context: steps observed before imagining; 0 = the task's context phase (or half the episode).
        horizon: steps imagined; 0 = the rest of the episode.
        episodes: episodes shown side by side (at most 6).
        out: the video file (.gif or .mp4); default RUN/videos/imagine.gif (a compare backbone: RUN/imagine.gif).
        policy: drive imagination with the run's trained policy instead of the episodes' actions.
        seed: which episodes are picked.
        fps: frames per second of the video.
        scale: pixel upscaling of each frame.
        device: auto, cpu or cuda.
    """
    if not 1 <= episodes <= 6:
        raise ValueError(f"--episodes must be in [1, 6] (one video column each), got {episodes}")
    if context < 0 or horizon < 0:
        raise ValueError(f"--context and --horizon must be >= 0, got {context} and {horizon}")
    torch_device = pick_device(device)
    loaded = load_run_world_model(run, torch_device)
    if "image" not in getattr(loaded.obs_space, "spaces", {}):
        raise ValueError(f"the world model in {loaded.path} sees no images (observation keys "
                         f"{sorted(getattr(loaded.obs_space, 'spaces', {}))}); there are no frames to draw")
    run_dir = run_folder(loaded.path)
    eps = episodes_for(run_dir, loaded.env, loaded.env_options, episodes, seed)
    ctx = context or default_context(eps)
    L = min(len(ep["action"]) for ep in eps)
    if ctx > L:
        raise ValueError(f"--context {ctx} is longer than the shortest episode ({L} steps)")
    hor = horizon or (L - ctx)
    if not policy and ctx + hor > L:
        raise ValueError(f"--context {ctx} + --horizon {hor} exceeds the shortest episode ({L} steps); "
                         f"use --policy to imagine past the recorded actions")
    drive = load_run_policy(loaded, torch_device) if policy else None
    batch = episodes_to_batch(eps, loaded.act_space, torch_device, length=min(L, ctx + hor))
    roll = open_loop(loaded.wm, batch, ctx, hor, drive)
    model = decode_frames(loaded.wm, roll.features).cpu().numpy()  # (N, C + H, 64, 64, 3)
    truth = np.zeros(model.shape, np.uint8)  # steps past the recorded episode stay black
    recorded = batch["image"].cpu().numpy()
    truth[:, : recorded.shape[1]] = recorded[:, : model.shape[1]]
    frames = imagination_video(truth, model, context=ctx, scale=scale)
    if out is None:
        out = (run_dir / "imagine.gif") if (run_dir / "model.pt").exists() else (run_dir / "videos" / "imagine.gif")
    path = write_video(out, frames, fps=fps)
    _log_tensorboard(run_dir, frames, fps)
    print(f"imagined {hor} steps after {ctx} observed for {len(eps)} episodes of {loaded.env} "
          f"({loaded.backbone}): {path}")
    return path


def _log_tensorboard(run_dir: Path, frames: np.ndarray, fps: int) -> None:
    """The video into the run's TensorBoard events as `imagine/open_loop` (an animated GIF image)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    try:
        add_tensorboard_video(writer, "imagine/open_loop", frames, fps=fps)
    finally:
        writer.close()
