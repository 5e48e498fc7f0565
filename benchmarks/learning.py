"""Learning benchmarks: how fast `memwm train --env ID`, with its defaults and nothing else, learns memory tasks.

    python -m benchmarks.learning --tasks distracting-100 --backbones s5 --seeds 0 1 2 --parallel 2
    python -m benchmarks.learning --tasks cartpole-positions --minutes 8
    python -m benchmarks.learning --plot-only --tasks distracting-100      # redraw the curves from the result files

Each run is the command a user types, `memwm train --env ID --backbone B --seed S`, in its own process
with one torch thread and a wall-clock budget (`--minutes`, default the task's bar); the benchmark adds
no setting of its own. While a run trains the benchmark reads its metrics.jsonl to stamp every
evaluation with the minutes it came at. When the run stops (its budget, its step cap, or a failure)
the benchmark writes one new result file for it through benchmarks.record (benchmarks/results/learning-<task>/),
with the commit, the command, the machine, the load average over the run, the evaluation curve, and the
final checkpoint's score on HELD_OUT_EPISODES fresh episodes (memwm's evaluator, after the run ends). After
every call it draws, for each task, success (or return) against env steps and against minutes, the mean
and range over the seeds of each backbone, from every result file of the newest commit-and-budget
(learning-<task>/curves.png), and prints the table: per backbone the seeds, the mean and worst final
score, and how many seeds met the bar within its minutes.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import tyro

from agents import config
from benchmarks import record


@dataclass(frozen=True)
class Task:
    env: str
    metric: str  # "success" (goal tasks) or "return"
    bar: float  # the score to reach ...
    minutes: float  # ... within this many minutes of training (the default budget)
    options: tuple[tuple[str, float], ...] = ()  # constructor options of the env (`memwm train --env-options`)


# What `memwm train --env ID` must reach within its minutes of one CPU thread (the bar), per task.
TASKS: dict[str, Task] = {
    "cartpole-positions": Task("pomdp/cartpole-positions", "return", 300.0, 8.0),
    "distracting-100": Task("memory/distracting-100", "success", 0.9, 45.0),
    "minigrid-s7": Task("minigrid/memory-s7", "success", 0.9, 60.0),
    "recall-k8": Task("memory/recall-k8", "return", 0.9, 30.0),
    "count-16": Task("memory/count-16", "return", 0.9, 30.0),
    # recall-k8 in two more reward units (x1/32 and x32; the bar scales with the best return): a learner indifferent
    # to the reward's unit learns the three alike (issue 19)
    "recall-k8-reward-x1-32": Task("memory/recall-k8", "return", 0.9 / 32, 30.0, (("reward_scale", 1 / 32),)),
    "recall-k8-reward-x32": Task("memory/recall-k8", "return", 0.9 * 32, 30.0, (("reward_scale", 32.0),)),
}


# Fresh episodes of every run's final evaluation (benchmarks.peers scores every arm on as many): enough that a
# policy at chance cannot pass for one at the bar, where the in-run evaluations play the run's eval_episodes.
HELD_OUT_EPISODES = 32


@dataclass
class Args:
    tasks: list[str] = field(default_factory=lambda: ["distracting-100"])
    backbones: list[str] = field(default_factory=lambda: ["s5"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    minutes: float = 0.0
    """wall-clock minutes of training per run; 0 = the task's bar"""
    parallel: int = 2
    """runs at a time, one process and one torch thread each"""
    runs: str = "runs/bench"
    """folder of the benchmark's run folders (a fresh one per run)"""
    plot_only: bool = False
    """only redraw the curves and print the table from the result files"""
    flags: str = ""
    """a variant: extra `memwm train` flags for every run (e.g. --flags="--wm.objective barlow"), recorded with the
    result; the defaults are measured with none"""


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a metrics.jsonl (a torn last line is skipped)."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def train_args(name: str, backbone: str = "s5", flags: str = "") -> list[str]:
    """The arguments after `memwm train` that choose the learner of task `name` (its env and options, the backbone and
    the variant's flags); run_one adds the ones that name the run (seed, budget, threads, folder)."""
    task = TASKS[name]
    args = ["--env", task.env, "--backbone", backbone, *flags.split()]
    if task.options:
        args += ["--env-options", *(str(x) for option in task.options for x in option)]
    return args


