"""Pictures of what a world model imagines: observe C steps of recorded sequences, imagine H more
open-loop (world_models/imagine.py), and draw truth against the model:
- image observations: the video of world_models/video.py (rows truth / model / error, context framed
  green, imagination red);
- every run: the figure of world_models/figures.py, one panel per episode and quantity over time
  (the observed vector's dimensions for vector observations, then reward and continue).
`write_imagination` is the one function that draws them, for the training loop's pictures and for
`memwm imagine` (agents/commands/imagine.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from world_models.figures import Panel, figure_image, imagination_figure, imagination_panels
from world_models.imagine import decode_frames, open_loop
from world_models.video import imagination_video

MAX_DIMS = 16  # vector dimensions drawn, those of largest variance: a figure stays readable


@dataclass
class Imagined:
    """What the model made of `context` observed and `horizon` imagined steps of B sequences.

    panels: the figure's rows (world_models/figures.py), each truth and model (B, C + H).
    frames: the truth / model / error video (T, H, W, 3) uint8 for image observations, else None.
    starts: (B, C + H) bool, where the recorded truth begins a new episode (imagination goes on regardless).
    """

    context: int
    horizon: int
    panels: list[Panel]
    frames: np.ndarray | None
    starts: np.ndarray


def _padded(x: Tensor, T: int) -> np.ndarray:
    """x (B, L, ...) -> float32 numpy (B, T, ...): the first T steps, NaN past L (no recorded truth there)."""
    x = x.detach().float().cpu().numpy()[:, :T]
    if x.shape[1] == T:
        return x
    out = np.full((x.shape[0], T, *x.shape[2:]), np.nan, np.float32)
    out[:, : x.shape[1]] = x
    return out


@torch.no_grad()
def imagine_batch(
    wm,
    batch: dict[str, Tensor],
    context: int,
    horizon: int,
    policy: Callable[[Tensor], Tensor] | None = None,
    sample: bool = False,
    scale: int = 1,
) -> Imagined:
    """Observe steps [0, context) of `batch` (B, L, ...), imagine `horizon` more (open_loop) and compare with the truth.

    Reward and continue are the heads' predictions (the two-hot mean, the continue probability);
    the truth's continue is 1 - is_terminal. Observations are decoded where the model has a decoder.
    """
    roll = open_loop(wm, batch, context, horizon, policy, sample)
    T = context + horizon
    features = roll.features  # (B, T, F)
    truth = {"reward": _padded(batch["reward"], T), "cont": _padded(1.0 - batch["is_terminal"].float(), T)}
    model = {"reward": wm.reward(features, roll.actions).float().cpu().numpy(), "cont": wm.cont(features).float().cpu().numpy()}
    frames = None
    if wm.can_decode and "vector" in batch:
        truth["vector"] = _padded(batch["vector"], T)
        model["vector"] = wm.decode(features)["vector"].float().cpu().numpy()  # (B, T, K)
    if wm.can_decode and "image" in batch:
        predicted = decode_frames(wm, features).cpu().numpy()  # (B, T, 64, 64, 3) float in [0, 1]
        recorded = np.zeros(predicted.shape, np.uint8)  # steps past the recorded episode stay black
        images = batch["image"].cpu().numpy()[:, :T]
        recorded[:, : images.shape[1]] = images
        frames = imagination_video(recorded, predicted, context=context, scale=scale)
    starts = np.nan_to_num(_padded(batch["is_first"], T)) > 0
    return Imagined(context, horizon, imagination_panels(truth, model, MAX_DIMS), frames, starts)


def write_imagination(
    wm,
    batch: dict[str, Tensor],
    context: int,
    horizon: int,
    logger,
    step: int,
    policy: Callable[[Tensor], Tensor] | None = None,
    sample: bool = False,
    fps: int = 10,
    scale: int = 1,
    name: str = "imagine/open_loop",
) -> list[Path]:
    """Draw the imagination of `batch` (B, L, ...) after `context` observed steps, `horizon` imagined.

    `logger` writes the pictures (the run's agents.logger.Logger, or any object with its `video(name,
    frames, step, fps)` and `image(name, image, step)`): the video for image observations, and for
    every run the figure as `<name>_plot`. Returns the files written.
    """
    result = imagine_batch(wm, batch, context, horizon, policy, sample, scale)
    written: list[Path] = []
    if result.frames is not None:
        written += list(logger.video(name, result.frames, step, fps=fps))
    figure = imagination_figure(result.panels, context, starts=result.starts)
    path = logger.image(f"{name}_plot", figure_image(figure), step)
    if path is not None:
        written.append(path)
    return written
