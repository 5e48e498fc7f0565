"""Where Dreamer's learning chain breaks on reward-only memory tasks: the world model alone, offline.

    python -m benchmarks.reward_link --task memory/recall-k1 --b "reward_head_init=torch" --seeds 0 1 2
    python -m benchmarks.reward_link --task memory/recall-k8 --a "" --b "ssm_state_features=True" --updates 3000

On memory/recall-k<K> the observations are i.i.d. symbols: nothing but the reward asks the world model
to remember, and the reward (+1 if the action names the symbol K steps back, else -1, in the task's
reward unit) is a product of the action and a remembered symbol. This benchmark collects episodes
of a uniformly random policy, trains only the world model (the defaults of `memwm train`, preset
tiny, rewards in their unit as the learner sees them) on whole episodes, and every `--every`
updates scores on held-out episodes:
  - reward: the reward head's squared error on the scored steps relative to their variance
    (1.0 = predicts the mean; 0 = exact) and its sign accuracy against the majority rate;
  - memory: linear probes (standardised features, fit on half the held-out steps, scored on the
    other half) of the symbol K steps back from the backbone output h_t and from the posterior z.
Arms a and b are world-model config overrides (`name=value`, space separated), run on the same seeds,
data and batches. One record per call (benchmarks.record, `reward-link-<task>`).
"""

from __future__ import annotations

import ast
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import tyro

from benchmarks import record


@dataclass
class Args:
    task: str = "memory/recall-k1"
    """a memwm stream task with a Discrete action space (memory/recall-k<K>)"""
    a: str = ""
    """arm a: world-model config overrides, e.g. "reward_head_init=zeros" ("" = the training defaults)"""
    b: str = "reward_head_init=torch"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    updates: int = 1500
    every: int = 250
    episodes: int = 400
    """training episodes of the random policy (held-out: 128 more)"""
    batch: int = 8
    lr: float = 1e-3


def parse_overrides(text: str) -> dict:
    out = {}
    for item in text.split():
        name, _, value = item.partition("=")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def collect(task: str, episodes: int, seed: int) -> tuple:
    """Random-policy episodes as dicts of (T, ...) arrays in replay format (action after the observation)."""
    import envs

    env = envs.make(task, seed=seed)
    rng = np.random.default_rng(seed)
    n = env.action_space.n
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed * 1_000_003 + i)
        steps, reward, done = [], 0.0, False
        while True:
            a = int(rng.integers(n))
            symbol = int(env.unwrapped.stream[len(steps)])
            steps.append((obs["vector"], np.eye(n, dtype=np.float32)[a], reward, len(steps) == 0, done, symbol))
            if done:
                break
            obs, reward, done, _, _ = env.step(a)
        vec, act, rew, first, term, sym = zip(*steps)
        out.append(
            {
                "vector": np.stack(vec),
                "action": np.stack(act),
                "reward": np.array(rew, np.float32),
                "is_first": np.array(first),
                "is_terminal": np.array(term),
                "symbol": np.array(sym),
            }
        )
    return env, out


def stack(episodes: list[dict], idx) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.stack([episodes[i][k] for i in idx])) for k in episodes[0]}


def probe_accuracy(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 300) -> float:
    """A linear classifier of y (N,) from x (N, F), fit on the first half (standardised), scored on the second."""
    n = len(y) // 2
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-6)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), 1e-2)
    with torch.enable_grad():
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(lin(x[:n]), y[:n])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return float((lin(x[n:]).argmax(-1) == y[n:]).float().mean())


@torch.no_grad()
def score(wm, test: dict[str, torch.Tensor], k: int, symbols: int) -> dict[str, float]:
    wm.eval()
    _, _, feat, _ = wm.observe({"vector": test["vector"]}, test["action"], test["is_first"], sample=False)
    wm.train()
    reward, pred = test["reward"], wm.reward(feat, test["action"])
    scored = reward != 0
    rel = float((pred[scored] - reward[scored]).pow(2).mean() / reward[scored].pow(2).mean())
    sign = float(((pred[scored] > 0) == (reward[scored] > 0)).float().mean())
    majority = float(max((reward[scored] > 0).float().mean(), (reward[scored] < 0).float().mean()))
    h, z = feat[..., : wm.h_dim], feat[..., wm.h_dim :]
    # h_t has read z_{t-1}: the symbol the action after observation t-1 names is s_{t-1-k}
    target = test["symbol"][:, : -(k + 1)].reshape(-1)
    return {
        "reward_rel_mse": rel,
        "reward_sign": sign,
        "reward_sign_majority": majority,
        "h_probe": probe_accuracy(h[:, k + 1 :].reshape(-1, h.shape[-1]), target, symbols),
        "z_probe_now": probe_accuracy(z.reshape(-1, z.shape[-1]), test["symbol"].reshape(-1), symbols),
    }


def run_arm(args: Args, overrides: dict, seed: int, train: list[dict], test: dict, env) -> list[dict]:
    import world_models
    from agents.config import train_wm_config
    from world_models.imagine import model_obs_space

    torch.manual_seed(seed)
    backbone = overrides.pop("backbone", "s5")
    config = train_wm_config("tiny").replace(**overrides)
    wm = world_models.make(backbone, model_obs_space(env.observation_space), env.action_space, config)
    opt = torch.optim.Adam(wm.parameters(), lr=args.lr, eps=1e-8)
    rng = np.random.default_rng(seed)
    unit = max(float(np.abs(e["reward"]).max()) for e in train)  # rewards in their unit, as the learner sees them
    k, symbols = env.unwrapped.k, env.unwrapped.symbols
    curve = []
    for update in range(args.updates + 1):
        if update % args.every == 0:
            curve.append({"update": update, **score(wm, {**test, "reward": test["reward"] / unit}, k, symbols)})
        batch = stack(train, rng.integers(len(train), size=args.batch))
        batch["reward"] = batch["reward"] / unit
        loss, _ = wm.loss({key: v for key, v in batch.items() if key != "symbol"})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), 1000.0)
        opt.step()
    return curve


def main(args: Args) -> None:
    torch.set_num_threads(1)
    if not args.task.startswith("memory/recall-k"):
        print(f"benchmarks.reward_link: error: --task must be memory/recall-k<K>, got {args.task!r}", file=sys.stderr)
        raise SystemExit(2)
    started = record.start()
    results = []
    for seed in args.seeds:
        env, train = collect(args.task, args.episodes, seed)
        _, held_out = collect(args.task, 128, 10_000 + seed)
        test = stack(held_out, range(len(held_out)))
        for arm, text in (("a", args.a), ("b", args.b)):
            t0 = time.process_time()
            curve = run_arm(args, parse_overrides(text), seed, train, test, env)
            last = curve[-1]
            print(
                f"{args.task} seed {seed} arm {arm} ({text or 'defaults'}): reward rel-mse {last['reward_rel_mse']:.3f}, "
                f"sign {last['reward_sign']:.3f} (majority {last['reward_sign_majority']:.3f}), h probe {last['h_probe']:.2f}, "
                f"z probe {last['z_probe_now']:.2f}; {time.process_time() - t0:.0f} s CPU",
                flush=True,
            )
            results.append({"seed": seed, "arm": arm, "overrides": text, "curve": curve})
    payload = {"task": args.task, "a": args.a, "b": args.b, "updates": args.updates, "batch": args.batch, "lr": args.lr, "runs": results}
    print(f"benchmarks.reward_link: wrote {record.write_result('reward-link-' + args.task.split('/')[-1], payload, started=started)}")


if __name__ == "__main__":
    main(tyro.cli(Args))
