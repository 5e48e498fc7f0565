"""In-context RL benchmarks: `python -m benchmarks.icrl [--minutes M] [--parts speed bandit dark-room]`.

1. speed: recurrent PPO env steps per second (collect + update, the whole loop) with `s5` and with
   `rssm` (GRU) memory at trial lengths 200 and 1,000 (icrl/dark-room with 10 and 50 episodes of
   20 steps; one rollout chunk = one trial, so each update re-runs whole trials), side by side in
   one process; also the update alone (trained sequence steps per second). Target: s5 >= 3x rssm
   at 1,000.
2. bandit: icrl/bandit-10, PPO with s5 trained for `--minutes`, then the mean trial return over
   `--eval-trials` trials against Thompson sampling and UCB on the same trials. Target: >= 90% of
   Thompson sampling's.
3. dark-room: icrl/dark-room, PPO with s5 trained for `--minutes`, then the mean return of
   episodes 3-10 over episode 1. Target: >= 2.

Prints a table and writes a new record of the parts it ran to benchmarks/results/icrl/
(benchmarks.record; plots of the learning runs go to runs/bench-icrl/). Timings on a shared CPU are noisy:
each speed figure is the median of `--chunks` timed chunks after one warm-up chunk, the s5 and rssm chunks alternating.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

import envs
from agents import icrl
from agents.ppo import PPO, PPOConfig
from agents.ppo_agent import Collector, RecurrentPolicy
from benchmarks import record
from world_models.imagine import model_obs_space

Part = Literal["speed", "bandit", "dark-room"]


@dataclass
class Args:
    minutes: float = 10.0  # training minutes of each learning run (bandit, dark-room)
    parts: tuple[Part, ...] = ("speed", "bandit", "dark-room")
    backbone: str = "s5"  # memory of the learning runs
    seed: int = 0
    num_envs: int = 16  # parallel trials of the learning runs
    eval_trials: int = 200  # trials of the final in-context evaluation
    speed_envs: int = 8  # parallel trials of the speed runs
    lengths: tuple[int, ...] = (200, 1000)  # trial lengths of the speed runs
    chunks: int = 5  # timed chunks per speed configuration (median)
    threads: int = 1  # torch threads (1: tiny models on a shared CPU)
    results: Path = record.RESULTS  # folder of the result records (a new file per run under icrl/)
    # entropy 0.001 on bandits: a higher share of Thompson's return than 0.01 in the same minutes
    # (benchmarks/results/icrl/icrl-ent0.001.json)
    bandit_ppo: PPOConfig = field(default_factory=lambda: PPOConfig(rollout=101, gamma=0.99, ent_coef=0.001))
    room_ppo: PPOConfig = field(default_factory=lambda: PPOConfig(rollout=201, gamma=0.99, ent_coef=0.01))


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
            vec = envs.make_vector("icrl/dark-room", args.speed_envs, seed=args.seed, asynchronous=False, **options)
            ppo = make_ppo(vec, backbone, PPOConfig(rollout=length))
            runs[backbone] = (vec, ppo, Collector(ppo, vec), [], [])
        for chunk in range(args.chunks + 1):
            for _, ppo, collector, collect_s, update_s in runs.values():
                t0 = time.perf_counter()
                rollout, _ = collector.collect(seed=args.seed)
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


def learn(env_id: str, args: Args, cfg: PPOConfig, **options) -> tuple[PPO, dict]:
    """Train PPO on `env_id` for args.minutes of wall-clock time; return it and the run's record."""
    torch.manual_seed(args.seed)
    vec = envs.make_vector(env_id, args.num_envs, seed=args.seed, asynchronous=False, **options)
    ppo = make_ppo(vec, args.backbone, cfg)
    collector = Collector(ppo, vec)
    start = time.perf_counter()
    deadline = start + 60 * args.minutes
    steps, updates, curve = 0, 0, []
    while time.perf_counter() < deadline:
        rollout, finished = collector.collect(seed=args.seed)
        metrics = ppo.update(rollout)
        steps += rollout.mask.numel()
        updates += 1
        if finished["return"]:
            curve.append((steps, float(np.mean(finished["return"]))))
        if updates % 20 == 0:
            recent = np.mean([r for _, r in curve[-20:]]) if curve else float("nan")
            print(
                f"  {env_id}: {steps} steps, {(time.perf_counter() - start) / 60:.1f} min, "
                f"trial return (last 20 chunks) {recent:.2f}, entropy {metrics['ppo/entropy']:.3f}",
                flush=True,
            )
    vec.close()
    record = {
        "env": env_id,
        "backbone": args.backbone,
        "train_minutes": args.minutes,
        "train_steps": steps,
        "updates": updates,
        "num_envs": args.num_envs,
        "ppo": dataclasses.asdict(cfg),
        "options": options,
        "train_curve": curve[:: max(1, len(curve) // 50)],
    }
    return ppo, record


def bandit(args: Args) -> dict:
    ppo, record = learn("icrl/bandit-10", args, args.bandit_ppo)
    metrics, png = icrl.evaluate(
        RecurrentPolicy(ppo),
        "icrl/bandit-10",
        args.eval_trials,
        seed=10_000 + args.seed,
        num_envs=16,
        out_dir="runs/bench-icrl/bandit-10",
        step=record["train_steps"],
    )
    ratio = metrics["icrl/return_over_thompson"]
    record.update(
        eval_trials=args.eval_trials,
        metrics=metrics,
        plot=str(png),
        target="return >= 0.9 x Thompson sampling's",
        value=ratio,
        met=bool(ratio >= 0.9),
    )
    return record


def dark_room(args: Args) -> dict:
    ppo, record = learn("icrl/dark-room", args, args.room_ppo)
    metrics, png = icrl.evaluate(
        RecurrentPolicy(ppo),
        "icrl/dark-room",
        args.eval_trials,
        seed=10_000 + args.seed,
        num_envs=16,
        out_dir="runs/bench-icrl/dark-room",
        step=record["train_steps"],
    )
    ratio = metrics["icrl/later_over_first"]
    record.update(
        eval_trials=args.eval_trials,
        metrics=metrics,
        plot=str(png),
        target="mean return of episodes 3-10 >= 2 x episode 1's",
        value=ratio,
        met=bool(ratio >= 2.0),
    )
    return record


def main(args: Args) -> dict:
    torch.set_num_threads(args.threads)
    started = record.start()
    result = {"threads": args.threads, "parts": list(args.parts)}
    if "speed" in args.parts:
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
        result["speed"] = {"rows": rows, "s5_over_rssm": ratios, "target": "s5 >= 3x rssm steps/s at trial length 1000"}
    if "bandit" in args.parts:
        print(f"bandit-10: PPO + {args.backbone}, {args.minutes} min", flush=True)
        result["bandit"] = bandit(args)
    if "dark-room" in args.parts:
        print(f"dark-room: PPO + {args.backbone}, {args.minutes} min", flush=True)
        result["dark_room"] = dark_room(args)
    path = record.write_result("icrl", result, started=started, device="cpu", results=args.results)
    print(table(result))
    print(f"written: {path}")
    return result


def table(result: dict) -> str:
    """The README table (markdown)."""
    lines = ["| benchmark | measured | target |", "|---|---|---|"]
    if "speed" in result:
        for r in result["speed"]["rows"]:
            lines.append(
                f"| PPO {r['backbone']}, trial length {r['trial_length']} ({r['envs']} envs) | "
                f"{r['steps_per_s']:.0f} steps/s (collect {r['collect_s']:.2f} s, update {r['update_s']:.2f} s) | |"
            )
        for length, ratio in result["speed"]["s5_over_rssm"].items():
            target = ">= 3x" if length == "1000" else ""
            lines.append(f"| s5 / rssm at {length}: whole loop, update alone | {ratio['loop']:.2f}x, {ratio['update']:.2f}x | {target} |")
    if "bandit" in result:
        b, m = result["bandit"], result["bandit"]["metrics"]
        lines.append(
            f"| bandit-10 PPO+{b['backbone']} ({b['train_steps']} steps, {b['train_minutes']} min) trial return | "
            f"{m['icrl/trial_return']:.1f} vs Thompson {m['icrl/return_thompson']:.1f}, UCB {m['icrl/return_ucb']:.1f} "
            f"({b['value']:.2f} of Thompson) | >= 0.90 |"
        )
    if "dark_room" in result:
        d, m = result["dark_room"], result["dark_room"]["metrics"]
        lines.append(
            f"| dark-room PPO+{d['backbone']} ({d['train_steps']} steps, {d['train_minutes']} min) episodes 3-10 / episode 1 | "
            f"{d['value']:.2f} (episode 1: {m['icrl/return_ep01']:.2f}, episode 10: {m['icrl/return_ep10']:.2f}) | >= 2 |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(tyro.cli(Args))
