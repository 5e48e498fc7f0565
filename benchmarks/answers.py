"""Where a stream task's policy goes wrong: a trained Dreamer's answers by the right answer, on fresh episodes.

    python -m benchmarks.answers --runs runs/bench/count-16-s5-*-2-* --episodes 256

On the stream tasks (memory/recall-k*, memory/count-*; envs.memory.stream) every scored action has one right
answer. A run's latest checkpoint plays `--episodes` episodes from the first of its evaluation seeds (never a
training episode) with the actor's mode, as `memwm eval` does, and counts, for each right answer, how often the
actor named it, what it named instead, how often the actor's probability of it before the unimix floor was below
the floor's share (unimix / A: where the softmax gradient, REINFORCE's, can hardly move the actor to it;
agents/chain.py's right_below_floor), and how often the world model and critic rate it best (`q_best`: the one-step
imagined Q(s, a) = r + gamma * continue * V(s') of the all-actions term ranks it first): an actor wrong where
`q_best` is high is the broken link; one wrong where it is low follows its world model. A policy that is right on
common answers and wrong on rare ones (count-16's high counts) has a return that one number hides. One record per
call (benchmarks.record, `answers-<task>`), each run's folder, config, step and counts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro

from benchmarks import record


@dataclass
class Args:
    runs: list[Path] = field(default_factory=list)
    """run folders of Dreamer runs of one stream task (each with a config.yaml and a checkpoint)"""
    episodes: int = 256
    threads: int = 1
    results: Path = record.RESULTS
    """folder of the result records (a new file per call under answers-<task>/)"""


def answers(agent, env_id: str, options: dict, episodes: int, seed: int) -> dict:
    """Play `episodes` episodes from `seed` with the actor's mode; per right answer (a string key): `count`, `taken`
    (how often each action was named there), `right` (the share named right), `below_floor` (the share where the
    right answer's probability before the unimix floor was below the floor's) and `q_best` (the share where the
    one-step imagined Q ranks it first)."""
    import envs
    from agents.chain import below_floor
    from agents.common import obs_to_torch
    from envs.memory.stream import StreamTask
    from world_models.model import OBS_KEYS
    from world_models.state import State

    env = envs.make(env_id, seed=seed, **options)
    task = env.unwrapped
    if not isinstance(task, StreamTask):
        env.close()
        raise ValueError(f"{env_id} is not a stream task (memory/recall-k*, memory/count-*): its actions have no one right answer")
    A, device = int(env.action_space.n), torch.device("cpu")
    taken, below = np.zeros((A, A), np.int64), np.zeros(A, np.int64)
    starts, rights = [], []  # the states of the scored steps and their right answers, for the one-step values
    sample = agent.config.act_posterior == "sample"  # the latent memwm eval acts from (DreamerConfig.act_posterior)
    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            for episode in range(episodes):
                obs, _ = env.reset(seed=seed + episode)
                state, prev, first = agent.wm.initial_state(1, device), torch.zeros(1, agent.codec.dim), True
                while True:
                    batch = obs_to_torch({k: np.asarray(v)[None] for k, v in obs.items() if k in OBS_KEYS}, device)
                    state, feat = agent.wm.step(state, prev, batch, torch.tensor([first]), sample=sample)
                    dist = agent.actor(feat)
                    prev, first = dist.mode(), False
                    action = int(prev.argmax(-1))
                    if task.first_query <= task.t < task.length:  # a scored step: its right answer is known
                        right = int(task.answers[task.t])
                        taken[right, action] += 1
                        below[right] += int(below_floor(dist, torch.tensor([right]), agent.config.unimix)[0])
                        starts.append(state)
                        rights.append(right)
                    obs, _, terminated, truncated, _ = env.step(action)
                    if terminated or truncated:
                        break
            # what the all-actions term (DreamerConfig.all_actions) rates each answer at
            q = torch.cat([agent.one_step_values(State.cat(starts[i : i + 1024])) for i in range(0, len(starts), 1024)])
    finally:
        env.close()
    q_best = np.zeros(A, np.int64)
    np.add.at(q_best, np.asarray(rights), (q.argmax(-1).numpy() == np.asarray(rights)).astype(np.int64))
    out = {}
    for right in range(A):
        n = int(taken[right].sum())
        if n:
            out[str(right)] = {
                "count": n,
                "taken": taken[right].tolist(),
                "right": taken[right, right] / n,
                "below_floor": below[right] / n,
                "q_best": q_best[right] / n,
            }
    return out


def score(run: Path, episodes: int) -> dict:
    """The answers of the run's latest checkpoint on `episodes` episodes from its first evaluation seed."""
    from agents.common import evaluation_seed
    from agents.runs import build_dreamer, latest_checkpoint, load_run_config

    config = load_run_config(run)
    if config.agent != "dreamer":
        raise ValueError(f"{run} is a {config.agent} run; this benchmark reads a Dreamer's actor")
    payload, path = latest_checkpoint(run, torch.device("cpu"))
    agent, _ = build_dreamer(config, torch.device("cpu"))
    agent.load_state_dict(payload["agent"])
    agent.eval()
    seed = evaluation_seed(config.seed, 0, episodes)
    found = answers(agent, config.env, dict(config.env_options), episodes, seed)
    return {"env": config.env, "seed": config.seed, "step": payload["counters"]["step"], "checkpoint": path.name, "answers": found}


def main(args: Args) -> int:
    record.check_run_folders(args.runs)
    torch.set_num_threads(args.threads)
    started = record.start()
    rows = []
    for run in args.runs:
        from agents.runs import load_run_config

        config = load_run_config(run).to_dict()
        row = {"run": str(run), **score(run, args.episodes), "config": {k: v for k, v in config.items() if k != "run"}}
        rows.append(row)
        by = ", ".join(f"{k}: {v['right']:.2f}" for k, v in row["answers"].items())
        print(f"{run}: step {row['step']}, right by answer {by}", flush=True)
    path = record.write_runs("answers", rows, started=started, results=args.results, episodes=args.episodes)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(tyro.cli(Args)))
    except ValueError as e:
        print(f"benchmarks.answers: {e}", file=sys.stderr)
        sys.exit(2)
