"""Offline comparison of world-model backbones on one memory task, with the S4WM probes: `memwm compare`.

The story (Deng, Park, Ahn 2023, "Facing off World Models", at CPU scale):
1. collect (or reuse) a data set of the task's episodes (`envs.collect.collect_episodes`);
2. train every backbone on the same batches, from the same seed, for the same number of steps,
   at the same preset (the presets give every backbone about the RSSM's parameter count);
3. probe what each one remembers, on held-out episodes (world_models/probes.py):
   - long-term imagination (memory/rooms-*, memory/teleport): observe the context phase, imagine
     the query phase open-loop with the episode's actions; MSE of imagined vs true frames by
     imagination step, in bins;
   - reward prediction (memory/distracting-*): accuracy of the predicted reward where the task
     decides it, from the posterior (inference) and from imagination after the context;
   - context-dependent recall (memory/doors-keys-*): MSE of the imagined frames that show doors;
   - speed: train step time, imagination time per step, parameter counts;
4. write results.json, results.md (one row per backbone), plots and one imagination GIF per backbone.

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

import datetime
import functools
import inspect
import json
import os
import shutil
import time
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch

import envs
import world_models
from agents import distributed
from agents.common import atomic_write, keep_freed_memory, pick_device
from agents.loop import Acted
from envs.collect import collect_episodes
from envs.dataset import SequenceSampler, load_episodes
from world_models.imagine import decode_frames, episodes_to_batch, model_obs_space, open_loop
from world_models.probes import imagination_speed, junction_arm, probe_context, run_probes
from world_models.saving import load_world_model, save_world_model
from world_models.video import imagination_video, write_video

# The data's policy per probe. The reward probe records uniform random actions: the scripted policy of
# memory/distracting-* always takes the cue's arm, so every reward would be +1 and predicting it would
# need no memory. Of those it keeps the episodes that took arm REWARD_ARM at the junction (the arm is
# drawn independently of the cue, so they are episodes of a policy that always takes that arm): the
# reward is then +1 or -1 by the cue alone. With every arm kept, the reward is an XOR of the cue and
# the arm, which a world model learns only after several times the steps for the same memory
# (benchmarks/results/compare-distracting-100).
COLLECT_POLICY = {"imagination": "scripted", "reward": "random", "doors": "scripted"}
REWARD_ARM = 0
PROBE_VERSION = 2  # bumped when the probes change; a rerun scores finished backbones again without retraining
VIDEO_CONTEXT = 8  # context frames shown before the imagined ones in the GIFs
VIDEO_HORIZON = 128  # at most this many imagined frames in the GIFs


# --------------------------------------------------------------------------- task and data


def task_env_id(task: str) -> str:
    """`distracting-100` or `memory/distracting-100` -> `memory/distracting-100` (a registered task with a compare probe)."""
    env_id = task if "/" in task else f"memory/{task}"
    known = [i for i in envs.ids() if i.startswith("memory/") and envs.spec(i).probe is not None]
    if env_id not in known:
        raise ValueError(f"unknown compare task {task!r}; known: {', '.join(i.split('/', 1)[1] for i in known)}")
    return env_id


def default_out(env_id: str) -> Path:
    """The out folder when --out is not given: runs/compare-<task>."""
    return Path("runs") / f"compare-{env_id.split('/', 1)[1]}"


def probe_kind(env_id: str) -> str:
    """Which S4WM probe a memory task gets (its spec's `probe` fact): imagination, reward or doors."""
    kind = envs.spec(env_id).probe if env_id in envs.ids() else None
    if kind is None:
        tasks = [i for i in envs.ids() if envs.spec(i).probe is not None]
        raise ValueError(f"no compare probe for {env_id!r}; tasks: {', '.join(tasks)}")
    return kind


def probe_shift(env_id: str) -> int:
    """Steps the probes observe past the query start before imagining (the spec's `unseen_query_steps`)."""
    return envs.spec(env_id).unseen_query_steps


def ensure_data(env_id: str, folder: Path, episodes: int, eval_episodes: int, seed: int, policy: str = "scripted") -> dict[str, list]:
    """The train and eval episodes in `folder`, collected with `policy` unless already there.

    Train and eval episodes come from different seeds, so the probes run on episodes never trained on.
    """
    arm = REWARD_ARM if probe_kind(env_id) == "reward" else None
    meta = {"env": env_id, "episodes": episodes, "eval_episodes": eval_episodes, "seed": seed, "policy": policy}
    if arm is not None:
        meta["arm"] = arm
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) != meta:
        old = json.loads(meta_path.read_text())
        raise ValueError(f"{folder} holds a data set for {old}, not {meta}; use another --out or the same settings")
    data = {}
    for split, count, split_seed in (("train", episodes, seed), ("eval", eval_episodes, seed + 1_000_003)):
        path = folder / split
        # about half of the random episodes take the arm: collect twice as many and 4 standard deviations more
        want = count if arm is None else 2 * count + 8 * int(np.ceil(np.sqrt(count))) + 16
        have = len(list(path.glob("*.npz"))) if path.is_dir() else 0
        if have < want:
            if have:  # a collection that was interrupted: start the split again, same seed, same episodes
                for f in path.glob("*.npz"):
                    f.unlink()
            collect_episodes(env_id, want, policy, path, split_seed, progress=False)
        eps = load_episodes(path)[:want]
        if arm is not None:
            eps = [ep for ep in eps if junction_arm(ep) == arm]
            if len(eps) < count:
                raise ValueError(f"only {len(eps)} of {want} random {split} episodes took arm {arm}, {count} needed; use another --seed")
        data[split] = eps[:count]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(meta_path, json.dumps(meta, indent=1))
    return data


