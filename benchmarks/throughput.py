"""Throughput of the Dreamer learner: gradient steps per second of the full update, and env steps per second of the loop.

    python -m benchmarks.throughput                       # preset small, batch 16 x 64, every backbone (~10+ min on 2 CPU cores)
    python -m benchmarks.throughput --quick               # preset tiny, batch 4 x 16, 2 rounds (~1 min)
    python -m benchmarks.throughput --backbones s5 rssm   # a subset

1. Update: one `Dreamer.update` (world model, imagination of 15 steps from every replayed state,
   actor and critic) on a random batch of (B, L) 64x64x3 uint8 images of a Discrete(3) task,
   per backbone. Rounds are interleaved across backbones (a shared machine drifts); the table
   shows the median seconds per update and updates per second, and the parameter count.
2. Loop: `memwm train` on `--env` at train ratio 32 after prefill, env steps per second over the
   trained part (acting with one `WorldModel.step` per env step plus the updates it owes).
Writes benchmarks/results/throughput-<device>.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import tyro

import world_models
from agents.config import TrainConfig
from agents.dreamer import Dreamer

RESULTS = Path(__file__).parent / "results"


@dataclass
class Args:
    preset: str = "small"
    batch_size: int = 16
    seq_len: int = 64
    backbones: list[str] = field(default_factory=lambda: list(world_models.BACKBONES))
    rounds: int = 3
    """timed updates per backbone (after one warm-up update)"""
    env: str = "minigrid/memory-s7"
    """environment of the loop measurement"""
    loop_steps: int = 1024
    """env steps timed after prefill in the loop measurement (0 skips it)"""
    loop_backbone: str = "s5"
    train_ratio: float = 32.0
    device: str = "auto"
    threads: int = 0
    quick: bool = False
    """preset tiny, batch 4 x 16, 2 rounds, 256 loop steps"""


def random_batch(codec, B: int, L: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {
        "image": torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8, generator=g),
        "action": torch.from_numpy(codec.random(B * L, np.random.default_rng(seed)).reshape(B, L, codec.dim)),
        "reward": (torch.rand(B, L, generator=g) < 0.05).float(),
        "is_first": torch.rand(B, L, generator=g) < 0.01,
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def time_updates(args: Args, device: torch.device) -> dict[str, dict]:
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    act_space = gym.spaces.Discrete(3)
    wm_config = world_models.WorldModelConfig.preset(args.preset)
    agents = {}
    for name in args.backbones:
        wm = world_models.make(name, obs_space, act_space, wm_config, device=device)
        agents[name] = Dreamer(wm, act_space, wm_config=wm_config).to(device)
    batch = random_batch(agents[args.backbones[0]].codec, args.batch_size, args.seq_len, device)
    times = {name: [] for name in agents}
    for name, agent in agents.items():
        agent.update(batch)  # warm-up: allocations, lazy optimiser state, kernel compilation
    for _ in range(args.rounds):
        for name, agent in agents.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            agent.update(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, agent in agents.items():
        median = statistics.median(times[name])
        out[name] = {"seconds_per_update": median, "updates_per_s": 1.0 / median, "times": times[name],
                     "wm_params": agent.wm.num_params(), "total_params": sum(p.numel() for p in agent.parameters())}
    return out


def time_loop(args: Args, device: torch.device) -> dict:
    from agents.train import Trainer

    prefill = args.batch_size * args.seq_len
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(env=args.env, backbone=args.loop_backbone, preset=args.preset, steps=prefill + args.loop_steps,
                             run=str(Path(tmp) / "run"), device=device.type, num_envs=4, train_ratio=args.train_ratio,
                             prefill=prefill, batch_size=args.batch_size, seq_len=args.seq_len, eval_every=0,
                             eval_episodes=1, video_every=-1, log_every=args.loop_steps, checkpoint_every=10**9,
                             tensorboard=False, threads=args.threads)
        trainer = Trainer(config)
        start = {}

        original = trainer._train_owed

        def timed(logger):  # start the clock when the first update is owed (prefill is done)
            if not start and trainer.counters["step"] >= prefill and len(trainer.replay) >= args.seq_len:
                start.update(time=time.perf_counter(), step=trainer.counters["step"], updates=trainer.counters["updates"])
            original(logger)

        trainer._train_owed = timed
        trainer._evaluate = lambda: {}
        trainer.run()
        elapsed = time.perf_counter() - start["time"]
        steps = trainer.counters["step"] - start["step"]
        return {"env": args.env, "backbone": args.loop_backbone, "train_ratio": args.train_ratio, "env_steps": steps,
                "updates": trainer.counters["updates"] - start["updates"], "seconds": elapsed, "env_steps_per_s": steps / elapsed}


def main(args: Args) -> dict:
    if args.quick:
        args.preset, args.batch_size, args.seq_len, args.rounds, args.loop_steps = "tiny", 4, 16, 2, 256
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"machine": platform.processor() or platform.machine(), "device": str(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "preset": args.preset, "batch": [args.batch_size, args.seq_len]}
    result["update"] = time_updates(args, device)
    print(f"full update (world model + imagination 15 + actor + critic), preset {args.preset}, batch "
          f"{args.batch_size} x {args.seq_len}, 64x64 images, {device}, median of {args.rounds}")
    print(f"{'backbone':<12} {'s/update':>9} {'updates/s':>10} {'wm params':>11}")
    for name, r in result["update"].items():
        print(f"{name:<12} {r['seconds_per_update']:>9.3f} {r['updates_per_s']:>10.3f} {r['wm_params']:>11,}")
    if args.loop_steps:
        loop = result["loop"] = time_loop(args, device)
        print(f"loop: {loop['env']} {loop['backbone']} train ratio {loop['train_ratio']:g}: "
              f"{loop['env_steps_per_s']:.1f} env steps/s ({loop['env_steps']} steps, {loop['updates']} updates, {loop['seconds']:.1f} s)")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"throughput-{device.type}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