def run_one(name: str, backbone: str, seed: int, minutes: float, runs: Path, flags: str = "") -> subprocess.Popen:
    """Start `memwm train` for one run; the caller polls it with `watch`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    slug = "".join(c if c.isalnum() else "-" for c in flags).strip("-")
    run_dir = runs / "-".join(filter(None, (name, backbone, slug, str(seed), stamp)))
    run = ["--seed", str(seed), "--minutes", f"{minutes:g}", "--steps", "10000000", "--threads", "1", "--run", str(run_dir)]
    cmd = [sys.executable, "-m", "agents.cli", "train", *train_args(name, backbone, flags), *run]
    return launch(cmd, run_dir, task=name, backbone=backbone, flags=flags, seed=seed, minutes=minutes)


def launch(cmd: list[str], run_dir: Path, **facts) -> subprocess.Popen:
    """Start `cmd` (a `memwm train` into `run_dir`, one thread) with its output in `<run_dir>.log`; the process
    carries `facts` and what `watch` and the caller's finish read (`proc.memwm`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir.with_name(run_dir.name + ".log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    proc.memwm = {
        **facts,
        "run_dir": run_dir,
        "cmd": cmd,
        "start": time.time(),
        "started": record.start(),
        "loads": [],
        "stamps": {},
        "log": log,
    }
    return proc


def watch(proc: subprocess.Popen) -> None:
    """Stamp the run's new evaluations, learning-chain measurements and finished training episodes with the minutes
    since it started (to the poll: every 10 s); sample the load."""
    info = proc.memwm
    elapsed = (time.time() - info["start"]) / 60
    info["loads"].append(round(os.getloadavg()[0], 2))
    for r in read_jsonl(info["run_dir"] / "metrics.jsonl"):
        stamped = "eval/return" in r or "episode/return" in r or any(k.startswith("chain/") for k in r)
        if stamped and r["step"] not in info["stamps"]:
            info["stamps"][r["step"]] = round(elapsed, 2)


def schedule(queue: list[tuple], start, poll, finish, parallel: int) -> None:
    """Run the jobs of `queue` (the arguments of `start`, which returns a Popen) `parallel` at a time: every
    10 s `poll` each running one, and `finish` each that has ended."""
    queue, running = list(queue), []
    while queue or running:
        while queue and len(running) < max(1, parallel):
            running.append(start(*queue.pop(0)))
        time.sleep(10)
        for proc in list(running):
            poll(proc)
            if proc.poll() is not None:
                running.remove(proc)
                finish(proc)


def held_out_seed(seed: int, episodes: int) -> int:
    """The first held-out episode seed of run `seed`: the first of its evaluation seeds, as `memwm eval` plays them
    (never a training episode's)."""
    from agents.common import evaluation_seed

    return evaluation_seed(seed, 0, episodes)


def held_out(run_dir: Path, seed: int, episodes: int) -> dict:
    """The finished run's final checkpoint scored by memwm's evaluator (the policy's mode) on `episodes` fresh
    episodes from `held_out_seed`: one number per run that a lucky in-run evaluation of a few episodes cannot make."""
    import torch

    from agents.evaluate import evaluate_run

    torch.set_num_threads(1)  # the other runs keep training beside it
    ev = evaluate_run(run_dir, episodes=episodes, device="cpu", seed=held_out_seed(seed, episodes))
    score = {"return": ev.scalars["eval/return"], "success": ev.scalars.get("eval/success"), "episodes": ev.episodes, "step": ev.step}
    return score | cue_scores(ev.scalars)


# what an evaluation says of a task's cue (agents.common.cue_scalars), kept in the records under these names
CUE_SCORES = ("cue_seen", "success_seen", "success_unseen")


