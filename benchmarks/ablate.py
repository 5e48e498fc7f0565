"""Paired ablations: two settings of `memwm train` on the same task and the same seeds, side by side.

    python -m benchmarks.ablate --task recall-k8 --a "" --b "--dreamer.actor-lr 3e-5" --seeds 0 1 2 --minutes 10
    python -m benchmarks.ablate --task recall-k8 --plot-only        # redraw and re-tabulate the newest ablation
    python -m benchmarks.ablate --task recall-k8 --a "" --b "--dreamer.all-actions 1.0" --minutes 30 --reuse

A default is a decision with evidence: one seed per arm decides nothing, and on a shared machine the load
moves every wall-clock number. So both arms run on every seed, and the two runs of a seed start together
(two processes, one torch thread each): whatever else the machine does falls on both alike. Each run is
the command a user types (`memwm train --env ID --seed S` plus the arm's flags) and writes its own record
through benchmarks.learning (commit, command, machine, load, the evaluation curve) under
`benchmarks/results/ablate-<task>/`, with its arm. The output is a PNG of both arms' curves (`curves-<commit>.png`; each seed
thin, the mean thick; against env steps and against minutes) and a table of the paired difference b - a
of the final and of the best evaluation, and of the final policy's score on held-out episodes
(benchmarks.learning.held_out: more episodes than an in-run evaluation plays), its mean and its range over the seeds.

`--reuse` runs only what is not recorded yet. CPU training is deterministic per seed: a run of the same learning code
repeats, step for step, a run recorded before (by benchmarks.learning or an earlier ablation; same task, flags,
budget and seed, the default backbone, ended by its budget, on a CPU of the same model as this one), whatever the
load; only its env steps per minute move with the load. (Across CPU models the same seed's floats round apart and
the runs part ways: an Intel Xeon's run is no stand-in for an AMD EPYC's.) Such an arm gets a record that references
the recorded run (`reuses`: its path under benchmarks/results/) instead of a rerun, and the table names the commit
each arm's runs were made at. A recorded run stands for an arm when it learned with the settings the arm's flags
give now (its record's resolved settings; a record older than those, by its flags: benchmarks.learning.same_learner),
so that after a default changes, the runs that chose it with a flag stand for the defaults. Only runs made at
LEARNER_SINCE or a later commit (its descendants) count: the commit that last changed the code those settings run;
between such commits, the ones that leave that code alone (a new option off by default, say) are vouched for by
whoever makes them. The runs still missing run two at a time, a seed's two arms together where both are.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from benchmarks import learning, record


@dataclass
class Args:
    task: str = "recall-k8"
    """a task of benchmarks.learning (its env, metric and bar)"""
    a: str = ""
    """arm a: extra `memwm train` flags ("" = the defaults)"""
    b: str = ""
    """arm b: extra `memwm train` flags"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    minutes: float = 10.0
    """wall-clock budget of every run"""
    runs: str = "runs/ablate"
    """folder of the run folders (a fresh one per run)"""
    plot_only: bool = False
    """only redraw the curves and print the table of the newest ablation of the task"""
    reuse: bool = False
    """reference an arm's run of a seed that is recorded already instead of running it again (see above)"""


# the commit that last changed the code that `memwm train`'s default settings run (the representation loss at
# 0.01, wm.rep_scale, and evaluation from the posterior's mode): a run made before it measured another learner, whatever
# its settings. A change of a default value alone does not move it: records keep their resolved settings, and an arm
# is matched by those (benchmarks.learning.same_learner).
LEARNER_SINCE = "351bb57"


def record_name(task: str) -> str:
    return f"ablate-{task}"