def sequence_batches(episodes: list[dict], batch_size: int, seq_len: int, act_space, device, seed: int):
    """Endless training batches of (B, L, ...) tensors; the same seed gives every backbone the same batches.

    With L at least the longest episode (the default), each sequence is a whole episode from its
    start, so that the cue and the query are inside every sequence the models learn from; an
    episode shorter than L is followed by another (its first step flagged is_first). A shorter L
    takes windows at random offsets inside episodes (envs.dataset.SequenceSampler), which covers
    every part of long episodes but teaches memory only within a window.
    """
    if seq_len < max(len(ep["action"]) for ep in episodes):
        sampler = SequenceSampler(episodes, seq_len, seed=seed, within_episode=True)
        while True:
            yield episodes_to_batch([sampler.sample() for _ in range(batch_size)], act_space, device, length=seq_len)
    rng = np.random.default_rng(seed)
    while True:
        seqs = []
        for _ in range(batch_size):
            parts, n = [], 0
            while n < seq_len:
                ep = episodes[rng.integers(len(episodes))]
                T = len(ep["action"])
                take = min(T, seq_len - n)
                parts.append({k: v[:take] for k, v in ep.items() if v.ndim and len(v) == T})  # per-step arrays only
                n += take
            seqs.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if len(parts) > 1 else parts[0])
            starts = np.cumsum([0] + [len(p["action"]) for p in parts[:-1]])
            seqs[-1]["is_first"] = np.asarray(seqs[-1]["is_first"], bool).copy()
            seqs[-1]["is_first"][starts] = True
        yield episodes_to_batch(seqs, act_space, device, length=seq_len)


# --------------------------------------------------------------------------- training


class OfflineWorldModel:
    """Adam on `wm.loss` over a stream of batches, behind the run loop's Agent protocol (agents/loop.py):
    `act` takes the next batch, `update` trains on it. Besides the weights and the optimiser its state
    holds the training curve (a row every `log_every` steps and at the last), the time of every step and
    the machine's 1-minute load average at the logged steps (timings on a shared machine mean little
    without it); a resume skips the batches already trained on, so that the batch order stays the same."""

    def __init__(self, wm, batches, steps: int, lr: float, log_every: int = 10):
        self.wm, self.module, self.batches = wm, wm, batches
        self.steps, self.log_every = steps, log_every
        self.opt = torch.optim.Adam(wm.parameters(), lr=lr, eps=1e-8)
        self.curve: list[dict] = []
        self.times: list[float] = []
        self.load = [os.getloadavg()[0]]
        self.taken = 0  # batches taken from the stream
        self.batch = None

    def begin(self, counters) -> None:
        self.wm.train()

    def act(self, counters) -> Acted:
        self.batch = next(self.batches)
        self.taken += 1
        return Acted(1)

    def update(self, counters) -> tuple[int, dict[str, float]]:
        step = counters["step"] - 1  # the batch `act` took
        t0 = time.perf_counter()
        loss, metrics = self.wm.loss(self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.wm.parameters(), 100.0)  # DreamerV3 clips world-model gradients
        self.opt.step()
        if loss.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t0)
        scalars = {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items() if k.startswith("loss/") or k == "kl"}}
        if step % self.log_every == 0 or step == self.steps - 1:
            self.load.append(os.getloadavg()[0])
            self.curve.append(
                {
                    "step": step,
                    **{k: v for k, v in scalars.items() if k == "loss"},
                    "load": self.load[-1],
                    **{k: v for k, v in scalars.items() if k != "loss"},
                }
            )
        return 1, {f"train/{k}": v for k, v in scalars.items()}

    def evaluate(self, episodes: int, seed: int, step: int, logger) -> dict[str, float]:
        """Nothing: the probes run on held-out episodes after training (world_models/probes.py)."""
        return {}

    def pictures(self, seed: int, step: int, logger) -> None:
        """Nothing: the imagination GIF is drawn after training."""

    def state_dict(self) -> dict:
        return {
            "model": self.wm.state_dict(),
            "optimiser": self.opt.state_dict(),
            "curve": self.curve,
            "times": self.times,
            "load": self.load,
            "taken": self.taken,
        }

    def load_state_dict(self, state: dict) -> None:
        self.wm.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimiser"])
        self.curve, self.times, self.load = state["curve"], state["times"], state["load"]
        for _ in range(state["taken"] - self.taken):
            next(self.batches)
        self.taken = state["taken"]

    def close(self) -> None:
        self.wm.eval()