def cue_scores(scalars: dict) -> dict:
    """The evaluation's cue scalars (eval/cue_seen, ...) of `scalars` under their record names; {} on a task without a cue."""
    return {name: scalars[f"eval/{name}"] for name in CUE_SCORES if f"eval/{name}" in scalars}


def held_out_score(payload: dict) -> float | None:
    """A record's held-out final score in its task's metric; None where the run failed or its record predates it."""
    held = payload.get("final_held_out")
    return held.get(payload["metric"]) if held else None


def after_bar(payload: dict) -> list[float] | None:
    """The in-run evaluations after the run first reached its bar, in its metric; None if it never did."""
    reached = payload.get("reached_bar")
    if not reached:
        return None
    return [e[payload["metric"]] for e in payload["evals"] if e["step"] > reached["step"] and e[payload["metric"]] is not None]


def lowest_after_bar(payload: dict) -> float | None:
    """The lowest in-run evaluation after the run first reached its bar (None if it never did): whether it held it."""
    later = after_bar(payload)
    return min(later) if later else None


def share_below_after_bar(payload: dict) -> float | None:
    """The share of in-run evaluations after the run first reached its bar that are below it (None if it never did):
    how long it did not hold it."""
    later = after_bar(payload)
    return sum(x < payload["bar"] for x in later) / len(later) if later else None


RUN_LOCAL = ("run", "steps", "minutes", "threads", "seed")  # config.yaml's keys that name the run, not the learner


def run_config(run_dir: Path) -> dict | None:
    """The run's resolved settings (its config.yaml without where each came from and without the keys that name this
    run rather than the learner: RUN_LOCAL), so that two records can be told to be the same learner or not; None where
    the run wrote none."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    data = config.load_yaml(path)
    return {k: v for k, v in data.items() if k != config.SOURCES and k not in RUN_LOCAL}


@functools.cache
def learner_config(name: str, backbone: str = "s5", flags: str = "") -> dict:
    """The resolved settings that `memwm train` with train_args(name, backbone, flags) learns with at this commit, in
    the form run_config reads from a run (config.yaml's values, without RUN_LOCAL): a record whose `config` equals it
    was made by the same learner's settings, whatever flags it was typed with (after a default changes, the defaults
    equal the flags that chose it before)."""
    import yaml

    import envs

    args = train_args(name, backbone, flags)
    given = tyro.cli(config.TrainConfig, args=args)
    resolved, sources = config.resolve_sources(given, None, dict.fromkeys(config.typed_fields(args), "flag"))
    env = envs.make(resolved.env, seed=0, **resolved.env_options)
    try:
        resolved, _ = config.fit_action_space(resolved, env.action_space, sources)
    finally:
        env.close()
    data = yaml.safe_load(yaml.safe_dump(resolved.to_dict(), sort_keys=False))  # as config.yaml holds it
    return {k: v for k, v in data.items() if k not in RUN_LOCAL}


# the commit that last changed a default value of `memwm train`: a record without its resolved settings (`config`, kept
# since 17384f6) ran the defaults of its commit, which are this commit's where it was made at DEFAULTS_SINCE or later
DEFAULTS_SINCE = "ff198b8"


# settings added to `memwm train` after records began to keep theirs, with the value that learns as the code did before
# the setting existed: a record without one learned with that value
# (named as in config.yaml: "field" or "group.field")
# (`compile` changes only the float rounding, but a compiled run does not repeat an eager one step for step, nor make as
# many steps in its minutes: not the same learner for a record that stands in for a run)
ADDED_SETTINGS = {"dreamer.all_actions_below": 0.0, "replay_terminal_share": 0.0, "compile": False}


def recorded_config(config: dict) -> dict:
    """A record's resolved settings with every setting added since (ADDED_SETTINGS) at the value it learned with."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for name, value in ADDED_SETTINGS.items():
        group, _, key = name.rpartition(".")
        holder = out.get(group) if group else out
        if isinstance(holder, dict):
            holder.setdefault(key, value)
    return out


