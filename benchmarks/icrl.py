"""In-context RL benchmarks: what `memwm train --agent ppo` learns in context, and how fast its memory trains.

    python -m benchmarks.icrl --parts bandit dark-room --seeds 0 1 2 --minutes 20
    python -m benchmarks.icrl --parts speed

1. bandit: icrl/bandit-10. Each seed is the command a user types,
   `memwm train --agent ppo --env icrl/bandit-10 --seed S --minutes M --threads 1 --run <folder>`, in its own
   process with one torch thread (two at a time, `--parallel`); the benchmark adds no setting of its own, so
   the run trains with the product's defaults. When it stops, its latest checkpoint plays `--eval-trials`
   held-out trials (`agents.evaluate.evaluate_run`, what `memwm eval` does: evaluation seeds, never a
   training trial) beside Thompson sampling and UCB on the same trials. Target: a trial return >= 0.9 of
   Thompson sampling's (`icrl/return_over_thompson`), on every seed.
2. dark-room: icrl/dark-room, the same with `--env icrl/dark-room`. Target: the mean return of episodes
   3-10 >= 2 x episode 1's (`icrl/later_over_first`).
3. speed: recurrent PPO env steps per second (collect + update) with `s5` and with `rssm` (GRU) memory at
   trial lengths 200 and 1,000 (icrl/dark-room with 10 and 50 episodes of 20 steps; one rollout chunk = one
   trial, so each update re-runs whole trials), side by side in one process through
   `agents.ppo_agent.Collector` and `agents.ppo.PPO`; also the update alone (trained sequence steps per
   second). Target: s5 >= 3x rssm at 1,000.

Each learning run writes one new record (benchmarks.record) to benchmarks/results/icrl-bandit-10/ or
icrl-dark-room/: the run command, seed, minutes, the env steps and updates it made, the held-out metrics
and whether the target was met; its run folder stays under `--runs`. The speed part writes a record to
benchmarks/results/icrl/. `python -m benchmarks.report` puts them in the READMEs. Timings on a shared CPU
are noisy: each speed figure is the median of `--chunks` timed chunks after one warm-up chunk, the s5 and
rssm chunks alternating.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import torch
import tyro

import envs
from agents.common import evaluation_seed
from agents.ppo import PPO, PPOConfig
from agents.ppo_agent import Collector
from benchmarks import record
from benchmarks.learning import launch, schedule, watch
from world_models.imagine import model_obs_space

Part = Literal["speed", "bandit", "dark-room"]


@dataclass(frozen=True)
class Target:
    env: str
    metric: str  # the held-out scalar of agents.evaluate.evaluate_run that the target reads
    bar: float  # met when the metric is >= bar
    text: str


TARGETS: dict[str, Target] = {
    "bandit": Target("icrl/bandit-10", "icrl/return_over_thompson", 0.9, "return >= 0.9 x Thompson sampling's"),
    "dark-room": Target("icrl/dark-room", "icrl/later_over_first", 2.0, "mean return of episodes 3-10 >= 2 x episode 1's"),
}


@dataclass
class Args:
    parts: tuple[Part, ...] = ("speed", "bandit", "dark-room")
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """seeds of the learning runs (bandit, dark-room), one run each"""
    minutes: float = 20.0
    """wall-clock minutes of each learning run (`memwm train --minutes`)"""
    steps: int = 0
    """env-step cap of each learning run (`memwm train --steps`); 0: the flag is not given (memwm train's default)"""
    eval_trials: int = 200
    """held-out trials that score each learning run's latest checkpoint"""
    parallel: int = 2
    """learning runs at a time, one process and one torch thread each"""
    runs: Path = Path("runs/bench-icrl")
    """folder of the learning runs' run folders (a fresh one per run)"""
    speed_envs: int = 8  # parallel trials of the speed runs
    lengths: tuple[int, ...] = (200, 1000)  # trial lengths of the speed runs
    chunks: int = 5  # timed chunks per speed configuration (median)
    threads: int = 1  # torch threads of this process (speed part, held-out evaluations)
    results: Path = record.RESULTS  # folder of the result records (a new file per record)


def make_ppo(vec, backbone: str, cfg: PPOConfig) -> PPO:
    return PPO(model_obs_space(vec.single_observation_space), vec.single_action_space, backbone, cfg)


def speed(args: Args) -> list[dict]:
    """Steps per second of the whole PPO loop and of the update alone, s5 and rssm side by side: their
    chunks alternate (s5, rssm, s5, ...), so that both see the same machine load."""
    rows = []
    for length in args.lengths:
        options = {"episode_steps": 20, "episodes": length // 20}
        runs = {}
        for backbone in ("s5", "rssm"):
            vec = envs.make_vector("icrl/dark-room", args.speed_envs, seed=args.seeds[0], asynchronous=False, **options)
            ppo = make_ppo(vec, backbone, PPOConfig(rollout=length))
            runs[backbone] = (vec, ppo, Collector(ppo, vec), [], [])
        for chunk in range(args.chunks + 1):
            for _, ppo, collector, collect_s, update_s in runs.values():
                t0 = time.perf_counter()
                rollout, _ = collector.collect(seed=args.seeds[0])
                t1 = time.perf_counter()
                ppo.update(rollout)
                t2 = time.perf_counter()
                if chunk:  # the first chunk warms up (compiled scans, allocator)
                    collect_s.append(t1 - t0)
                    update_s.append(t2 - t1)
        load = [round(x, 2) for x in os.getloadavg()]  # timings on a shared CPU: the 1, 5, 15-minute load
        for backbone, (vec, ppo, _, collect_s, update_s) in runs.items():
            vec.close()
            steps = args.speed_envs * length
            c, u = statistics.median(collect_s), statistics.median(update_s)
            rows.append(
                {
                    "trial_length": length,
                    "backbone": backbone,
                    "envs": args.speed_envs,
                    "collect_s": c,
                    "update_s": u,
                    "steps_per_s": steps / (c + u),
                    "update_steps_per_s": steps * ppo.cfg.epochs / u,
                    "collect_steps_per_s": steps / c,
                    "load": load,
                }
            )
            print(
                f"  L={length:5d} {backbone:5s}: collect {c:6.2f} s, update {u:6.2f} s, "
                f"{rows[-1]['steps_per_s']:7.0f} steps/s (load {load})",
                flush=True,
            )
    return rows


def start(part: str, seed: int, args: Args) -> subprocess.Popen:
    """Start `memwm train --agent ppo` on the part's env for one seed; the caller polls it with `watch`."""
    env = TARGETS[part].env
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.runs / f"{part}-{seed}-{stamp}"
    cmd = [sys.executable, "-m", "agents.cli", "train", "--agent", "ppo", "--env", env, "--seed", str(seed)]
    cmd += ["--minutes", f"{args.minutes:g}", *(["--steps", str(args.steps)] if args.steps else []), "--threads", "1"]
    cmd += ["--run", str(run_dir)]
    return launch(cmd, run_dir, part=part, seed=seed)


def finish(proc: subprocess.Popen, args: Args) -> dict:
    """Score the ended run's latest checkpoint on held-out trials and write its record; the record's payload."""
    from agents.evaluate import evaluate_run
    from agents.runs import latest_checkpoint

    watch(proc)
    info = proc.memwm
    info["log"].close()
    target = TARGETS[info["part"]]
    wall = round((time.time() - info["start"]) / 60, 2)
    payload = {
        "part": info["part"],
        "env": target.env,
        "seed": info["seed"],
        "run_command": "memwm " + " ".join(str(c) for c in info["cmd"][3:]),
        "run_dir": str(info["run_dir"]),
        "budget_minutes": args.minutes,
        "steps_cap": args.steps or None,
        "exit_code": proc.returncode,
        "wall_minutes": wall,
        "load_average_during": info["loads"],
        "target": target.text,
        "metric": target.metric,
        "bar": target.bar,
        "eval_trials": args.eval_trials,
    }
    seed = evaluation_seed(info["seed"], 0, args.eval_trials)  # the evaluation range: never a training trial
    scored, error = None, None
    if proc.returncode != 0:
        error = f"memwm train exited with {proc.returncode} (its output: {info['run_dir']}.log)"
    else:
        try:
            scored = evaluate_run(info["run_dir"], episodes=args.eval_trials, device="cpu", seed=seed)
            counters = latest_checkpoint(info["run_dir"], torch.device("cpu"))[0]["counters"]
        except Exception as e:  # a run that cannot be scored is recorded as failed; the other runs go on
            error = f"{type(e).__name__}: {e}"
    if scored is None:
        payload |= {"stopped_by": "failure", "error": error, "train_steps": None, "updates": None, "metrics": None}
        payload |= {"value": None, "met": False}
    else:
        config = scored.config
        value = scored.scalars.get(target.metric)
        payload |= {
            "stopped_by": "steps" if scored.step >= config.steps else "minutes",
            "backbone": config.backbone,
            "num_envs": config.num_envs,
            "ppo": dataclasses.asdict(config.ppo),
            "checkpoint": str(scored.checkpoint),
            "train_steps": scored.step,
            "updates": counters["updates"],
            "eval_seed": seed,
            "metrics": scored.scalars,
            "plot": None if scored.plot is None else str(scored.plot),
            "value": value,
            # an infinite ratio (episode 1 returned nothing on every trial) is no evidence of learning in context
            "met": value is not None and math.isfinite(value) and value >= target.bar,
        }
    path = record.write_result(f"icrl-{target.env.split('/')[1]}", payload, started=info["started"], device="cpu", results=args.results)
    shown = "-" if payload["value"] is None else f"{payload['value']:.2f}"
    met = "met" if payload["met"] else "not met"
    print(f"  {target.env} seed {info['seed']}: {target.metric} {shown} ({met}); wrote {path}", flush=True)
    return payload


def learn(args: Args, parts: list[str]) -> list[dict]:
    """Run every (part, seed) with `memwm train --agent ppo`, `args.parallel` at a time; their records' payloads."""
    done: list[dict] = []
    schedule(
        [(part, seed) for part in parts for seed in args.seeds],
        lambda part, seed: start(part, seed, args),
        watch,
        lambda proc: done.append(finish(proc, args)),
        args.parallel,
    )
    return done


def summary(payloads: list[dict]) -> str:
    """Per env: the seeds, the held-out metric's mean and worst, and how many seeds met the target."""
    lines = []
    for part, target in TARGETS.items():
        ps = sorted((p for p in payloads if p["part"] == part), key=lambda p: p["seed"])
        if not ps:
            continue
        values = [p["value"] for p in ps if p["value"] is not None]
        measured = f"mean {statistics.mean(values):.2f}, worst {min(values):.2f}" if values else "no value"
        lines.append(
            f"{target.env}: seeds {','.join(str(p['seed']) for p in ps)}, {target.metric} {measured}; "
            f"met {sum(p['met'] for p in ps)}/{len(ps)} (target {target.text})"
        )
    return "\n".join(lines)


def main(args: Args) -> dict:
    torch.set_num_threads(args.threads)
    out = {}
    if "speed" in args.parts:
        started = record.start()
        print("speed: PPO steps/s, s5 vs rssm", flush=True)
        rows = speed(args)
        ratios = {}
        for length in args.lengths:
            by = {r["backbone"]: r for r in rows if r["trial_length"] == length}
            ratios[str(length)] = {
                "loop": by["s5"]["steps_per_s"] / by["rssm"]["steps_per_s"],
                "update": by["s5"]["update_steps_per_s"] / by["rssm"]["update_steps_per_s"],
                "collect": by["s5"]["collect_steps_per_s"] / by["rssm"]["collect_steps_per_s"],
            }
        out["speed"] = {"rows": rows, "s5_over_rssm": ratios, "target": "s5 >= 3x rssm steps/s at trial length 1000"}
        result = {"threads": args.threads, "parts": ["speed"], "speed": out["speed"]}
        path = record.write_result("icrl", result, started=started, device="cpu", results=args.results)
        print(speed_table(out["speed"]))
        print(f"written: {path}")
    parts = [p for p in args.parts if p in TARGETS]
    if parts:
        print(f"{', '.join(parts)}: memwm train --agent ppo, seeds {args.seeds}, {args.minutes:g} min each", flush=True)
        out["runs"] = learn(args, parts)
        print(summary(out["runs"]))
    return out


def speed_table(speed: dict) -> str:
    """The speed rows (markdown)."""
    lines = ["| benchmark | measured | target |", "|---|---|---|"]
    for r in speed["rows"]:
        lines.append(
            f"| PPO {r['backbone']}, trial length {r['trial_length']} ({r['envs']} envs) | "
            f"{r['steps_per_s']:.0f} steps/s (collect {r['collect_s']:.2f} s, update {r['update_s']:.2f} s) | |"
        )
    for length, ratio in speed["s5_over_rssm"].items():
        target = ">= 3x" if length == "1000" else ""
        lines.append(f"| s5 / rssm at {length}: whole loop, update alone | {ratio['loop']:.2f}x, {ratio['update']:.2f}x | {target} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(tyro.cli(Args))
