"""The task and the data of `memwm compare`: which memory task and probe, the episodes collected once
into the out folder's data/ and shared by every backbone, and the batches every backbone trains on in
the same order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import envs
from agents.common import atomic_write
from envs.collect import collect_episodes
from envs.dataset import SequenceSampler, load_episodes
from world_models.imagine import episodes_to_batch
from world_models.probes import junction_arm

# The data's policy per probe. The reward probe records uniform random actions: the scripted policy of
# memory/distracting-* always takes the cue's arm, so every reward would be +1 and predicting it would
# need no memory. Of those it keeps the episodes that took arm REWARD_ARM at the junction (the arm is
# drawn independently of the cue, so they are episodes of a policy that always takes that arm): the
# reward is then +1 or -1 by the cue alone. With every arm kept, the reward is an XOR of the cue and
# the arm, which a world model learns only after several times the steps for the same memory
# (benchmarks/results/compare-distracting-100).
COLLECT_POLICY = {"imagination": "scripted", "reward": "random", "doors": "scripted"}
REWARD_ARM = 0


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


__all__ = ["task_env_id", "probe_kind", "probe_shift", "ensure_data", "sequence_batches"]