def same_learner(r: dict, flags: str = "") -> bool:
    """Whether the run of learning record `r` learned with the settings that `memwm train` with train_args(its task,
    its backbone, `flags`) gives at this commit ("": the defaults). A record with its resolved settings is compared by
    them, whatever it was typed with; an older one by its flags, and where they are the defaults' ("") only if git
    places it at DEFAULTS_SINCE or later (a commit git does not know, a test's, is taken as typed)."""
    p = r["payload"]
    if p.get("config") is not None and p.get("task") in TASKS:
        return recorded_config(p["config"]) == learner_config(p["task"], p["backbone"], flags)
    if p.get("flags", "") != flags:
        return False
    code = r.get("commit")
    return bool(flags) or not record.known_commit(code) or record.made_since(code, DEFAULTS_SINCE)


def write(proc: subprocess.Popen, name: str = "", extra: dict | None = None, episodes: int = HELD_OUT_EPISODES) -> Path:
    """The run's result file: a new record of `name` (default `learning-<task>`; benchmarks.record: commit, command,
    machine, load), its payload updated with `extra`. A run that ended well is also scored on `episodes` held-out
    episodes (`final_held_out`; None for a failed run)."""
    watch(proc)
    info = proc.memwm
    task = TASKS[info["task"]]
    metrics = read_jsonl(info["run_dir"] / "metrics.jsonl")
    evals = [
        {"step": r["step"], "minutes": info["stamps"].get(r["step"]), "return": r["eval/return"], "success": r.get("eval/success")}
        | cue_scores(r)
        for r in metrics
        if "eval/return" in r
    ]
    # the learning chain (agents/chain.py) where the run measured it: where a memory task's learning breaks
    chain = [
        {"step": r["step"], "minutes": info["stamps"].get(r["step"])} | {k: v for k, v in r.items() if k.startswith("chain/")}
        for r in metrics
        if any(k.startswith("chain/") for k in r)
    ]
    scores = [e[task.metric] for e in evals if e[task.metric] is not None]
    within = [
        e[task.metric] for e in evals if e[task.metric] is not None and e["minutes"] is not None and e["minutes"] <= task.minutes + 0.5
    ]
    reached = next((e for e in evals if e[task.metric] is not None and e[task.metric] >= task.bar), None)
    updates = [r["train/updates"] for r in metrics if "train/updates" in r]
    payload = {
        "task": info["task"],
        "env": task.env,
        "env_options": dict(task.options),
        "backbone": info["backbone"],
        "flags": info["flags"],
        "seed": info["seed"],
        "metric": task.metric,
        "bar": task.bar,
        "bar_minutes": task.minutes,
        "budget_minutes": info["minutes"],
        "run_command": "memwm " + " ".join(info["cmd"][3:]),
        "exit_code": proc.returncode,
        "stopped_by": "budget" if proc.returncode == 0 else "failure",
        "wall_minutes": round((time.time() - info["start"]) / 60, 2),
        "load_average_during": info["loads"],
        "updates": int(updates[-1]) if updates else 0,
        "final": scores[-1] if scores else None,
        "best": max(scores) if scores else None,
        "best_within_bar_minutes": max(within) if within else None,
        "reached_bar": None if reached is None else {"step": reached["step"], "minutes": reached["minutes"]},
        "met": reached is not None and reached["minutes"] is not None and reached["minutes"] <= task.minutes + 0.5,
        "evals": evals,
        "chain": chain,
        "config": run_config(info["run_dir"]),
        "final_held_out": held_out(info["run_dir"], info["seed"], episodes) if proc.returncode == 0 else None,
        "held_out_seed": held_out_seed(info["seed"], episodes),
        **(extra or {}),
    }
    info["log"].close()
    return record.write_result(name or f"learning-{info['task']}", payload, started=info["started"])


def load_results(name: str) -> list[dict]:
    """Every run of task `name`, oldest first: the records' payloads with their commit."""
    return [
        {**r["payload"], "commit": (r["commit"] or "nogit")[:12] + ("+dirty" if r["dirty"] else "")}
        for r in record.all_runs(f"learning-{name}")
    ]


