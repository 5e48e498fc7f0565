"""Throughput of the Dreamer learner: gradient steps per second of the full update, and env steps per second of the loop.

    python -m benchmarks.throughput                       # preset small, batch 16 x 64, every backbone
    python -m benchmarks.throughput --quick               # preset tiny, batch 4 x 16, 2 rounds
    python -m benchmarks.throughput --backbones s5 rssm   # a subset
    python -m benchmarks.throughput --sheeprl /tmp/sheeprl-venv/bin/python --backbones s5 rssm --rounds 5 --threads 1
                                                          # side by side with sheeprl 0.8.4's DreamerV3 (see below)
    ... --precision bf16 [--sheeprl-precision 32]         # bf16 autocast on both sides [memwm only: mixed vs default]
    ... --compile                                         # also each backbone compiled (torch.compile), beside the eager one

1. Update: one `Dreamer.update` (world model, imagination of 15 steps from every replayed state,
   actor and critic) on a random batch of (B, L) 64x64x3 uint8 images of a Discrete(3) task,
   per backbone. Rounds are interleaved across backbones (a shared machine drifts); the table
   shows the median seconds per update and updates per second, and the parameter count.
   `--compile` adds each backbone with its dense networks compiled (`memwm train --compile`) beside it.
2. Loop: `memwm train` on `--env` at train ratio 32 after prefill, env steps per second over the
   trained part (acting with one `WorldModel.step` per env step plus the updates it owes).
3. `--sheeprl PYTHON`: memwm's update (per backbone) against sheeprl 0.8.4's DreamerV3 update
   (benchmarks/sheeprl_dreamer.py, run by PYTHON, the interpreter of a venv that holds sheeprl), same
   batch, sequence length, image size and parameter count. Each agent lives in its own worker process
   (`--worker`), built and warmed up once; the rounds are interleaved (memwm s5, memwm rssm, sheeprl,
   repeat) and one update runs at a time, so the machine's load weighs on both alike. The ratio is
   memwm's updates/s over sheeprl's, from the medians and from the per-round pairs; each run writes a
   new record to benchmarks/results/throughput-vs-sheeprl/, and the ratios are also pooled over every
   record of the same memwm code (`pooled` in the new record). The roofline beside it: each worker
   counts the FLOPs of one update's matrix products and convolutions (torch's FlopCounterMode; the
   elementwise work is not counted), every round also times a matrix product on this process's threads
   (`matmul_gflops`, this machine's fp32 rate now), and `ceiling_ratio_vs_sheeprl` is the ratio memwm
   would reach if its every counted FLOP ran at that rate and nothing else took time.
Otherwise each run writes a new record to benchmarks/results/throughput-<device>/ (benchmarks.record).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import tyro

import world_models
from agents.common import keep_freed_memory
from agents.dreamer import Dreamer
from benchmarks import record


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
    sheeprl: str = ""
    """python of a venv with sheeprl 0.8.4: time memwm's update against sheeprl's DreamerV3, side by side"""
    precision: Literal["32", "bf16"] = "32"
    """fp32, or bfloat16 autocast (memwm: `Dreamer(precision=...)`, as `memwm train --precision`; with --sheeprl
    also sheeprl's fabric.precision=bf16-mixed unless --sheeprl-precision says otherwise)"""
    sheeprl_precision: Literal["", "32", "bf16"] = ""
    """with --sheeprl: sheeprl's precision when it differs from memwm's (e.g. memwm bf16 against sheeprl's default 32)"""
    results: Path = record.RESULTS
    """folder of the result records (a new file per run)"""
    compile: bool = False
    """also time each backbone with its dense networks compiled (`memwm train --compile`, `Dreamer.compile_networks`):
    with --sheeprl a second worker per backbone, `memwm-<backbone>-compiled`, beside the eager one"""
    worker: str = ""
    """internal: serve timed updates of this backbone over stdin/stdout (used by --sheeprl)"""


def counted_flops(update) -> int:
    """The FLOPs of the matrix products and convolutions of one call of `update` (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        update()
    return int(counter.get_total_flops())


def matmul_gflops(size: int = 1024, reps: int = 6) -> float:
    """The fp32 rate (GFLOP/s) of a (size x size) matrix product on this process's torch threads: the best of `reps`."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


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


def make_agent(name: str, preset: str, device: torch.device, precision: str = "32") -> Dreamer:
    """The Dreamer of backbone `name` for 64x64x3 images and Discrete(3) actions (the benchmark's task)."""
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    act_space = gym.spaces.Discrete(3)
    wm_config = world_models.WorldModelConfig.preset(preset)
    wm = world_models.make(name, obs_space, act_space, wm_config, device=device)
    return Dreamer(wm, act_space, wm_config=wm_config, precision=precision).to(device)


def param_counts(agent: Dreamer) -> dict[str, int]:
    """World-model, trainable (world model, actor, critic) and total (with the slow critic) parameters."""
    count = lambda module: sum(p.numel() for p in module.parameters())
    trainable = count(agent.wm) + count(agent.actor) + count(agent.critic)
    return {"wm_params": agent.wm.num_params(), "trainable_params": trainable, "total_params": count(agent)}


def time_updates(args: Args, device: torch.device) -> dict[str, dict]:
    agents = {name: make_agent(name, args.preset, device, args.precision) for name in args.backbones}
    for name in args.backbones if args.compile else ():
        agents[f"{name}-compiled"] = make_agent(name, args.preset, device, args.precision)
        agents[f"{name}-compiled"].compile_networks()
    batch = random_batch(agents[args.backbones[0]].codec, args.batch_size, args.seq_len, device)
    times = {name: [] for name in agents}
    for agent in agents.values():
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
        out[name] = {"seconds_per_update": median, "updates_per_s": 1.0 / median, "times": times[name], **param_counts(agent)}
    return out


def time_loop(args: Args, device: torch.device) -> dict:
    from agents.config import TrainConfig
    from agents.train import build

    prefill = args.batch_size * args.seq_len
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            env=args.env,
            backbone=args.loop_backbone,
            preset=args.preset,
            steps=prefill + args.loop_steps,
            run=str(Path(tmp) / "run"),
            device=device.type,
            num_envs=4,
            train_ratio=args.train_ratio,
            prefill=prefill,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            eval_every=0,
            eval_episodes=1,
            video_every=-1,
            log_every=args.loop_steps,
            checkpoint_every=10**9,
            tensorboard=False,
            threads=args.threads,
        )
        loop = build(config)
        agent, counters = loop.agent, loop.counters
        start = {}

        original = agent.update

        def timed(counters):  # start the clock when the first update is owed (prefill is done)
            if not start and counters["step"] >= prefill and len(agent.replay) >= args.seq_len:
                start.update(time=time.perf_counter(), step=counters["step"], updates=counters["updates"])
            return original(counters)

        agent.update = timed
        agent.evaluate = lambda *args: {}
        loop.run()
        elapsed = time.perf_counter() - start["time"]
        steps = counters["step"] - start["step"]
        return {
            "env": args.env,
            "backbone": args.loop_backbone,
            "train_ratio": args.train_ratio,
            "env_steps": steps,
            "updates": counters["updates"] - start["updates"],
            "seconds": elapsed,
            "env_steps_per_s": steps / elapsed,
        }


