"""Scores of what a world model predicts, on arrays: frame error, reward classification, error by horizon."""

from __future__ import annotations

import numpy as np
from torch import Tensor

HORIZON_BINS = 10  # imagination steps are grouped into this many equal bins for the MSE-vs-horizon curve


def frame_mse(pred: Tensor, truth: Tensor) -> Tensor:
    """pred, truth (N, T, H, W, C) floats in [0, 1] -> (N, T) mean squared error of each frame."""
    if pred.shape != truth.shape:
        raise ValueError(f"frame_mse needs frames of one shape, got {tuple(pred.shape)} and {tuple(truth.shape)}")
    return ((pred.float() - truth.float()) ** 2).flatten(2).mean(-1)


def reward_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of decided rewards classified right: each prediction counts as the nearest of the rewards the
    task pays there (memory/distracting-*: +1 or -1, so a model that does not remember the cue scores
    about 50%, as in S4WM); with a single value paid, 0 joins it as the alternative."""
    classes = np.unique(true)
    if len(classes) < 2:
        classes = np.union1d(classes, [0.0])
    guess = classes[np.abs(pred[:, None] - classes[None, :]).argmin(1)]
    return float(np.mean(guess == true))


def horizon_bins(per_step: list[float], bins: int = HORIZON_BINS) -> list[dict]:
    """Per-step MSE (index 0 = imagination step 1) -> mean MSE in up to `bins` equal bins of steps."""
    H = len(per_step)
    edges = np.unique(np.linspace(0, H, min(bins, H) + 1).round().astype(int))
    return [{"start": int(a) + 1, "end": int(b), "mse": float(np.mean(per_step[a:b]))} for a, b in zip(edges[:-1], edges[1:])]
