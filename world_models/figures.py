"""Figures of imagination over time: truth against the model, one panel per quantity and episode.

A panel is one quantity of one episode over time: an observed vector dimension, the reward or the
continue flag, as the truth (black) and the model's version (orange). Steps before `context` are
the model's reconstruction from what it observed (shaded green); later steps are imagined open-loop.
Rows are quantities, columns are episodes, so several episodes make one grid.

Vector observations can hold many dimensions; the figure shows those that vary most in the truth
(at most `max_dims`, in their index order), since a constant dimension says nothing about memory.

The figures are built on `matplotlib.figure.Figure` with the Agg canvas, never pyplot: no global
state, so the training loop can draw them while anything else runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRUTH_COLOR = "black"
MODEL_COLOR = "tab:orange"
CONTEXT_COLOR = "tab:green"


@dataclass
class Panel:
    """One row of the figure: `truth` and `model` (B, T) for the B episodes; NaN marks a step without a value."""

    label: str
    truth: np.ndarray
    model: np.ndarray


def top_variance_dims(vector: np.ndarray, max_dims: int) -> np.ndarray:
    """vector (B, T, K) -> the indices (ascending) of the at most `max_dims` dimensions of largest variance over (B, T)."""
    K = vector.shape[-1]
    if K <= max_dims:
        return np.arange(K)
    var = np.nanvar(vector.reshape(-1, K), axis=0)  # (K,)
    return np.sort(np.argsort(-var, kind="stable")[:max_dims])


def imagination_panels(truth: dict[str, np.ndarray], model: dict[str, np.ndarray], max_dims: int = 16) -> list[Panel]:
    """The panels of an imagination figure, in row order: the chosen vector dimensions, then reward and continue.

    truth, model: `vector` (B, T, K) (optional, both or neither), `reward` (B, T) and `cont` (B, T).
    """
    panels = []
    if "vector" in truth and "vector" in model:
        if truth["vector"].shape != model["vector"].shape:
            raise ValueError(f"truth and model vectors must have the same shape, got {truth['vector'].shape} and {model['vector'].shape}")
        for k in top_variance_dims(truth["vector"], max_dims):
            panels.append(Panel(f"obs[{k}]", truth["vector"][..., k], model["vector"][..., k]))
    for key, label in (("reward", "reward"), ("cont", "continue")):
        panels.append(Panel(label, truth[key], model[key]))
    return panels


def imagination_figure(panels: list[Panel], context: int, title: str = "", starts: np.ndarray | None = None):
    """A grid of rows = panels, columns = episodes; returns the matplotlib Figure (Agg canvas).

    In each axes, lines[0] is the truth and lines[1] the model, both against the steps 0..T-1;
    the context steps [0, context) are shaded. starts (B, T) bool: where the truth begins a new
    episode after step 0 (a replayed window may hold several), drawn as dotted vertical lines.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("an imagination figure needs at least one panel, got none")
    B, T = panels[0].truth.shape
    for p in panels:
        if p.truth.shape != (B, T) or p.model.shape != (B, T):
            raise ValueError(f"panel {p.label!r} must hold truth and model of shape {(B, T)}, got {p.truth.shape} and {p.model.shape}")
    if not 0 <= context <= T:
        raise ValueError(f"context must be in [0, {T}] for {T} steps, got {context}")
    rows = len(panels)
    fig = Figure(figsize=(3.2 * B + 0.8, 1.1 * rows + 0.9), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, B, sharex=True, squeeze=False)
    steps = np.arange(T)
    for r, panel in enumerate(panels):
        for b in range(B):
            ax = axes[r, b]
            ax.plot(steps, panel.truth[b], color=TRUTH_COLOR, lw=1.2, label="truth")
            ax.plot(steps, panel.model[b], color=MODEL_COLOR, lw=1.2, ls="--", label="model")
            if context:
                ax.axvspan(-0.5, context - 0.5, color=CONTEXT_COLOR, alpha=0.12, lw=0)
            if starts is not None:
                for t in np.flatnonzero(starts[b][1:]) + 1:
                    ax.axvline(t - 0.5, color="grey", ls=":", lw=1)
            ax.tick_params(labelsize=7)
            if panel.label == "continue":  # a probability: its full range, not an offset axis around 1
                ax.set_ylim(-0.05, 1.05)
            if b == 0:
                ax.set_ylabel(panel.label, fontsize=8)
            if r == 0:
                ax.set_title(f"episode {b}", fontsize=9)
            if r == rows - 1:
                ax.set_xlabel("step", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title or f"observed {context} steps (shaded), imagined {T - context}", fontsize=10)
    return fig


def figure_image(fig) -> np.ndarray:
    """The rendered figure as RGB (H, W, 3) uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an RGB image (H, W, 3) uint8 to a PNG file, atomically (temporary file, then rename)."""
    import imageio.v2 as imageio

    path = Path(path)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"a PNG image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    imageio.imwrite(tmp, image, format="PNG")
    os.replace(tmp, path)
    return path


__all__ = ["Panel", "top_variance_dims", "imagination_panels", "imagination_figure", "figure_image", "write_png"]
