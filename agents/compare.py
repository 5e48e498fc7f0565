"""Offline comparison of world-model backbones on one memory task, with the S4WM probes: `memwm compare`.

The story (Deng, Park, Ahn 2023, "Facing off World Models", at CPU scale):
1. collect (or reuse) a data set of the task's episodes (agents/compare_data.py, on `envs.collect.collect_episodes`);
2. train every backbone on the same batches, from the same seed, for the same number of steps,
   at the same preset (the presets give every backbone about the RSSM's parameter count), through the
   run loop (agents/compare_training.py);
3. probe what each one remembers, on held-out episodes (world_models/probes.py):
   - long-term imagination (memory/rooms-*, memory/teleport): observe the context phase, imagine
     the query phase open-loop with the episode's actions; MSE of imagined vs true frames by
     imagination step, in bins;
   - reward prediction (memory/distracting-*): accuracy of the predicted reward where the task
     decides it, from the posterior (inference) and from imagination after the context;
   - context-dependent recall (memory/doors-keys-*): MSE of the imagined frames that show doors;
   - speed: train step time, imagination time per step, parameter counts;
4. write results.json, results.md (one row per backbone), plots and one imagination GIF per backbone
   (agents/compare_report.py).

Under torchrun the backbones split across the ranks (agents/compare_ranks.py).

The out folder (a rerun with the same --out reuses the data and every finished backbone):

    data/train/*.npz, data/eval/*.npz    episodes (envs.dataset files), data/meta.json what they are
    <backbone>/model.pt                  the trained world model (world_models/saving.py)
    <backbone>/metrics.json              its settings, training curve, probes and speed: the mark of done
    <backbone>/imagination.gif           context (green) then imagination (red) of up to 6 eval episodes
    <backbone>/checkpoints/              while training: the run loop's checkpoints, to resume an interrupted run
    <backbone>/metrics.jsonl             the training scalars as the run loop logs them
    results.json, results.md, mse_vs_horizon.png, train_loss.png, speed.png (+ reward_accuracy.png,
    door_mse.png for their tasks)
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import torch

import envs
import world_models
from agents.common import atomic_write, keep_freed_memory, pick_device
from agents.compare_data import COLLECT_POLICY, default_out, ensure_data, probe_kind, probe_shift, sequence_batches, task_env_id
from agents.compare_report import imagination_gif, plot_results, results_table
from agents.compare_training import train_world_model
from world_models.imagine import model_obs_space
from world_models.probes import imagination_speed, run_probes
from world_models.saving import load_world_model, save_world_model

PROBE_VERSION = 2  # bumped when the probes change; a rerun scores finished backbones again without retraining
# settings added after runs were made, with the value those runs had: a finished backbone without them is reused
ADDED_SETTINGS = {"reward_scale": 1.0}


def same_settings(saved: dict | None, settings: dict) -> bool:
    """Whether a finished backbone's settings are `settings`, reading a missing ADDED_SETTINGS key as its old value."""
    return saved is not None and {**ADDED_SETTINGS, **saved} == {**ADDED_SETTINGS, **settings}


def _write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=1))


