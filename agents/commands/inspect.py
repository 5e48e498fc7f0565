"""`memwm inspect`: what a trained backbone remembers, and for how long.

For a run's backbone (a Dreamer world model's, a `memwm compare` backbone's, or a PPO agent's memory)
it writes, into RUN/inspect/:
- timescales.png / .json: for SSM backbones (s4, s5, mamba), the distribution of each layer's state
  half-lives in env steps (world_models/retention.py), against the task's memory horizon; mamba's at
  each channel's median step size over the probe episodes;
- retention.png / .json: on a task whose spec declares a cue (`envs.spec(id).cue`), a linear
  probe's held-out accuracy at reading the cue from the backbone's output at each step since the cue
  was first in view;
- chain.png / .json: for a `memwm train` run that logged the learning chain (agents/chain.py: the
  `chain/*` scalars of metrics.jsonl), each link's curve over training against its chance level,
  and the latest values printed.
Probe episodes are played fresh with the task's scripted policy (random actions where it has none),
half of them to fit the probes, half held out to score them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

import envs
from agents.chain import LastInfo
from agents.common import atomic_write, pick_device
from agents.logger import read_metrics
from agents.runs import find_model_file, load_run_config, load_run_world_model, run_folder
from envs.collect import play_episode
from world_models.figures import figure_image, write_png
from world_models.imagine import episodes_to_batch
from world_models.backbones.mamba import SelectiveSSM
from world_models.retention import Episode, recorded_step_sizes, retention_curve, ssm_layers, state_half_lives


@dataclass
class Memory:
    """A run's backbone: `outputs(episode) -> (T, F)` its output at every step of one episode."""

    backbone: torch.nn.Module
    name: str  # the backbone's name (s5, rssm, ...)
    env: str
    env_options: dict
    outputs: Callable[[dict[str, np.ndarray]], Tensor]
    source: Path


def load_memory(run: Path, device: torch.device) -> Memory:
    """The backbone of a `memwm train` run (Dreamer or PPO), a compare backbone folder or a world-model file."""
    run = Path(run)
    path = find_model_file(run)
    folder = run_folder(path)
    if (folder / "config.yaml").exists() and load_run_config(folder).agent == "ppo":
        return _ppo_memory(folder, device)
    loaded = load_run_world_model(run, device)
    wm = loaded.wm

    @torch.no_grad()
    def outputs(episode: dict[str, np.ndarray]) -> Tensor:
        batch = episodes_to_batch([episode], loaded.act_space, device)
        obs = {k: batch[k] for k in ("image", "vector") if k in batch}
        features = wm.observe(obs, batch["action"], batch["is_first"], sample=False)[2]  # (1, T, F)
        return features[0, :, : wm.h_dim].float().cpu()  # the backbone's output h_t

    return Memory(wm.backbone, loaded.backbone, loaded.env, loaded.env_options, outputs, loaded.path)


def _ppo_memory(folder: Path, device: torch.device) -> Memory:
    from agents import ppo_agent
    from agents.runs import latest_checkpoint

    config = load_run_config(folder)
    payload, path = latest_checkpoint(folder, device)
    learner = ppo_agent.build(config, device)
    learner.load_state_dict(payload["agent"])
    model = learner.model.eval()

    @torch.no_grad()
    def outputs(episode: dict[str, np.ndarray]) -> Tensor:
        obs = {k: torch.as_tensor(episode[k][None], device=device) for k in model.keys}
        is_first = torch.zeros(1, len(episode["action"]), dtype=torch.bool, device=device)
        is_first[:, 0] = True
        return model.backbone(model.encode(obs), is_first)[0][0].float().cpu()  # (T, F)

    return Memory(model.backbone, config.backbone, config.env, dict(config.env_options), outputs, path)


def play_episodes(env_id: str, options: dict, count: int, seed: int) -> list[tuple[dict[str, np.ndarray], int, int]]:
    """`count` episodes (seeds seed, seed + 1, ...) with their cue class and the step it was first seen
    (-1 and -1 on a task without a cue)."""
    env = LastInfo(envs.make(env_id, **options))
    try:
        try:
            act = envs.scripted_policy(env)
        except ValueError:  # only some tasks have a scripted policy
            env.action_space.seed(seed)
            act = lambda obs: env.action_space.sample()  # noqa: E731
        out = []
        for i in range(count):
            episode = play_episode(env, act, seed + i)
            out.append((episode, int(env.info.get("cue", -1)), int(env.info.get("cue_step", -1))))
    finally:
        env.close()
    return out