def recorded_run(
    task: str,
    flags: str,
    minutes: float,
    seed: int,
    results: Path = record.RESULTS,
    since: str | None = LEARNER_SINCE,
    cpu: str | None = None,
    names: tuple[str, ...] = (),
) -> str | None:
    """The newest run of `task` on the CPU with the default backbone, a budget of `minutes` and `seed` that ended by its
    budget and learned with the settings `flags` give at this commit (benchmarks.learning.same_learner: its resolved
    settings, whatever it was typed with), made at `since` or later (record.made_since) on a CPU of model `cpu` (None:
    any), among benchmarks.learning's records, earlier ablations' own runs and those of the benchmarks `names` (whose
    runs benchmarks.learning writes too): its record's path relative to `results`, or None."""
    found = []
    for name in (f"learning-{task}", record_name(task), *names):
        for r in record.all_runs(name, results):
            p = r["payload"]
            same = p.get("backbone") == "s5" and p.get("seed") == seed and learning.same_learner(r, flags)
            ended = "reuses" not in p and p.get("budget_minutes") == minutes and p.get("exit_code") == 0 and r.get("device") == "cpu"
            here = cpu is None or (r.get("machine") or {}).get("cpu") == cpu
            if same and ended and here and record.made_since(r.get("commit"), since):
                found.append(r)
    if not found:
        return None
    newest = max(found, key=lambda r: r["start"])
    return Path(newest["path"]).relative_to(results).as_posix()


def run_pairs(args: Args, results: Path | None = None) -> list[Path]:
    """Every (seed, arm) run, two processes at a time, one thread each: a seed's two arms together. With
    `args.reuse`, an arm's run recorded already (under `results`, default benchmarks/results) gets a record that
    references it instead. Returns the records written."""
    results = Path(results or record.RESULTS)
    cpu = record.machine()["cpu"]  # training repeats step for step on one CPU model only
    written, jobs = [], []
    for seed in args.seeds:
        for arm, flags in (("a", args.a), ("b", args.b)):
            extra = {"arm": arm, "pair": {"a": args.a, "b": args.b}, "minutes": args.minutes}
            reused = recorded_run(args.task, flags, args.minutes, seed, results, LEARNER_SINCE, cpu) if args.reuse else None
            if reused is None:
                jobs.append((seed, flags, extra))
                continue
            payload = {"task": args.task, "flags": flags, "seed": seed, "reuses": reused} | extra
            path = record.write_result(record_name(args.task), payload, results=results)
            print(f"benchmarks.ablate: wrote {path} (arm {arm}, seed {seed}: reuses {reused})", flush=True)
            written.append(path)
    for i in range(0, len(jobs), 2):
        procs = []
        for seed, flags, extra in jobs[i : i + 2]:
            proc = learning.run_one(args.task, "s5", seed, args.minutes, Path(args.runs), flags)
            proc.memwm["extra"] = extra
            procs.append(proc)
        while any(p.poll() is None for p in procs):
            time.sleep(10)
            for p in procs:
                learning.watch(p)
        for p in procs:
            path = learning.write(p, name=record_name(args.task), extra=p.memwm["extra"])
            print(f"benchmarks.ablate: wrote {path}", flush=True)
            written.append(path)
    return written


def referenced(p: dict, results: Path = record.RESULTS) -> tuple[dict, str]:
    """The run a reference record's payload `p` names (`reuses`, a path under `results`): its payload and the commit
    it was made at (a missing record raises FileNotFoundError)."""
    source = json.loads((Path(results) / p["reuses"]).read_text())
    return source["payload"], (source["commit"] or "nogit")[:12]


def resolved(r: dict, results: Path = record.RESULTS) -> dict:
    """An ablation record's payload with the ablation's commit (`commit`) and the commit its run was made at
    (`run_commit`); a record that references a recorded run (`reuses`) reads that run's payload."""
    p, code = r["payload"], (r["commit"] or "nogit")[:12]
    if "reuses" not in p:
        return {**p, "commit": code, "run_commit": code}
    source, made = referenced(p, results)
    keep = {k: p[k] for k in ("arm", "pair", "minutes", "reuses")}
    return {**source, **keep, "commit": code, "run_commit": made}


def newest_ablation(task: str, results: Path | None = None) -> list[dict]:
    """The runs of the newest ablation of `task` (same arms, commit and budget as its newest record)."""
    results = Path(results or record.RESULTS)
    runs = [resolved(r, results) for r in record.all_runs(record_name(task), results)]
    if not runs:
        return []
    last = runs[-1]
    key = lambda r: (r["pair"]["a"], r["pair"]["b"], r["commit"], r["minutes"])  # noqa: E731
    group = {(r["arm"], r["seed"]): r for r in runs if key(r) == key(last)}  # the newest run per arm and seed
    return list(group.values())


