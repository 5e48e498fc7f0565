"""memwm's agents side by side with the agents people use instead, on one memwm task, per CPU minute.

    python -m benchmarks.peers --task recall-k8 --minutes 15 --seeds 0 1 2
    python -m benchmarks.peers --task recall-k8 --plot-only          # redraw the curves, print the table
    python -m benchmarks.peers --task recall-k8 --minutes 30 --reuse  # the Dreamer's runs recorded already stand in

Arms (`--arms`, default all that are installed):
- memwm:            `memwm train --env ID` with its defaults (the Dreamer);
- memwm-ppo:        `memwm train --env ID --agent ppo`;
- sheeprl-dreamerv3: sheeprl's DreamerV3, its smallest preset (benchmarks/peer_sheeprl.py), at memwm's number of
                    environments, batch, window and replayed steps per env step for the task, with the python of its
                    own virtual environment (`--sheeprl-python`);
- sb3-recurrentppo: sb3-contrib's RecurrentPPO (benchmarks/peer_sb3.py), with the python of its own virtual
                    environment (`--sb3-python`).
`make peers-venv` builds both virtual environments; how to make one by hand is in each worker's file.
An arm whose python or package is missing is skipped with one line that says what to install.

Every run is one process with one torch thread and the same wall-clock budget, two at a time, the arms of a
seed interleaved so that the machine's load falls on all of them alike. Each is scored twice:
- its curve: memwm's runs by their own evaluations (metrics.jsonl), a peer every minute of its budget, on
  held-out seeds; and its training episodes' returns, against minutes and env steps;
- its final policy on the same held-out episodes for every arm (seeds from agents.common.evaluation_seed of
  the run's seed, `--eval-episodes` of them): memwm's runs through `memwm eval`'s evaluator, the peers through
  benchmarks.peer_eval, which plays the same episodes (tests/test_peers.py).
Each run writes a record (benchmarks/results/peers-<task>/, through benchmarks.record: commit, command,
machine, load); the output is peers-<task>/curves.png and a table of the mean and worst final score per arm
and of the mean curve at 5, 15 and 30 minutes.

`--reuse`: the memwm arm's run is the command benchmarks.learning and benchmarks.ablate run (`memwm train --env ID
--backbone s5 --seed S --minutes M`, one thread), scored by the same evaluator on the same held-out episodes, and CPU
training repeats step for step on one CPU model (benchmarks.ablate). So a run of the same learner, budget and seed
recorded on this CPU model (benchmarks.ablate.recorded_run: its resolved settings, made at LEARNER_SINCE or later;
learning's, an ablation's or an earlier peers run) stands for it: the arm gets a record that references it (`reuses`)
instead of a rerun, and the table names the commits its runs were made at. What does not carry over: the minutes of
its curve were those of its own machine load (the records keep the load beside every arm's), and a learning record
keeps no training episodes, so the training-return panel has no curve for such a run. Only the Dreamer arm: what
LEARNER_SINCE vouches for is the Dreamer's code, not PPO's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from benchmarks import ablate, learning, record

ARMS = ("memwm", "memwm-ppo", "sheeprl-dreamerv3", "sb3-recurrentppo")
MEMWM_FLAGS = {"memwm": "", "memwm-ppo": "--agent ppo"}
PEER_WORKERS = {
    "sheeprl-dreamerv3": ("sheeprl_python", "sheeprl", "benchmarks.peer_sheeprl"),
    "sb3-recurrentppo": ("sb3_python", "sb3_contrib", "benchmarks.peer_sb3"),
}
MARKS = (5.0, 15.0, 30.0)  # minutes at which the table reads the curves
# The commit that last changed what a peer arm runs: its adapter (benchmarks/peer_sheeprl.py, peer_sb3.py), the held-out
# evaluator (peer_eval.py), this module's commands and memwm's environments. The runs of a peer arm made at it or later
# (clean trees) ran the same code, so their seeds are one group (`row_key`), whichever of those commits a call that
# added seeds ran at. memwm's own arms, whose code changes more often, are grouped by their commit.
PEERS_SINCE = "32fdd13"


@dataclass
class Args:
    task: str = "recall-k8"
    """a task of benchmarks.learning (its env and metric)"""
    minutes: float = 15.0
    """wall-clock budget of every run"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    eval_episodes: int = 32
    """held-out episodes of the final evaluation (and of a peer's evaluation every minute)"""
    parallel: int = 2
    """runs at a time, one process and one torch thread each"""
    sheeprl_python: str = ".venv-sheeprl/bin/python"
    """the python of a virtual environment that holds sheeprl 0.8.4 (`make peers-venv` builds this one)"""
    sb3_python: str = ".venv-sb3/bin/python"
    """the python of a virtual environment that holds sb3-contrib (`make peers-venv` builds this one)"""
    runs: str = "runs/peers"
    plot_only: bool = False
    reuse: bool = False
    """the memwm arm: reference a run of the same learner, budget and seed recorded on this CPU model instead of
    running it again (see above)"""


