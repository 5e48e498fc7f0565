"""Data-parallel scaling of `memwm train`'s two halves: env steps/s and gradient steps/s with 1 and 2 processes.

    python -m benchmarks.scaling                 # 1 process x 1 thread, 1 x 2 threads, 2 processes x 1 thread
    python -m benchmarks.scaling --quick         # fewer steps (a busy machine)

Each configuration runs under `torchrun --nproc-per-node N` (N = 1 is the one-process code path:
no process group) and measures, on every rank at once, with barriers around each timed part:
- acting: `Dreamer.policy` (one world-model step) + the vector env's step + `Replay.add_step`
  for `num_envs` envs per rank; env steps/s counts all ranks' steps;
- learning: `Dreamer.update` on replayed batches, gradients averaged over ranks
  (agents.distributed.average_gradients); one gradient step is one step of all ranks together,
  each on its own batch, so the samples per second grow with N.
Each run writes a new record to benchmarks/results/scaling/ (benchmarks.record) and prints a
markdown table. Timings on a shared machine are noisy: the table gives the median over repeats of
each timed part.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import record

CONFIGS = ((1, 1), (1, 2), (2, 1))  # (processes, torch threads per process)


def worker(args: argparse.Namespace) -> None:
    """One rank: time acting and updates; rank 0 writes the medians to args.out."""
    import numpy as np
    import torch

    from agents import distributed
    from agents.config import TrainConfig, resolve
    from agents.env_workers import parallel_envs
    from agents.replay import Replay
    from agents.common import FLAGS, obs_to_torch
    from agents.runs import build_dreamer
    from agents.train import to_torch

    torch.set_num_threads(args.threads)
    device = distributed.init(torch.device("cpu"))
    config = resolve(
        TrainConfig(
            env=args.env,
            backbone=args.backbone,
            preset="tiny",
            num_envs=args.num_envs,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            async_envs=args.async_envs,
        )
    )
    torch.manual_seed(0)
    env = parallel_envs(config.env, config.num_envs, seed=distributed.rank_seed(0), asynchronous=config.async_envs)
    agent, (obs_space, _) = build_dreamer(config, device, (env.single_observation_space, env.single_action_space))
    distributed.broadcast_state(agent)
    codec, n = agent.codec, config.num_envs
    replay = Replay(10 * args.act_steps * n, None, seed=distributed.rank_seed(0))
    rng = np.random.default_rng(distributed.rank_seed(0))
    obs, _ = env.reset(seed=distributed.rank_seed(0))
    state = agent.wm.initial_state(n, device)
    prev = torch.zeros(n, codec.dim)
    reward = np.zeros(n, np.float32)

    def act(steps: int) -> None:
        nonlocal obs, state, prev, reward
        for _ in range(steps):
            flags = {k: np.asarray(obs[k], bool) for k in FLAGS}
            action, state = agent.policy(state, obs_to_torch(obs, device), prev, torch.as_tensor(flags["is_first"]))
            action = torch.as_tensor(codec.random(n, rng))  # random actions: episodes of the usual length
            a = action.numpy()
            for i in range(n):
                step = {k: np.asarray(obs[k][i]) for k in obs_space.spaces}
                step.update(action=a[i], reward=np.float32(reward[i]), **{k: flags[k][i] for k in FLAGS})
                replay.add_step(step, worker=i)
            obs, reward, *_ = env.step(codec.to_env(a))
            reward = np.asarray(reward, np.float32)
            prev = action

    def timed(fn, repeats: int) -> list[float]:
        times = []
        for _ in range(repeats):
            distributed.barrier()
            t0 = time.perf_counter()
            fn()
            distributed.barrier()
            times.append(time.perf_counter() - t0)
        return times

    act(5)  # warm up
    act_times = timed(lambda: act(args.act_steps), args.repeats)
    while not distributed.all_true(len(replay) >= config.seq_len):
        act(args.act_steps)
    update = lambda: [agent.update(to_torch(replay.sample(config.batch_size, config.seq_len), device)) for _ in range(args.updates)]
    agent.update(to_torch(replay.sample(config.batch_size, config.seq_len), device))  # warm up
    update_times = timed(update, args.repeats)
    env.close()
    distributed.check_in_sync(agent, "the weights after the timed updates")
    world = distributed.world_size()
    if distributed.is_main():
        act_s, upd_s = statistics.median(act_times), statistics.median(update_times)
        result = {
            "processes": world,
            "threads": args.threads,
            "env_steps_per_s": world * n * args.act_steps / act_s,
            "grad_steps_per_s": args.updates / upd_s,
            "replayed_steps_per_s": world * config.batch_size * config.seq_len * args.updates / upd_s,
            "act_seconds": act_times,
            "update_seconds": update_times,
        }
        Path(args.out).write_text(json.dumps(result))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(procs: int, threads: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(procs),
            "--master-port",
            str(_free_port()),
            "-m",
            "benchmarks.scaling",
            "--",
            "--worker",
            "--out",
            str(out),
            "--threads",
            str(threads),
            *_shared_flags(args),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{procs} process(es) x {threads} thread(s) failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def _shared_flags(args: argparse.Namespace) -> list[str]:
    flags = [
        "--env",
        args.env,
        "--backbone",
        args.backbone,
        "--num-envs",
        str(args.num_envs),
        "--batch-size",
        str(args.batch_size),
        "--seq-len",
        str(args.seq_len),
        "--act-steps",
        str(args.act_steps),
        "--updates",
        str(args.updates),
        "--repeats",
        str(args.repeats),
    ]
    return flags + (["--async-envs"] if args.async_envs else [])


def table(rows: list[dict]) -> str:
    base = rows[0]
    lines = ["| processes x threads | env steps/s | vs 1x1 | gradient steps/s | replayed steps/s | vs 1x1 |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['processes']} x {r['threads']} | {r['env_steps_per_s']:.0f} | "
            f"{r['env_steps_per_s'] / base['env_steps_per_s']:.2f}x | {r['grad_steps_per_s']:.2f} | "
            f"{r['replayed_steps_per_s']:.0f} | {r['replayed_steps_per_s'] / base['replayed_steps_per_s']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)  # a worker's result file
    p.add_argument("--results", default=str(record.RESULTS), help="folder of the result records (a new file per run under scaling/)")
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--env", default="memory/distracting-100")
    p.add_argument("--backbone", default="s5")
    p.add_argument("--num-envs", type=int, default=4, help="environments per process")
    p.add_argument("--async-envs", action="store_true", help="one worker process per environment")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per update and process")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--act-steps", type=int, default=100, help="vector env steps per timed acting part")
    p.add_argument("--updates", type=int, default=5, help="gradient steps per timed learning part")
    p.add_argument("--repeats", type=int, default=3, help="timed parts; the median is reported")
    p.add_argument("--quick", action="store_true", help="act-steps 30, updates 2, batch 8 (a busy machine)")
    args = p.parse_args(argv)
    if args.quick:
        args.act_steps, args.updates, args.batch_size = 30, 2, 8
    if args.worker:
        worker(args)
        return
    started = record.start()
    rows = []
    for procs, threads in CONFIGS:
        print(f"scaling: {procs} process(es) x {threads} thread(s) ...", file=sys.stderr)
        rows.append(run_config(procs, threads, args))
    result = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "out", "results", "threads", "quick")},
        "runs": rows,
        "table": table(rows),
    }
    path = record.write_result("scaling", result, started=started, device="cpu", results=Path(args.results))
    print(table(rows))
    print(f"scaling: results in {path}")


if __name__ == "__main__":
    main()
