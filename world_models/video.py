"""Videos of episodes and of imagination: one grid layout, written as GIF/MP4 files and TensorBoard tensors.

An imagination video has three rows per column (one column per sequence): the true frames, the
model's frames and their absolute error. Frames the model saw (context, reconstructed from the
posterior) are framed green; frames it predicted open-loop (imagined) are framed red. Every cell
carries its step number. Episode videos (evaluation) are the same grid with the truth row only
and no frames coloured by phase.

Everything here works on numpy uint8 arrays, so that any caller (the training loop, `memwm
imagine`, the compare tool) can build the arrays however it likes and share this one layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

GREEN = (40, 200, 60)
RED = (220, 40, 40)
GREY = (90, 90, 90)
BORDER = 2  # pixels of frame colour around each cell
GAP = 1  # black pixels between cells

# A 3x5 bitmap font for the digits (rows top to bottom, "1" = ink).
_DIGITS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}
_GLYPHS = {k: np.array([[c == "1" for c in row] for row in v]) for k, v in _DIGITS.items()}  # (5, 3) bool


def draw_number(frame: np.ndarray, number: int, scale: int = 1) -> np.ndarray:
    """Draw `number` in white on a black box in the top-left corner of `frame` (H, W, 3) uint8, in place."""
    text = str(int(number))
    h, w = 5 * scale, 3 * scale
    box_w = len(text) * (w + scale) + scale
    box_h = h + 2 * scale
    frame[:box_h, :box_w] = 0
    for i, ch in enumerate(text):
        glyph = np.kron(_GLYPHS[ch], np.ones((scale, scale), dtype=bool))  # (5s, 3s)
        x0 = scale + i * (w + scale)
        region = frame[scale : scale + h, x0 : x0 + w]
        region[glyph[: region.shape[0], : region.shape[1]]] = 255
    return frame


def _as_uint8_frames(x: np.ndarray, name: str) -> np.ndarray:
    """Frames as uint8 (..., H, W, 3); floats are read as [0, 1]."""
    x = np.asarray(x)
    if x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be frames of shape (..., H, W, 3), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {x.dtype}")


def _cell(frame: np.ndarray, color: tuple[int, int, int], step: int, scale: int) -> np.ndarray:
    """One frame (H, W, 3) framed by `color`, upscaled by `scale`, its step number drawn on it."""
    if scale > 1:
        frame = frame.repeat(scale, 0).repeat(scale, 1)
    h, w, _ = frame.shape
    out = np.empty((h + 2 * BORDER, w + 2 * BORDER, 3), np.uint8)
    out[:] = color
    out[BORDER : BORDER + h, BORDER : BORDER + w] = frame
    draw_number(out[BORDER:, BORDER:], step, scale=max(1, scale))
    return out


def _grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Stack equally sized cells (h, w, 3) into one image with GAP black pixels between them."""
    h, w, _ = rows[0][0].shape
    nr, nc = len(rows), len(rows[0])
    out = np.zeros((nr * h + (nr - 1) * GAP, nc * w + (nc - 1) * GAP, 3), np.uint8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            out[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = cell
    return out


def imagination_video(truth: np.ndarray, model: np.ndarray, context: int, scale: int = 1, start_step: int = 0) -> np.ndarray:
    """The open-loop video: rows truth / model / error, one column per sequence.

    truth, model: (B, T, H, W, 3) or (T, H, W, 3), uint8 or float in [0, 1]; frames t < context
    are reconstructions (framed green), frames t >= context are imagined (framed red).
    Returns frames (T, 3*(H*scale+2*BORDER)+2*GAP, B*(W*scale+2*BORDER)+(B-1)*GAP, 3) uint8.
    """
    truth = _as_uint8_frames(truth, "truth")
    model = _as_uint8_frames(model, "model")
    if truth.shape != model.shape:
        raise ValueError(f"truth and model must have the same shape, got {truth.shape} and {model.shape}")
    if truth.ndim == 4:
        truth, model = truth[None], model[None]
    if truth.ndim != 5:
        raise ValueError(f"frames must be (B, T, H, W, 3) or (T, H, W, 3), got {truth.shape}")
    B, T = truth.shape[:2]
    if not 0 <= context <= T:
        raise ValueError(f"context must be in [0, {T}] for {T} frames, got {context}")
    error = np.abs(truth.astype(np.int16) - model.astype(np.int16)).astype(np.uint8)  # (B, T, H, W, 3)
    frames = []
    for t in range(T):
        color = GREEN if t < context else RED
        rows = [[_cell(x[b, t], color, start_step + t, scale) for b in range(B)] for x in (truth, model, error)]
        frames.append(_grid(rows))
    return np.stack(frames)


def episode_video(frames: np.ndarray, scale: int = 1) -> np.ndarray:
    """Episodes side by side, each frame framed grey with its step number; shorter episodes hold their last frame.

    frames: (T, H, W, 3), a list of such arrays of any lengths, or (B, T, H, W, 3).
    Returns (T_max, H*scale+2*BORDER, B*(W*scale+2*BORDER)+(B-1)*GAP, 3) uint8.
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        episodes = [frames]
    else:
        episodes = list(frames)
    if not episodes:
        raise ValueError("episode_video needs at least one episode, got none")
    episodes = [_as_uint8_frames(e, "frames") for e in episodes]
    if any(e.ndim != 4 or len(e) == 0 for e in episodes):
        raise ValueError(f"each episode must be non-empty frames (T, H, W, 3), got {[e.shape for e in episodes]}")
    T = max(len(e) for e in episodes)
    out = []
    for t in range(T):
        row = [_cell(e[min(t, len(e) - 1)], GREY, min(t, len(e) - 1), scale) for e in episodes]
        out.append(_grid([row]))
    return np.stack(out)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 10) -> Path:
    """Write frames (T, H, W, 3) uint8 to a .gif or .mp4 file, atomically (temporary file, then rename)."""
    import imageio.v2 as imageio

    path = Path(path)
    frames = _as_uint8_frames(frames, "frames")
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"video path must end in .gif or .mp4, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    if suffix == ".gif":
        imageio.mimsave(tmp, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
    else:
        # yuv420p needs even sizes; pad with black rather than let ffmpeg rescale the grid.
        T, H, W, _ = frames.shape
        padded = np.zeros((T, H + H % 2, W + W % 2, 3), np.uint8)
        padded[:, :H, :W] = frames
        imageio.mimsave(tmp, list(padded), format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1)
    os.replace(tmp, path)
    return path


def tensorboard_video(frames: np.ndarray) -> np.ndarray:
    """frames (T, H, W, 3) uint8 -> (1, T, 3, H, W) uint8, the layout of SummaryWriter.add_video."""
    frames = _as_uint8_frames(frames, "frames")
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)[None])


def add_tensorboard_video(writer, tag: str, frames: np.ndarray, step: int | None = None, fps: int = 10) -> None:
    """Write frames (T, H, W, 3) into a SummaryWriter's events as `tag`: an animated GIF in an image summary.

    `SummaryWriter.add_video` needs moviepy's old `editor` module (gone in moviepy 2) and only prints
    a warning without it, so the GIF is encoded with imageio and written as the same Summary.Image.
    """
    import io

    import imageio.v2 as imageio
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = tensorboard_video(frames)[0].transpose(0, 2, 3, 1)  # uint8 (T, H, W, 3), checked
    buffer = io.BytesIO()
    imageio.mimsave(buffer, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
    T, H, W, C = frames.shape
    image = Summary.Image(height=H, width=W, colorspace=C, encoded_image_string=buffer.getvalue())
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