def run_compare(
    task: str = "distracting-100",
    backbones: str = "rssm,transformer,s4,s5,mamba",
    preset: str = "small",
    steps: int = 1000,
    episodes: int = 200,
    eval_episodes: int = 32,
    batch_size: int = 8,
    seq_len: int = 0,
    lr: float = 3e-4,
    reward_scale: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    threads: int = 0,
    out: Path | None = None,
) -> dict:
    """Train world-model backbones on the same offline data of a memory task and compare them with the S4WM probes.

    Args:
        task: a memory task: rooms-2|4|10, teleport, distracting-100|200|400, doors-keys-3|5|7 (memory/ optional).
        backbones: comma-separated backbones to compare (rssm, transformer, s4, s5, mamba).
        preset: world-model size preset (tiny, small, medium, large); the backbones match in parameters.
        steps: gradient steps per backbone.
        episodes: scripted training episodes to collect.
        eval_episodes: held-out scripted episodes the probes run on.
        batch_size: sequences per batch.
        seq_len: steps per training sequence; 0 = the longest episode (sequences start at episode starts).
        lr: Adam learning rate.
        reward_scale: weight of the reward loss (WorldModelConfig.reward_scale). The losses are means over all
            steps, and memory/distracting-L decides its reward at one step in L + 2, so at 1.0 that step weighs
            about 1/(L + 2) of a frame's reconstruction.
        seed: one seed for the data, the initial weights and the batch order of every backbone.
        device: auto, cpu or cuda.
        threads: torch CPU threads; 0 = torch's default (1 suits a CPU shared with other jobs).
        out: the output folder; default runs/compare-<task>. Rerunning reuses its data and finished backbones.
    """
    env_id = task_env_id(task)
    kind = probe_kind(env_id)
    shift = probe_shift(env_id)
    names = [b.strip() for b in backbones.split(",") if b.strip()]
    unknown = [b for b in names if b not in world_models.BACKBONES]
    if unknown or not names:
        raise ValueError(f"unknown backbones {unknown or names}; known: {', '.join(world_models.BACKBONES)}")
    for name, value in (("steps", steps), ("episodes", episodes), ("eval_episodes", eval_episodes), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if seq_len < 0:
        raise ValueError(f"--seq-len must be >= 0 (0 = whole episodes), got {seq_len}")
    if not reward_scale > 0:
        raise ValueError(f"--reward-scale must be > 0, got {reward_scale}")
    if threads < 0:
        raise ValueError(f"--threads must be >= 0 (0 = torch's default), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    config = world_models.WorldModelConfig.preset(preset, reward_scale=reward_scale)
    dev = pick_device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    out = Path(out) if out is not None else default_out(env_id)
    out.mkdir(parents=True, exist_ok=True)

    data = ensure_data(env_id, out / "data", episodes, eval_episodes, seed, COLLECT_POLICY[kind])
    env = envs.make(env_id, seed=seed)
    obs_space = model_obs_space(env.observation_space)
    act_space = env.action_space
    env.close()
    L = seq_len or max(len(ep["action"]) for ep in data["train"])
    settings = {
        "task": env_id,
        "preset": preset,
        "steps": steps,
        "episodes": episodes,
        "eval_episodes": eval_episodes,
        "batch_size": batch_size,
        "seq_len": L,
        "lr": lr,
        "reward_scale": reward_scale,
        "seed": seed,
    }

    results = {"task": env_id, "probe": kind, "settings": settings, "backbones": {}}
    for name in names:
        folder = out / name
        done = folder / "metrics.json"
        if done.exists() and same_settings(json.loads(done.read_text()).get("settings"), settings) and (folder / "model.pt").exists():
            metrics = json.loads(done.read_text())
            if metrics.get("probe_version") != PROBE_VERSION:  # trained before the probes changed: score it again
                print(f"compare: re-probing {name} from {folder / 'model.pt'} (probes v{PROBE_VERSION})")
                wm = load_world_model(folder / "model.pt", dev).wm
                metrics["probes"] = run_probes(wm, kind, data["eval"], act_space, dev, shift)
                metrics["probe_version"] = PROBE_VERSION
                _write_json(done, metrics)
            else:
                print(f"compare: reusing {name} from {folder}")
            results["backbones"][name] = metrics
            continue
        torch.manual_seed(seed)
        wm = world_models.make(name, obs_space, act_space, config).to(dev)
        batches = sequence_batches(data["train"], batch_size, L, act_space, dev, seed)
        trained = train_world_model(wm, batches, steps, lr, f"{name} on {env_id}", folder, settings=settings)
        probes = run_probes(wm, kind, data["eval"], act_space, dev, shift)
        speed = {
            "params": int(wm.num_params()),
            "train_step_ms": trained["train_step_ms"],
            "train_wall_s": trained["train_wall_s"],
            "load": trained["load_median"],
            "imagine_ms_per_step": imagination_speed(wm, data["eval"], act_space, dev, shift=shift),
        }
        atomic_write(
            folder / "model.pt",
            functools.partial(save_world_model, wm=wm, backbone=name, config=config, env=env_id, obs_space=obs_space, act_space=act_space),
        )
        if "image" in obs_space.spaces:
            imagination_gif(wm, data["eval"], act_space, dev, folder / "imagination.gif", shift=shift)
        metrics = {
            "backbone": name,
            "settings": settings,
            "speed": speed,
            "probes": probes,
            "curve": trained["curve"],
            "probe_version": PROBE_VERSION,
        }
        _write_json(done, metrics)
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # finished: metrics.json and model.pt are what stays
        results["backbones"][name] = metrics
        del wm

    _write_json(out / "results.json", results)
    (out / "results.md").write_text(results_table(results))
    plot_results(results, out)
    return results


__all__ = ["run_compare"]