def train_world_model(
    wm, batches, steps: int, lr: float, desc: str, folder: Path, log_every: int = 10, save_every: int = 25, settings: dict | None = None
) -> dict:
    """Train `wm` on `steps` batches through the run loop in `folder`; returns the training curve, the median
    step time, the wall time of this call and the median load average of the machine while it ran.

    Checkpoints go to folder/checkpoints every `save_every` steps; one made with the same `settings` is
    continued from (one with other settings is removed: the training starts again).
    """
    from agents import checkpoint
    from agents.loop import Loop, LoopConfig

    identity = {"agent": "world-model", **(settings or {})}
    agent = OfflineWorldModel(wm, batches, steps, lr, log_every)
    config = LoopConfig(
        steps=steps, checkpoint_every=save_every, log_every=log_every, tensorboard=False, desc=desc, leave=False, data_parallel=False
    )
    loop = Loop(agent, folder, config, identity)  # holds the folder's lock from here: the removal below is ours to make
    found = checkpoint.load(folder / "checkpoints", map_location=wm.device)
    if found is not None and found[0]["identity"] != identity:
        shutil.rmtree(folder / "checkpoints")
    if loop.resume() is not None:
        print(f"compare: {desc}: resuming at step {loop.counters['step']} from {folder / 'checkpoints'}")
    started = time.perf_counter()
    loop.run()
    times = agent.times
    warm = times[min(3, len(times) - 1) :] if times else [float("nan")]
    return {
        "curve": agent.curve,
        "train_step_ms": 1000.0 * float(np.median(warm)),
        "train_wall_s": time.perf_counter() - started,
        "load_median": float(np.median(agent.load)),
    }


# --------------------------------------------------------------------------- pictures


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


# --------------------------------------------------------------------------- the command


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


# settings added after runs were made, with the value those runs had: a finished backbone without them is reused
# ---------------------------------------------------------------------------------------------- under torchrun
# Each backbone's training is independent, needs no communication, and gives the same result as in one
# process (same data, seed and batches), which data parallelism within a backbone would not: the
# backbones split across the ranks.
COMPARE_TIMEOUT = datetime.timedelta(days=2)  # compare's ranks wait for the slowest backbone at the end


def split_backbones(compare_fn: Callable) -> Callable:
    """`agents.compare.run_compare` with the same flags, with its backbones split across torchrun's ranks.

    Rank 0 collects the data set first; then rank r trains backbones r, r + N, ... (rank 0 in the
    out folder, the others in `out/.rank-<r>` with the data linked in, moving each finished
    backbone folder into `out`); then rank 0 runs the comparison again, which reuses every trained
    backbone, and writes results.json, results.md and the plots. One process: compare itself.
    """

    @functools.wraps(compare_fn)
    def compare(*args, **kwargs):
        if distributed.world_size() == 1:
            return compare_fn(*args, **kwargs)
        bound = inspect.signature(compare_fn).bind(*args, **kwargs)
        bound.apply_defaults()
        a = dict(bound.arguments)
        distributed.init(torch.device(pick_device(a["device"]).type), timeout=COMPARE_TIMEOUT)
        env_id = task_env_id(a["task"])
        names = [b.strip() for b in a["backbones"].split(",") if b.strip()]
        out = Path(a["out"]) if a["out"] is not None else default_out(env_id)
        if distributed.is_main():
            ensure_data(env_id, out / "data", a["episodes"], a["eval_episodes"], a["seed"], COLLECT_POLICY[probe_kind(env_id)])
        distributed.barrier()
        mine = names[distributed.rank() :: distributed.world_size()]
        if mine:
            folder = out if distributed.is_main() else out / f".rank-{distributed.rank()}"
            if not distributed.is_main():
                folder.mkdir(parents=True, exist_ok=True)
                if not (folder / "data").exists():
                    (folder / "data").symlink_to(Path("..") / "data")
            compare_fn(**{**a, "backbones": ",".join(mine), "out": folder})
            if not distributed.is_main():
                for name in mine:
                    if (out / name).exists():
                        shutil.rmtree(out / name)
                    os.replace(folder / name, out / name)
                shutil.rmtree(folder)
        distributed.barrier()
        if not distributed.is_main():
            return None
        return compare_fn(**{**a, "out": out})

    return compare


ADDED_SETTINGS = {"reward_scale": 1.0}


def same_settings(saved: dict | None, settings: dict) -> bool:
    """Whether a finished backbone's settings are `settings`, reading a missing ADDED_SETTINGS key as its old value."""
    return saved is not None and {**ADDED_SETTINGS, **saved} == {**ADDED_SETTINGS, **settings}


def _write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=1))


# --------------------------------------------------------------------------- reporting


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


__all__ = [
    "run_compare",
    "task_env_id",
    "probe_kind",
    "probe_shift",
    "ensure_data",
    "sequence_batches",
    "train_world_model",
    "imagination_gif",
    "results_table",
    "plot_results",
]