def label(run: dict) -> str:
    return f"{run['arm']}: {run['flags'] or 'defaults'}"


def plot(task: str, runs: list[dict]) -> Path | None:
    """Both arms against env steps and minutes: every seed thin, the mean over seeds thick."""
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metric = learning.TASKS[task].metric
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm, color in (("a", "tab:blue"), ("b", "tab:orange")):
        arm_runs = [r for r in runs if r["arm"] == arm]
        if not arm_runs:
            continue
        for ax, x_key in zip(axes, ("step", "minutes")):
            curves = [[(e[x_key], e[metric]) for e in r["evals"] if e[x_key] is not None and e[metric] is not None] for r in arm_runs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            for c in curves:
                ax.plot(*zip(*c), color=color, lw=0.8, alpha=0.45)
            grid = np.linspace(0, min(c[-1][0] for c in curves), 50)
            mean = np.stack([np.interp(grid, *zip(*c)) for c in curves]).mean(0)
            ax.plot(grid, mean, color=color, lw=2.2, label=f"{label(arm_runs[0])} ({len(curves)} seeds)")
    for ax, xlabel in zip(axes, ("env steps", "minutes (one CPU thread per run, two runs at a time)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"eval {metric}")
        ax.legend(fontsize=8)
    fig.suptitle(f"ablation on {learning.TASKS[task].env}: each seed thin, mean thick (commit {runs[0]['commit']})")
    fig.tight_layout()
    path = record.RESULTS / record_name(task) / f"curves-{runs[0]['commit'][:7]}.png"  # one picture per ablation
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(task: str, runs: list[dict]) -> str:
    """Per seed the final, best and held-out final score of each arm and its lowest evaluation after first reaching the
    bar and the share of its evaluations after that below the bar (whether and how long it held it), and the paired
    difference b - a: mean and range."""
    by = {
        (r["arm"], r["seed"]): {
            **r,
            "held-out final": learning.held_out_score(r),
            "lowest after the bar": learning.lowest_after_bar(r),
            "share below the bar after it": learning.share_below_after_bar(r),
        }
        for r in runs
    }
    seeds = sorted({s for arm, s in by if (("a", s) in by and ("b", s) in by)})
    lines = [f"{task}: a = {runs[0]['pair']['a'] or 'defaults'!r}, b = {runs[0]['pair']['b'] or 'defaults'!r}"]
    made = {arm: sorted({r["run_commit"][:7] for r in runs if r["arm"] == arm}) for arm in ("a", "b")}
    if any(code != runs[0]["commit"][:7] for codes in made.values() for code in codes):
        lines.append(f"  runs made at: a {', '.join(made['a'])}; b {', '.join(made['b'])} (reused records: --reuse)")
    out = {}
    for key in ("final", "best", "held-out final", "lowest after the bar", "share below the bar after it"):
        seeds_with = [s for s in seeds if by["a", s].get(key) is not None and by["b", s].get(key) is not None]
        diffs = [by["b", s][key] - by["a", s][key] for s in seeds_with]
        per_seed = ", ".join(f"seed {s}: {by['a', s][key]:+.3f} -> {by['b', s][key]:+.3f}" for s in seeds_with)
        if diffs:
            out[key] = diffs
            mean = sum(diffs) / len(diffs)
            lines.append(f"  {key}: {per_seed}; b - a mean {mean:+.3f} (range {min(diffs):+.3f} to {max(diffs):+.3f})")
    return "\n".join(lines)


def main(args: Args) -> None:
    if args.task not in learning.TASKS:
        print(f"benchmarks.ablate: error: unknown task {args.task!r}; known: {', '.join(learning.TASKS)}", file=sys.stderr)
        raise SystemExit(2)
    if args.minutes <= 0 or not args.seeds:
        print("benchmarks.ablate: error: --minutes must be positive and --seeds must name at least one seed", file=sys.stderr)
        raise SystemExit(2)
    if not args.plot_only:
        run_pairs(args)
    runs = newest_ablation(args.task)
    if not runs:
        print(f"benchmarks.ablate: no ablation record of {args.task} yet", file=sys.stderr)
        return
    print(table(args.task, runs))
    path = plot(args.task, runs)
    if path:
        print(f"benchmarks.ablate: curves in {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
