"""What `memwm compare` writes for people to read: results.md's table, the plots of results.json and
each backbone's imagination GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from world_models.imagine import decode_frames, episodes_to_batch, open_loop
from world_models.probes import probe_context
from world_models.video import imagination_video, write_video

VIDEO_CONTEXT = 8  # context frames shown before the imagined ones in the GIFs
VIDEO_HORIZON = 128  # at most this many imagined frames in the GIFs


@torch.no_grad()
def imagination_gif(wm, episodes: list[dict], act_space, device, path: Path, columns: int = 6, shift: int = 0) -> Path:
    """The GIF of the first `columns` eval episodes, cut to a common length: the last context frames
    (up to the earliest query start among them), then up to VIDEO_HORIZON imagined frames."""
    eps = episodes[:columns]
    C = min(probe_context(ep, shift) for ep in eps)
    H = min(min(len(ep["action"]) for ep in eps) - C, VIDEO_HORIZON)
    batch = episodes_to_batch(eps, act_space, device, length=C + H)
    roll = open_loop(wm, batch, C, H)
    start = max(0, C - VIDEO_CONTEXT)
    model = decode_frames(wm, roll.features[:, start:]).cpu().numpy()  # (N, C + H - start, 64, 64, 3)
    truth = batch["image"][:, start:].cpu().numpy()
    frames = imagination_video(truth, model, context=C - start, start_step=start)
    return write_video(path, frames, fps=10)


def results_table(results: dict) -> str:
    """The markdown table of results.md: one row per backbone."""
    kind = results["probe"]
    cols = ["backbone", "params", "train step ms", "load", "imagine ms/step", "final loss"]
    if kind == "reward":
        cols += ["reward acc (inference)", "reward acc (imagination)"]
    if kind == "doors":
        cols += ["door-frame MSE"]
    cols += ["query MSE", "MSE first bin", "MSE last bin"]
    lines = [
        f"# compare on {results['task']} ({results['probe']} probe)",
        "",
        "settings: " + ", ".join(f"{k}={v}" for k, v in results["settings"].items()),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for name, m in results["backbones"].items():
        p, s = m["probes"], m["speed"]
        row = [
            name,
            f"{s['params']:,}",
            f"{s['train_step_ms']:.1f}",
            f"{s['load']:.1f}" if "load" in s else "-",
            f"{s['imagine_ms_per_step']:.2f}",
            f"{m['curve'][-1]['loss']:.3f}" if m["curve"] else "-",
        ]
        if kind == "reward":
            row += [f"{100 * p['reward_acc_inference']:.1f}%", f"{100 * p['reward_acc_imagination']:.1f}%"]
        if kind == "doors":
            row += [f"{p['door_mse']:.5f}"]
        bins = p.get("mse_bins") or []
        row += [
            f"{p['query_mse']:.5f}" if "query_mse" in p else "-",
            f"{bins[0]['mse']:.5f}" if bins else "-",
            f"{bins[-1]['mse']:.5f}" if bins else "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_results(results: dict, out: Path) -> list[Path]:
    """mse_vs_horizon.png, train_loss.png, speed.png, and the probe's own bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    runs = results["backbones"]
    title = results["task"]

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in runs.items():
        bins = m["probes"].get("mse_bins")
        if bins:
            ax.plot([(b["start"] + b["end"]) / 2 for b in bins], [b["mse"] for b in bins], marker="o", label=name)
    ax.set(xlabel="imagination step", ylabel="frame MSE", title=f"{title}: imagination MSE vs horizon")
    ax.legend()
    written.append(_save(fig, out / "mse_vs_horizon.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in runs.items():
        ax.plot([r["step"] for r in m["curve"]], [r["loss"] for r in m["curve"]], label=name)
    ax.set(xlabel="gradient step", ylabel="world-model loss", title=f"{title}: training loss")
    ax.set_yscale("symlog")
    ax.legend()
    written.append(_save(fig, out / "train_loss.png"))

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    names = list(runs)
    for ax, key, label in zip(
        axes, ("train_step_ms", "imagine_ms_per_step", "params"), ("train step (ms)", "imagination (ms/step)", "parameters")
    ):
        ax.bar(names, [runs[n]["speed"][key] for n in names])
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=30)
    written.append(_save(fig, out / "speed.png"))

    if results["probe"] == "reward":
        fig, ax = plt.subplots(figsize=(6, 4))
        x = np.arange(len(names))
        for i, mode in enumerate(("inference", "imagination")):
            ax.bar(x + (i - 0.5) * 0.4, [100 * runs[n]["probes"][f"reward_acc_{mode}"] for n in names], 0.4, label=mode)
        ax.set_xticks(x, names)
        ax.set(ylabel="reward accuracy (%)", ylim=(0, 100), title=f"{title}: reward prediction")
        ax.legend()
        written.append(_save(fig, out / "reward_accuracy.png"))
    if results["probe"] == "doors":
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(names, [runs[n]["probes"]["door_mse"] for n in names])
        ax.set(ylabel="MSE of door frames", title=f"{title}: context-dependent recall")
        written.append(_save(fig, out / "door_mse.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["imagination_gif", "results_table", "plot_results"]