def record_name(task: str) -> str:
    return f"peers-{task}"


def missing(arm: str, args: Args) -> str | None:
    """Why `arm` cannot run here (one line), or None."""
    if arm not in PEER_WORKERS:
        return None
    attr, package, _ = PEER_WORKERS[arm]
    python = getattr(args, attr)
    if not Path(python).exists():
        return f"{arm}: no python at {python} (--{attr.replace('_', '-')}; see {PEER_WORKERS[arm][2].replace('.', '/')}.py)"
    ok = subprocess.run([python, "-c", f"import {package}"], capture_output=True).returncode == 0
    return None if ok else f"{arm}: {python} cannot import {package} (see {PEER_WORKERS[arm][2].replace('.', '/')}.py)"


# --------------------------------------------------------------------------------------------- one run
def reusable(seed: int, args: Args, results: Path | None = None) -> str | None:
    """The recorded run that may stand for the memwm arm's run of `seed` (see --reuse): a finished CPU run of the
    defaults at this budget and seed on this CPU model, whose held-out episodes are the ones this benchmark plays;
    its path under `results`, or None."""
    results = Path(results or record.RESULTS)
    cpu = record.machine()["cpu"]  # training repeats step for step on one CPU model only
    found = ablate.recorded_run(args.task, "", args.minutes, seed, results, ablate.LEARNER_SINCE, cpu, (record_name(args.task),))
    if found is None:
        return None
    source, _ = ablate.referenced({"reuses": found}, results)
    held = source.get("final_held_out") or {}
    same_episodes = source.get("held_out_seed") == learning.held_out_seed(seed, args.eval_episodes)
    return found if same_episodes and held.get("episodes") == args.eval_episodes else None


def write_reference(seed: int, found: str, args: Args, results: Path | None = None) -> Path:
    """The memwm arm's record of `seed` that references the recorded run `found` (a path under `results`)."""
    task = learning.TASKS[args.task]
    payload = {"task": args.task, "env": task.env, "arm": "memwm", "peer": None, "seed": seed, "metric": task.metric}
    payload |= {"budget_minutes": args.minutes, "reuses": found}
    return record.write_result(record_name(args.task), payload, results=Path(results or record.RESULTS))


def peer_flags(arm: str, env: str, run_dir: Path) -> list[str]:
    """The worker's flags beyond the common ones: sheeprl's DreamerV3 gets memwm's number of environments, batch,
    window and replayed steps per env step for the task (memwm's defaults, as `memwm train --env` resolves them)."""
    if arm != "sheeprl-dreamerv3":
        return []
    from agents.config import TrainConfig, layered_defaults

    c = layered_defaults(env, TrainConfig().preset)
    return [
        *("--num-envs", str(c.num_envs), "--batch-size", str(c.batch_size), "--seq-len", str(c.seq_len)),
        *("--train-ratio", f"{c.train_ratio:g}", "--log-dir", str(run_dir.resolve() / "sheeprl")),
    ]