def timescales(memory: Memory, horizon: int | None, played: list, out: Path) -> list[Path]:
    """The half-life histogram of each SSM layer: a PNG and a JSON (per layer: the histogram and quantiles).
    A selective SSM's step sizes are recorded while the backbone reads the `played` episodes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    step_sizes = None
    if any(isinstance(layer, SelectiveSSM) for layer in ssm_layers(memory.backbone)):
        with recorded_step_sizes(memory.backbone) as step_sizes:
            for episode, _, _ in played:
                memory.outputs(episode)
    lives = [h.numpy() for h in state_half_lives(memory.backbone, step_sizes)]  # one (S,) per layer, in env steps
    finite = np.concatenate([h[np.isfinite(h)] for h in lives])
    lo, hi = max(float(finite.min()), 1e-3), max(float(finite.max()), 1.0)
    edges = np.logspace(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1e-9, 25)
    layers = []
    fig = Figure(figsize=(6, 1.6 * len(lives) + 0.8), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(lives), 1, sharex=True, squeeze=False)[:, 0]
    for i, (h, ax) in enumerate(zip(lives, axes)):
        counts, _ = np.histogram(h[np.isfinite(h)], edges)
        q = np.quantile(h, [0.0, 0.1, 0.5, 0.9, 1.0])
        layers.append(
            {
                "layer": i,
                "kind": type(ssm_layers(memory.backbone)[i]).__name__,
                "states": int(h.size),
                "counts": counts.tolist(),
                "unbounded": int((~np.isfinite(h)).sum()),
                "quantiles": dict(zip(("min", "p10", "median", "p90", "max"), q.tolist())),
            }
        )
        ax.hist(h[np.isfinite(h)], edges, color="tab:blue")
        ax.set_xscale("log")
        ax.set_ylabel(f"layer {i}\nstates", fontsize=8)
        if horizon:
            ax.axvline(horizon, color="tab:red", ls="--", lw=1, label="memory horizon" if i == 0 else None)
    axes[-1].set_xlabel("half-life of |exp(dt * lambda)| (env steps)")
    if horizon:
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{memory.name} on {memory.env}: how far back each layer remembers", fontsize=10)
    record = {
        "run": str(memory.source),
        "backbone": memory.name,
        "env": memory.env,
        "memory_horizon": horizon,
        "unit": "env steps",
        "step_size": "median over the episodes' steps" if step_sizes else "the layers' own",
        "episodes": len(played) if step_sizes else 0,
        "edges": edges.tolist(),
        "layers": layers,
    }
    return [write_png(out / "timescales.png", figure_image(fig)), _write_json(out / "timescales.json", record)]


def retention(memory: Memory, played: list, max_delay: int, seed: int, out: Path) -> list[Path]:
    """The cue probe's held-out accuracy by delay on the `played` episodes (half fit, half held out): a PNG and a JSON."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seen = [Episode(memory.outputs(ep), cue, step) for ep, cue, step in played]
    classes = max(e.cue for e in seen) + 1
    half = len(seen) // 2
    delay = max_delay or max(len(e.features) - max(e.cue_step, 0) - 1 for e in seen)
    curve = retention_curve(seen[:half], seen[half:], max(classes, 2), delay)
    fig = Figure(figsize=(6, 3.2), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    acc = np.array([np.nan if a is None else a for a in curve["accuracy"]])
    ax.plot(curve["delay"], acc, marker=".", color="tab:blue", label="held-out accuracy")
    if curve["chance"] is not None:
        ax.axhline(curve["chance"], color="grey", ls="--", lw=1, label="chance (most frequent cue)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("steps since the cue was first seen")
    ax.set_ylabel("linear probe accuracy")
    ax.legend(fontsize=8)
    ax.set_title(f"{memory.name} on {memory.env}: reading the cue from the backbone", fontsize=10)
    record = {
        "run": str(memory.source),
        "backbone": memory.name,
        "env": memory.env,
        "episodes": len(seen),
        "train_episodes": half,
        "classes": classes,
        "seed": seed,
        **curve,
    }
    return [write_png(out / "retention.png", figure_image(fig)), _write_json(out / "retention.json", record)]


# each panel of the chain figure: (title, [(scalar, label)], its chance scalar, the y-axis label)
CHAIN_PANELS = (
    ("the observed symbol in the latent, read by a linear probe", [("chain/z_seen", "z_t")], "chain/seen_majority", "held-out accuracy"),
    (
        "the needed symbol in the backbone, read by a linear probe",
        [("chain/h_probe", "h_t"), ("chain/h_probe_k", "h_t, K steps back")],
        "chain/probe_majority",
        "held-out accuracy",
    ),
    ("the reward head: the reward's sign", [("chain/reward_sign", "reward head")], "chain/reward_sign_majority", "accuracy"),
    ("imagination ranks the right action first", [("chain/imagined_rank", "imagined return")], "chain/imagined_rank_chance", "accuracy"),
    (
        "the actor's mode is the right action",
        [("chain/actor_right", "actor"), ("chain/right_below_floor", "right action below the unimix floor")],
        "chain/actor_right_chance",
        "share",
    ),
    ("the actor at the query steps", [("chain/actor_entropy", "entropy")], None, "nats"),
)


def chain(folder: Path, out: Path) -> list[Path]:
    """The learning chain's curves from a run's metrics.jsonl (agents/chain.py): a PNG and a JSON of the curves
    and the latest values, which are printed; [] when the run logged none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves: dict[str, list[list[float]]] = {}  # scalar -> [[step, value], ...]
    for record in read_metrics(folder):
        for name, value in record.items():
            if name.startswith("chain/") and isinstance(value, (int, float)):
                curves.setdefault(name, []).append([int(record["step"]), float(value)])
    if not curves:
        return []
    latest = {name: points[-1][1] for name, points in curves.items()}
    fig = Figure(figsize=(6, 2.0 * len(CHAIN_PANELS) + 0.6), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(CHAIN_PANELS), 1, sharex=True)
    for ax, (title, lines, chance, ylabel) in zip(axes, CHAIN_PANELS):
        for name, label in lines:
            if name in curves:
                steps, values = np.array(curves[name]).T
                ax.plot(steps, values, marker=".", label=label)
        if chance == "chain/probe_majority" and "chain/probe_k_majority" in curves:
            steps, values = np.array(curves["chain/probe_k_majority"]).T
            ax.plot(steps, values, color="grey", ls=":", lw=1, label="majority, K steps back")
        if chance in curves:
            steps, values = np.array(curves[chance]).T
            ax.plot(steps, values, color="grey", ls="--", lw=1, label="chance")
        if ylabel != "nats":
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        if ax.lines:
            ax.legend(fontsize=7)
    axes[-1].set_xlabel("env step")
    fig.suptitle(f"the learning chain of {folder.name}", fontsize=10)
    print(f"the learning chain at step {max(p[-1][0] for p in curves.values())}:")
    for name in sorted(latest):
        print(f"  {name:<28} {latest[name]:.3f}")
    record = {"run": str(folder), "latest": latest, "curves": curves}
    return [write_png(out / "chain.png", figure_image(fig)), _write_json(out / "chain.json", record)]


def _write_json(path: Path, record: dict) -> Path:
    atomic_write(path, json.dumps(record, indent=1) + "\n")
    return path


def inspect(run: Path, episodes: int = 64, max_delay: int = 0, out: Path | None = None, seed: int = 0, device: str = "auto") -> list[Path]:
    """See what a run's backbone remembers: SSM state timescales, a cue probe's retention curve, and the
    learning chain the run logged (probes of z_t and h_t, the reward head's sign, imagination's ranking of
    the right action, the actor's entropy; agents/chain.py).

    Args:
        run: a `memwm train` run folder (Dreamer or PPO), a `memwm compare` backbone folder, or a model file.
        episodes: probe episodes on a task with a cue, half to fit the probes, half held out (mamba's
            step sizes are recorded on them too).
        max_delay: the longest delay after the cue to probe; 0 = as long as the episodes allow.
        out: the folder of the pictures and JSON files; default RUN/inspect.
        seed: the first probe episode's seed.
        device: auto, cpu or cuda.
    """
    if episodes < 4:
        raise ValueError(f"--episodes must be >= 4 (half fit the probes, half score them), got {episodes}")
    if max_delay < 0:
        raise ValueError(f"--max-delay must be >= 0, got {max_delay}")
    memory = load_memory(Path(run), pick_device(device))
    spec = envs.spec(memory.env)
    has_ssm, has_cue = bool(ssm_layers(memory.backbone)), spec.cue
    folder = run_folder(memory.source)
    has_chain = any(name.startswith("chain/") for record in read_metrics(folder) for name in record)
    if not (has_ssm or has_cue or has_chain):
        raise ValueError(
            f"nothing to inspect in {run}: backbone {memory.name!r} has no SSM state timescales "
            f"(s4, s5 and mamba have), {memory.env} declares no cue to probe (envs.spec(id).cue) "
            "and the run logged no learning chain (chain/* in metrics.jsonl)"
        )
    out = Path(out) if out is not None else folder / "inspect"
    selective = any(isinstance(layer, SelectiveSSM) for layer in ssm_layers(memory.backbone))
    played = play_episodes(memory.env, memory.env_options, episodes, seed) if has_cue or selective else []
    written = []
    if has_ssm:
        written += timescales(memory, spec.memory_horizon, played, out)
    if has_cue:
        written += retention(memory, played, max_delay, seed, out)
    if has_chain:
        written += chain(folder, out)
    print(f"inspected {memory.name} on {memory.env} ({memory.source}): " + ", ".join(str(p) for p in written))
    return written