def variant(r: dict) -> str:
    """A run's curve label: its backbone, and its extra flags if any."""
    return f"{r['backbone']} {r['flags']}".strip() if r.get("flags") else r["backbone"]


def newest_group(results: list[dict]) -> list[dict]:
    """Per variant (backbone and flags) and seed the newest run, among the runs of the newest commit seen for that variant."""
    by_backbone = defaultdict(list)
    for r in results:
        by_backbone[variant(r)].append(r)
    out = []
    for rs in by_backbone.values():
        code = rs[-1]["commit"]
        per_seed = {r["seed"]: r for r in rs if r["commit"] == code}
        out.extend(per_seed.values())
    return out


def plot(name: str, results: list[dict]) -> Path | None:
    """success/return against env steps and against minutes, mean and range over the seeds of each backbone."""
    if not results:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    task = TASKS[name]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for backbone in sorted({variant(r) for r in results}):
        runs = [r for r in results if variant(r) == backbone]
        for ax, x_key in zip(axes, ("step", "minutes")):
            curves = [[(e[x_key], e[task.metric]) for e in r["evals"] if e[x_key] is not None and e[task.metric] is not None] for r in runs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            grid = np.linspace(0, min(c[-1][0] for c in curves), 50)
            ys = np.stack([np.interp(grid, *zip(*c)) for c in curves])
            (line,) = ax.plot(grid, ys.mean(0), label=f"{backbone} ({len(curves)} seeds)")
            ax.fill_between(grid, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
    for ax, label in zip(axes, ("env steps", "minutes of training (one CPU thread)")):
        ax.axhline(task.bar, color="grey", ls="--", lw=1)
        ax.set_xlabel(label)
        ax.set_ylabel(f"eval {task.metric}")
        ax.legend()
    axes[1].axvline(task.minutes, color="grey", ls=":", lw=1)
    fig.suptitle(f"memwm train --env {task.env}: eval {task.metric}, mean and range over seeds (bar {task.bar:g} in {task.minutes:g} min)")
    fig.tight_layout()
    path = record.RESULTS / f"learning-{name}" / "curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(name: str, results: list[dict]) -> None:
    task = TASKS[name]
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for backbone in sorted({variant(r) for r in results}):
        runs = sorted((r for r in results if variant(r) == backbone), key=lambda r: r["seed"])
        finals = [r["best_within_bar_minutes"] for r in runs if r["best_within_bar_minutes"] is not None]
        held = [x for x in map(held_out_score, runs) if x is not None]
        print(
            f"{name:<20} {backbone:<28} seeds {','.join(str(r['seed']) for r in runs):<8} "
            f"best {task.metric} within {task.minutes:g} min: mean {fmt(sum(finals) / len(finals) if finals else None)} "
            f"worst {fmt(min(finals) if finals else None)}; met {sum(r['met'] for r in runs)}/{len(runs)}; "
            f"held-out final: mean {fmt(sum(held) / len(held) if held else None)} worst {fmt(min(held) if held else None)} "
            f"(bar {task.bar:g}; commit {runs[-1]['commit']})"
        )


def main(args: Args) -> None:
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        print(f"benchmarks.learning: error: unknown task {unknown[0]!r}; known: {', '.join(TASKS)}", file=sys.stderr)
        raise SystemExit(2)
    if not args.plot_only:
        queue = [(t, b, s) for t in args.tasks for b in args.backbones for s in args.seeds]
        schedule(
            queue,
            lambda t, b, s: run_one(t, b, s, args.minutes or TASKS[t].minutes, Path(args.runs), args.flags),
            watch,
            lambda proc: print(f"benchmarks.learning: wrote {write(proc)}", flush=True),
            args.parallel,
        )
    for name in args.tasks:
        group = newest_group(load_results(name))
        path = plot(name, group)
        table(name, group)
        if path:
            print(f"benchmarks.learning: curves in {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