def serve(args: Args) -> None:
    """Worker of `vs_sheeprl`: build the agent of backbone `args.worker`, warm it up, print a JSON header, then one
    update per `step` line on stdin, printing its seconds (the protocol of benchmarks/sheeprl_dreamer.py --serve)."""
    torch.set_num_threads(args.threads or 1)
    device = torch.device("cpu")
    keep_freed_memory()  # as memwm train does on the CPU
    agent = make_agent(args.worker, args.preset, device, args.precision)
    batch = random_batch(agent.codec, args.batch_size, args.seq_len, device)
    agent.update(batch)  # warm-up
    flops = counted_flops(lambda: agent.update(batch))  # eager: compiled kernels do not pass torch's dispatcher
    compile_seconds = None
    if args.compile:
        start = time.perf_counter()
        agent.compile_networks()
        agent.update(batch)  # compiles every network's forward and backward
        compile_seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                **param_counts(agent),
                "flops_per_update": flops,
                "memwm_code": code_version(),
                "versions": {"torch": torch.__version__, "python": platform.python_version()},
                "threads": torch.get_num_threads(),
                "batch": [args.batch_size, args.seq_len],
                "precision": args.precision,
                "compiled": args.compile,
                "compile_seconds": compile_seconds,
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        if line.strip() != "step":
            raise ValueError(f"benchmarks.throughput --worker: expected the line 'step', got {line.strip()!r}")
        start = time.perf_counter()
        agent.update(batch)
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