def start(arm: str, seed: int, args: Args) -> subprocess.Popen:
    task = learning.TASKS[args.task]
    if arm in MEMWM_FLAGS:
        proc = learning.run_one(args.task, "s5", seed, args.minutes, Path(args.runs), MEMWM_FLAGS[arm])
    else:
        attr, _, module = PEER_WORKERS[arm]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        run_dir = Path(args.runs) / f"{args.task}-{arm}-{seed}-{stamp}"
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = [getattr(args, attr), "-m", module, "--env", task.env, "--seed", str(seed), "--minutes", f"{args.minutes:g}"]
        cmd += ["--eval-seed", str(learning.held_out_seed(seed, args.eval_episodes)), "--eval-episodes", str(args.eval_episodes)]
        cmd += ["--out", str(run_dir.resolve() / "peer.jsonl"), *peer_flags(arm, task.env, run_dir)]
        log = open(run_dir / "peer.log", "w")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(record.REPO)}
        proc = subprocess.Popen(cmd, cwd=record.REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        proc.memwm = {"run_dir": run_dir, "cmd": cmd, "start": time.time(), "started": record.start(), "loads": [], "log": log}
    proc.memwm.update(arm=arm, seed=seed)
    return proc


def poll(proc: subprocess.Popen) -> None:
    """Sample the load; a memwm run also stamps its new evaluations and episodes with their minutes."""
    if proc.memwm["arm"] in MEMWM_FLAGS:
        learning.watch(proc)
    else:
        proc.memwm["loads"].append(round(os.getloadavg()[0], 2))


def finish(proc: subprocess.Popen, args: Args) -> Path:
    """Score the finished run on the held-out episodes and write its record."""
    info = proc.memwm
    task = learning.TASKS[args.task]
    if info["arm"] in MEMWM_FLAGS:
        rows = learning.read_jsonl(info["run_dir"] / "metrics.jsonl")
        stamps = info["stamps"]
        train = [
            {"minutes": stamps.get(r["step"]), "step": r["step"], "return": r["episode/return"]} for r in rows if "episode/return" in r
        ]
        extra = {"arm": info["arm"], "peer": None, "train": train}
        return learning.write(proc, name=record_name(args.task), extra=extra, episodes=args.eval_episodes)
    seed0 = learning.held_out_seed(info["seed"], args.eval_episodes)
    rows = learning.read_jsonl(info["run_dir"] / "peer.jsonl")
    evals = [
        {"step": r["step"], "minutes": r["minutes"], "return": r["eval/return"], "success": r["eval/success"]}
        for r in rows
        if "eval/return" in r
    ]
    train = [{"minutes": r["minutes"], "step": r["step"], "return": r["episode/return"]} for r in rows if "episode/return" in r]
    final = next((r["final"] for r in rows if "final" in r), None)
    scores = [e[task.metric] for e in evals if e[task.metric] is not None]
    info["log"].close()
    payload = {
        "task": args.task,
        "env": task.env,
        "arm": info["arm"],
        "peer": info["arm"],
        "seed": info["seed"],
        "metric": task.metric,
        "budget_minutes": args.minutes,
        "run_command": " ".join(info["cmd"]),
        "exit_code": proc.returncode,
        "stopped_by": "budget" if proc.returncode == 0 else "failure",
        "wall_minutes": round((time.time() - info["start"]) / 60, 2),
        "load_average_during": info["loads"],
        "final": scores[-1] if scores else None,
        "best": max(scores) if scores else None,
        "evals": evals,
        "train": train,
        "final_held_out": final,
        "held_out_seed": seed0,
    }
    return record.write_result(record_name(args.task), payload, started=info["started"])


# --------------------------------------------------------------------------------------------- results
def resolved(r: dict, results: Path | None = None) -> dict:
    """A peers record's payload with the commit its run was made at (`run_commit`); a record that references a
    recorded run (`reuses`, --reuse) reads that run's payload (with no training episodes where its record keeps none)."""
    p = r["payload"]
    if "reuses" not in p:
        return {**p, "run_commit": (r["commit"] or "nogit")[:12]}
    source, made = ablate.referenced(p, Path(results or record.RESULTS))
    return {"train": [], **source, **{k: p[k] for k in ("arm", "peer", "seed", "budget_minutes", "reuses")}, "run_commit": made}


def made_at(codes: list[str], runs: list[dict]) -> str:
    """The commits of a group of peers records (each once, in the order given), and the commits their runs were made at
    where those are others (reused runs: `run_commit`)."""
    codes = list(dict.fromkeys(codes))
    others = sorted({r["run_commit"][:7] for r in runs} - {code[:7] for code in codes})
    return ", ".join(codes) + (f" (runs made at {', '.join(others)})" if others else "")


def row_key(arm: str, commit: str, dirty: bool = False) -> str:
    """What a run is grouped by, with the other seeds of its arm: "since PEERS_SINCE" for a peer arm's run made at it
    or later from a clean tree, else the run's own commit."""
    if arm in PEER_WORKERS and not dirty and record.made_since(commit, PEERS_SINCE):
        return f"since {PEERS_SINCE}"
    return commit


def load(task: str, results: Path | None = None) -> list[dict]:
    """Per arm and seed the newest run of the arm's newest group (`row_key`: its commit, or PEERS_SINCE)."""
    results = Path(results or record.RESULTS)
    rs = []
    for r in record.all_runs(record_name(task), results):
        p = resolved(r, results)
        code = (r["commit"] or "nogit")[:12] + ("+dirty" if r["dirty"] else "")
        rs.append({**p, "commit": code, "group": row_key(p["arm"], code, r["dirty"])})
    by_arm = defaultdict(list)
    for r in rs:
        by_arm[r["arm"]].append(r)
    out = []
    for runs in by_arm.values():
        newest = runs[-1]["group"]
        out.extend({r["seed"]: r for r in runs if r["group"] == newest}.values())
    return out


def curve_at(points: list[tuple[float, float]], x: float) -> float | None:
    """The last value at or before x of a curve of (x, y) (None if it starts after x or ends long before it)."""
    before = [y for px, y in points if px is not None and px <= x + 1e-9]
    last = max((px for px, _ in points if px is not None), default=None)
    return before[-1] if before and last is not None and last >= x - 1.0 else None


def _eval_points(r: dict, metric: str, x_key: str) -> list[tuple[float, float]]:
    return [(e[x_key], e[metric]) for e in r["evals"] if e[x_key] is not None and e[metric] is not None]


def table(task: str, results: list[dict]) -> list[str]:
    t = learning.TASKS[task]
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    lines = []
    for arm in [a for a in ARMS if any(r["arm"] == a for r in results)]:
        runs = sorted((r for r in results if r["arm"] == arm), key=lambda r: r["seed"])
        finals = [r["final_held_out"][t.metric] for r in runs if r.get("final_held_out") and r["final_held_out"][t.metric] is not None]
        marks = []
        for m in MARKS:
            ys = [curve_at(_eval_points(r, t.metric, "minutes"), m) for r in runs]
            ys = [y for y in ys if y is not None]
            marks.append(f"{m:g} min {fmt(float(np.mean(ys)) if len(ys) == len(runs) else None)}")
        budgets = "/".join(f"{b:g}" for b in sorted({r["budget_minutes"] for r in runs}))
        lines.append(
            f"{task:<18} {arm:<17} seeds {','.join(str(r['seed']) for r in runs):<6} {budgets} min; held-out {t.metric} "
            f"(mean, worst) {fmt(float(np.mean(finals)) if finals else None)}, {fmt(min(finals) if finals else None)}; "
            f"curve {'; '.join(marks)} (commit {made_at([r['commit'] for r in runs], runs)})"
        )
    return lines


def plot(task: str, results: list[dict]) -> Path | None:
    """Eval score against minutes and env steps, training returns against minutes: per arm each seed thin, the mean thick."""
    if not results:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = learning.TASKS[task]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for i, arm in enumerate(a for a in ARMS if any(r["arm"] == a for r in results)):
        color = f"C{i}"
        runs = [r for r in results if r["arm"] == arm]
        panels = (
            (axes[0], [_eval_points(r, t.metric, "minutes") for r in runs]),
            (axes[1], [_eval_points(r, t.metric, "step") for r in runs]),
            (axes[2], [[(e["minutes"], e["return"]) for e in r.get("train", []) if e["minutes"] is not None] for r in runs]),
        )
        for ax, curves in panels:
            curves = [c for c in curves if len(c) > 1]
            for c in curves:
                ax.plot(*zip(*c), color=color, lw=0.6, alpha=0.4)
            if curves:
                grid = np.linspace(0, min(c[-1][0] for c in curves), 60)
                mean = np.mean([np.interp(grid, *zip(*c)) for c in curves], 0)
                ax.plot(grid, mean, color=color, lw=2, label=f"{arm} ({len(curves)} seeds)")
    for ax, x, y in zip(
        axes,
        ("minutes (one CPU thread)", "env steps", "minutes (one CPU thread)"),
        (f"eval {t.metric}", f"eval {t.metric}", "training episode return"),
    ):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        if ax.get_legend_handles_labels()[0]:  # a panel may have no curve (the training returns of reused runs)
            ax.legend(fontsize=8)
    fig.suptitle(f"{t.env}: memwm against its peers, each seed thin, the mean thick")
    fig.tight_layout()
    path = record.RESULTS / record_name(task) / "curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(args: Args) -> None:
    if args.task not in learning.TASKS:
        print(f"benchmarks.peers: error: unknown task {args.task!r}; known: {', '.join(learning.TASKS)}", file=sys.stderr)
        raise SystemExit(2)
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        print(f"benchmarks.peers: error: unknown arm {unknown[0]!r}; known: {', '.join(ARMS)}", file=sys.stderr)
        raise SystemExit(2)
    if not args.plot_only:
        arms = []
        for arm in args.arms:
            why = missing(arm, args)
            if why:
                print(f"benchmarks.peers: skipped {why}", flush=True)
            else:
                arms.append(arm)
        queue = [(arm, seed) for seed in args.seeds for arm in arms]  # the arms of a seed run side by side
        if args.reuse and "memwm" in arms:
            for seed in args.seeds:
                found = reusable(seed, args)
                if found:
                    print(f"benchmarks.peers: wrote {write_reference(seed, found, args)} (memwm, seed {seed}: reuses {found})", flush=True)
                    queue.remove(("memwm", seed))
        learning.schedule(
            queue,
            lambda arm, seed: start(arm, seed, args),
            poll,
            lambda proc: print(f"benchmarks.peers: wrote {finish(proc, args)}", flush=True),
            args.parallel,
        )
    results = load(args.task)
    for line in table(args.task, results):
        print(line)
    path = plot(args.task, results)
    if path:
        print(f"benchmarks.peers: curves in {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
