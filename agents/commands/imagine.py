"""`memwm imagine`: watch what a world model imagines.

It loads the world model of a `memwm compare` backbone (`DIR/model.pt`) or of a `memwm train` run
(`DIR/checkpoints/`), observes C steps of real episodes of the run's environment, imagines H steps
open-loop (world_models/imagine.py), and draws truth against the model:
- image observations: the video of world_models/video.py (rows truth / model / error, context framed
  green, imagination red), as a GIF/MP4;
- every run: the figure of world_models/figures.py, a PNG with one panel per episode and quantity
  over time (the observed vector's dimensions for vector observations, then reward and continue);
both also into TensorBoard, drawn by agents/imagination.py's `write_imagination` (as the training
loop's pictures are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.common import pick_device
from agents.imagination import write_imagination
from agents.runs import episodes_for, load_run_policy, load_run_world_model, run_folder
from world_models.figures import write_png
from world_models.imagine import default_context, episodes_to_batch
from world_models.video import add_tensorboard_video, write_video


class _Files:
    """The pictures of `memwm imagine`: the video to `video` (GIF/MP4), the figure to `png`, and both
    into the TensorBoard events of `events` (the run folder)."""

    def __init__(self, video: Path, png: Path, events: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.video_path, self.png_path = video, png
        self.writer = SummaryWriter(str(events))

    def video(self, name: str, frames: np.ndarray, step: int, fps: int = 10) -> list[Path]:
        add_tensorboard_video(self.writer, name, frames, step, fps=fps)
        return [write_video(self.video_path, frames, fps=fps)]

    def image(self, name: str, image: np.ndarray, step: int) -> Path:
        self.writer.add_image(name, image, step, dataformats="HWC")
        return write_png(self.png_path, image)

    def close(self) -> None:
        self.writer.close()


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
) -> list[Path]:
    """Observe C steps of real episodes, imagine H steps open-loop, and draw truth against the model.

    Image observations give a video (truth / model / error) and every run a figure over time (the
    observed vector's dimensions, reward and continue), each episode a column.

    Args:
        run: a `memwm train` run folder, a `memwm compare` backbone folder (holding model.pt), or a model file.
        context: steps observed before imagining; 0 = the task's context phase (or half the episode).
        horizon: steps imagined; 0 = the rest of the episode.
        episodes: episodes shown side by side (at most 6).
        out: the video file (.gif or .mp4) or the figure (.png); the other one is written beside it.
            Default RUN/videos/imagine.gif and .png (a compare backbone: RUN/imagine.gif and .png).
        policy: drive imagination with the run's trained policy instead of the episodes' actions.
        seed: which episodes are picked.
        fps: frames per second of the video.
        scale: pixel upscaling of each frame.
        device: auto, cpu or cuda.
    """
    if not 1 <= episodes <= 6:
        raise ValueError(f"--episodes must be in [1, 6] (one column each), got {episodes}")
    if context < 0 or horizon < 0:
        raise ValueError(f"--context and --horizon must be >= 0, got {context} and {horizon}")
    if out is not None and Path(out).suffix.lower() not in (".gif", ".mp4", ".png"):
        raise ValueError(f"--out must end in .gif, .mp4 or .png, got {Path(out).name!r}")
    torch_device = pick_device(device)
    loaded = load_run_world_model(run, torch_device)
    run_dir = run_folder(loaded.path)
    eps = episodes_for(run_dir, loaded.env, loaded.env_options, episodes, seed)
    ctx = context or default_context(eps)
    L = min(len(ep["action"]) for ep in eps)
    if ctx > L:
        raise ValueError(f"--context {ctx} is longer than the shortest episode ({L} steps)")
    hor = horizon or (L - ctx)
    if not policy and ctx + hor > L:
        raise ValueError(
            f"--context {ctx} + --horizon {hor} exceeds the shortest episode ({L} steps); use --policy to imagine past the recorded actions"
        )
    drive = load_run_policy(loaded, torch_device) if policy else None
    batch = episodes_to_batch(eps, loaded.act_space, torch_device, length=min(L, ctx + hor))
    if out is None:
        out = (run_dir / "imagine.gif") if (run_dir / "model.pt").exists() else (run_dir / "videos" / "imagine.gif")
    out = Path(out)
    video = out if out.suffix.lower() != ".png" else out.with_suffix(".gif")
    files = _Files(video, out.with_suffix(".png"), run_dir)
    try:
        written = write_imagination(loaded.wm, batch, ctx, hor, files, step=0, policy=drive, fps=fps, scale=scale)
    finally:
        files.close()
    print(
        f"imagined {hor} steps after {ctx} observed for {len(eps)} episodes of {loaded.env} "
        f"({loaded.backbone}): {', '.join(str(p) for p in written)}"
    )
    return written