class Worker:
    """A process serving timed updates: `header` from its first JSON line, `step()` the seconds of one update."""

    def __init__(self, name: str, command: list[str], threads: int):
        self.name = name
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )
        self.header = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:  # libraries may print to stdout: the protocol's lines are JSON objects
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"worker {self.name} exited with code {self.proc.wait()} (command: {' '.join(self.proc.args)})")

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return self._read()["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (what `uptime` prints)."""
    return [round(x, 2) for x in os.getloadavg()]


def code_version() -> str:
    """A hash of the memwm modules (agents, world_models, kernels) this process has loaded, i.e. of the code a worker's
    update runs: runs of different code are not pooled, and a change to code it does not load does not split them."""
    digest = hashlib.sha1()
    for name in sorted(sys.modules):
        file = getattr(sys.modules[name], "__file__", None)
        if name.split(".")[0] in ("agents", "world_models", "kernels") and file:
            digest.update(name.encode() + b"\0" + Path(file).read_bytes())
    return digest.hexdigest()[:12]


def vs_sheeprl(args: Args) -> dict:
    """memwm's update per backbone against sheeprl's DreamerV3 update, interleaved rounds in separate processes."""
    if not Path(args.sheeprl).is_file():
        raise ValueError(
            f"--sheeprl {args.sheeprl!r} is not a file; expected the python of a venv that holds sheeprl "
            "0.8.4, e.g. /tmp/sheeprl-venv/bin/python (see benchmarks/sheeprl_dreamer.py)"
        )
    threads = args.threads or 1
    size = ["--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
    script = str(Path(__file__).with_name("sheeprl_dreamer.py"))
    memwm = [sys.executable, "-m", "benchmarks.throughput", "--preset", args.preset, *size, "--precision", args.precision]
    memwm += ["--threads", str(threads)]
    commands = {}
    for name in args.backbones:
        commands[f"memwm-{name}"] = [*memwm, "--worker", name]
        if args.compile:
            commands[f"memwm-{name}-compiled"] = [*memwm, "--worker", name, "--compile"]
    wm = world_models.WorldModelConfig.preset(args.preset)  # the same sizes in sheeprl's config
    sizes = [f"--{k.replace('_', '-')}={getattr(wm, k)}" for k in ("deter", "hidden", "mlp_layers", "cnn_depth", "stoch", "classes")]
    sheeprl_precision = args.sheeprl_precision or args.precision
    commands["sheeprl"] = [
        args.sheeprl,
        script,
        "--serve",
        *size,
        *sizes,
        "--threads",
        str(threads),
        "--precision",
        {"32": "32-true", "bf16": "bf16-mixed"}[sheeprl_precision],
    ]
    workers = {}
    torch.set_num_threads(threads)  # the matrix-product rate at the workers' threads
    try:
        for name, command in commands.items():  # one at a time: a build does not overlap another's warm-up
            workers[name] = Worker(name, command, threads)
            print(f"{name}: {workers[name].header['trainable_params']:,} trainable parameters", flush=True)
        times = {name: [] for name in workers}
        load_before, loads, rates = load(), [], []
        for r in range(args.rounds):
            for name, worker in workers.items():
                times[name].append(worker.step())
            rates.append(matmul_gflops())
            loads.append(load())
            print(
                f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()) + f"  (load {loads[-1]})",
                flush=True,
            )
    finally:
        for worker in workers.values():
            worker.close()
    out = {
        "threads": threads,
        "rounds": args.rounds,
        "preset": args.preset,
        "batch": [args.batch_size, args.seq_len],
        "precision": args.precision,
        "sheeprl_precision": sheeprl_precision,
        "memwm_code": workers[f"memwm-{args.backbones[0]}"].header["memwm_code"],
        "image": [64, 64, 3],
        "load_before": load_before,
        "load_per_round": loads,
        "matmul_gflops_per_round": rates,
        "matmul_gflops": statistics.median(rates),
        "agents": {},
    }
    sheeprl_median = statistics.median(times["sheeprl"])
    for name, worker in workers.items():
        median = statistics.median(times[name])
        entry = {**worker.header, "times": times[name], "seconds_per_update": median, "updates_per_s": 1.0 / median}
        entry["gflops"] = entry["flops_per_update"] / median / 1e9  # the counted FLOPs' achieved rate
        if name != "sheeprl":  # memwm updates/s over sheeprl's: from the medians, and the median of the per-round pairs
            entry["ratio_vs_sheeprl"] = sheeprl_median / median
            entry["ratio_vs_sheeprl_paired"] = statistics.median(s / m for s, m in zip(times["sheeprl"], times[name]))
            # every counted FLOP at the matrix-product rate, nothing else: the most this update's arithmetic allows
            entry["ceiling_ratio_vs_sheeprl"] = sheeprl_median / (entry["flops_per_update"] / (out["matmul_gflops"] * 1e9))
        out["agents"][name] = entry
    return out


def main(args: Args) -> dict:
    if args.worker:
        serve(args)
        return {}
    if args.sheeprl:
        return main_vs_sheeprl(args)
    if args.quick:
        args.preset, args.batch_size, args.seq_len, args.rounds, args.loop_steps = "tiny", 4, 16, 2, 256
    started = record.start()
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cpu":
        keep_freed_memory()  # as memwm train does on the CPU
    result = {"threads": torch.get_num_threads(), "preset": args.preset, "batch": [args.batch_size, args.seq_len]}
    result["update"] = time_updates(args, device)
    print(
        f"full update (world model + imagination 15 + actor + critic), preset {args.preset}, batch "
        f"{args.batch_size} x {args.seq_len}, 64x64 images, {device}, median of {args.rounds}"
    )
    print(f"{'backbone':<12} {'s/update':>9} {'updates/s':>10} {'wm params':>11}")
    for name, r in result["update"].items():
        print(f"{name:<12} {r['seconds_per_update']:>9.3f} {r['updates_per_s']:>10.3f} {r['wm_params']:>11,}")
    if args.loop_steps:
        loop = result["loop"] = time_loop(args, device)
        print(
            f"loop: {loop['env']} {loop['backbone']} train ratio {loop['train_ratio']:g}: "
            f"{loop['env_steps_per_s']:.1f} env steps/s ({loop['env_steps']} steps, {loop['updates']} updates, {loop['seconds']:.1f} s)"
        )
    path = record.write_result(
        f"throughput-{device.type}{'-quick' if args.quick else ''}", result, started=started, device=device.type, results=args.results
    )
    print(f"wrote {path}")
    return result


def pooled_vs_sheeprl(runs: list[dict]) -> dict:
    """Pool the stored runs that share threads, preset, batch and precisions, and memwm's code (`memwm_code`) with the
    newest of them: per memwm agent, the median over every round of every pooled run of the paired ratio (sheeprl's
    seconds over memwm's in the same round) and the ratio of the medians."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        key = f"{run['threads']}_threads {run['preset']} {run['batch'][0]}x{run['batch'][1]} {run['precision']}"
        if run.get("sheeprl_precision", run["precision"]) != run["precision"]:  # mixed: memwm's precision vs sheeprl's
            key += f" vs sheeprl {run['sheeprl_precision']}"
        groups.setdefault(key, []).append(run)
    out = {}
    for key, group in groups.items():
        code = group[-1].get("memwm_code")  # runs before a change of memwm's update measured other code
        group = [run for run in group if run.get("memwm_code") == code]
        sheeprl = [t for run in group for t in run["agents"]["sheeprl"]["times"]]
        out[key] = {
            "runs": len(group),
            "rounds": len(sheeprl),
            "memwm_code": code,
            "sheeprl_seconds_per_update": statistics.median(sheeprl),
        }
        for name in group[-1]["agents"]:
            if name == "sheeprl" or not all(name in run["agents"] for run in group):
                continue
            mine = [t for run in group for t in run["agents"][name]["times"]]
            pairs = [s / m for run in group for s, m in zip(run["agents"]["sheeprl"]["times"], run["agents"][name]["times"])]
            out[key][name] = {
                "seconds_per_update": statistics.median(mine),
                "ratio_vs_sheeprl": statistics.median(sheeprl) / statistics.median(mine),
                "ratio_vs_sheeprl_paired": statistics.median(pairs),
            }
    return out


def main_vs_sheeprl(args: Args) -> dict:
    """Run `vs_sheeprl`, print its table and write it as a new record of `throughput-vs-sheeprl`, with `pooled` over
    it and every earlier record (the machine is shared and one run's medians drift)."""
    started = record.start()
    result = vs_sheeprl(args)
    print(
        f"full update, preset {args.preset} vs sheeprl DreamerV3 at the same sizes, batch {args.batch_size} x "
        f"{args.seq_len}, 64x64 images, cpu, memwm {args.precision} vs sheeprl {result['sheeprl_precision']}, "
        f"{result['threads']} thread(s), median of {args.rounds} "
        f"interleaved rounds"
    )
    print(
        f"{'agent':<16} {'s/update':>9} {'updates/s':>10} {'params':>11} {'GFLOP':>7} {'GFLOP/s':>8} "
        f"{'memwm/sheeprl':>14} {'paired':>7} {'ceiling':>8}"
    )
    for name, r in result["agents"].items():
        keys = ("ratio_vs_sheeprl", "ratio_vs_sheeprl_paired", "ceiling_ratio_vs_sheeprl")
        ratio, paired, ceiling = (f"{r[k]:.2f}x" if k in r else "" for k in keys)
        print(
            f"{name:<16} {r['seconds_per_update']:>9.3f} {r['updates_per_s']:>10.3f} {r['trainable_params']:>11,} "
            f"{r['flops_per_update'] / 1e9:>7.1f} {r['gflops']:>8.1f} {ratio:>14} {paired:>7} {ceiling:>8}"
        )
    print(
        f"a {result['matmul_gflops']:.1f} GFLOP/s matrix product on {result['threads']} thread(s) (median of the rounds); "
        "ceiling: memwm over sheeprl if every counted FLOP of memwm's update ran at that rate"
    )
    earlier = [run["payload"]["run"] for run in record.all_runs("throughput-vs-sheeprl", args.results)]
    pooled = pooled_vs_sheeprl(earlier + [result])
    path = record.write_result(
        "throughput-vs-sheeprl", {"run": result, "pooled": pooled}, started=started, device="cpu", results=args.results
    )
    for key, pool in pooled.items():
        print(
            f"pooled over {pool['runs']} run(s), {pool['rounds']} rounds ({key}): "
            + ", ".join(
                f"{n} {v['ratio_vs_sheeprl_paired']:.2f}x paired, {v['ratio_vs_sheeprl']:.2f}x of medians"
                for n, v in pool.items()
                if isinstance(v, dict)
            )
        )
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    args = tyro.cli(Args)
    try:
        main(args)
    except ValueError as e:  # a bad flag value: one line, not a traceback
        print(f"benchmarks.throughput: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
