"""Where Dreamer's learning chain breaks on a cue task: the world model alone, offline, on episodes that look.

    python -m benchmarks.cue_link --task minigrid/memory-s7 --a "" --b "image_scale=10.0" --seeds 0 1 2

On a cue task (minigrid/memory-s*: look at the start room's object, walk down the corridor, touch the
matching one) an agent's own early episodes rarely show the cue, so a world model trained on them may
lack it for want of data or for want of pressure to keep it. This benchmark takes the data away as a
cause: it plays the learning chain's labelled episodes (agents.chain.play_labelled: the task's scripted
policy looks at the cue in every episode, then goes to the right or the wrong end by a coin), trains only
the world model on them (the defaults of `memwm train`: preset tiny, its replay window, batch and learning
rate, rewards in units of the largest), and every `--every` updates scores on held-out episodes the
chain's first links (world_models.chain):
  - z_seen: a linear probe of the posterior latent z_t for the cue at the steps that show it
    (the representation), against the majority rate there;
  - h_probe: the same of the backbone's output h_t at every step after the cue was first seen (the memory);
  - reward_side: whether the reward head puts the end of each episode on the right side of the midpoint
    between a success and a failure (whether the reward head uses what is remembered);
and, as the reference a linear probe can reach, the same probe of the observation's own pixels.
Arms a and b are world-model config overrides (`name=value`, space separated), on the same seeds, data
and batches. One record per call (benchmarks.record, `cue-link-minigrid-s<size>`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import tyro

from benchmarks import record
from benchmarks.reward_link import parse_overrides


@dataclass
class Args:
    task: str = "minigrid/memory-s7"
    """a task whose spec declares a cue and whose scripted policy can choose wrong (minigrid/memory-s*)"""
    a: str = ""
    """arm a: world-model config overrides, e.g. "image_scale=10.0" ("" = the training defaults)"""
    b: str = "image_scale=10.0"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    updates: int = 1500
    every: int = 250
    episodes: int = 400
    """training episodes (held-out: 64 more, the chain's CUE_EPISODES)"""


def stream(episodes: list[dict]) -> dict[str, np.ndarray]:
    """Episodes laid end to end, as replay holds them: (N, ...) arrays, is_first where each begins."""
    keys = ("image", "action", "reward", "is_first", "is_terminal")
    return {k: np.concatenate([ep[k] for ep in episodes]) for k in keys}


def windows(data: dict[str, np.ndarray], batch: int, length: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """`batch` windows of `length` steps at random offsets; each starts from the initial state (is_first[0])."""
    starts = rng.integers(len(data["reward"]) - length, size=batch)
    out = {k: torch.as_tensor(np.stack([v[s : s + length] for s in starts])) for k, v in data.items()}  # fresh arrays
    out["is_first"], out["is_terminal"], out["action"] = out["is_first"].bool(), out["is_terminal"].bool(), out["action"].float()
    out["is_first"][:, 0] = True
    return out


@torch.no_grad()
def score(wm, test, unit: float) -> dict[str, float]:
    """The chain's first links on the held-out episodes (agents.chain.Labelled), and the pixels' probe."""
    from agents.chain import pad_episodes
    from world_models.chain import probe_score, sign_score

    T = max(len(ep["reward"]) for ep in test.episodes)
    pad = {k: torch.as_tensor(pad_episodes([ep[k] for ep in test.episodes], T, None)) for k in ("image", "is_first")}
    action = torch.as_tensor(pad_episodes([ep["action"] for ep in test.episodes], T, 0.0)).float()
    reward = torch.as_tensor(pad_episodes([ep["reward"] for ep in test.episodes], T, 0.0)) / unit
    terminal = torch.as_tensor(pad_episodes([ep["is_terminal"].astype(bool) for ep in test.episodes], T, False))
    need, seen = (torch.as_tensor(pad_episodes(x, T, -1)) for x in (test.need, test.seen))
    wm.eval()
    _, _, feat, _ = wm.observe({"image": pad["image"]}, action, pad["is_first"].bool(), sample=False)
    wm.train()
    feat = feat.float()
    h, z = feat[..., : wm.h_dim], feat[..., wm.h_dim :]
    pixels = torch.nn.functional.avg_pool2d(pad["image"].flatten(0, 1).permute(0, 3, 1, 2).float(), 4).flatten(1)
    scores = {
        "z_seen": probe_score(z, seen),
        "h_probe": probe_score(h, need),
        "reward_side": sign_score(wm.reward(feat, action).float(), reward, (reward != 0) | terminal),  # aligned by wm.reward
        "pixels_seen": probe_score(pixels.view(*seen.shape, -1), seen),
    }
    out = {}
    for name, s in scores.items():
        out[name], out[name + "_chance"] = s.accuracy, s.chance
    return out


def run_arm(args: Args, overrides: dict, seed: int, train: dict, test, env) -> list[dict]:
    import world_models
    from agents.config import TRAIN_DREAMER, layered_defaults, train_wm_config
    from world_models.imagine import model_obs_space

    torch.manual_seed(seed)
    backbone = overrides.pop("backbone", "s5")
    config = train_wm_config("tiny").replace(**overrides)
    wm = world_models.make(backbone, model_obs_space(env.observation_space), env.action_space, config)
    opt = torch.optim.Adam(wm.parameters(), lr=TRAIN_DREAMER.wm_lr, eps=TRAIN_DREAMER.wm_eps)
    rng = np.random.default_rng(seed)
    unit = float(np.abs(train["reward"]).max())  # rewards in units of the largest, as the learner sees them
    defaults = layered_defaults(args.task, "tiny")
    length, batch = defaults.seq_len, defaults.batch_size
    curve = []
    for update in range(args.updates + 1):
        if update % args.every == 0:
            curve.append({"update": update, **score(wm, test, unit)})
        b = windows(train, batch, length, rng)
        b["reward"] = b["reward"] / unit
        loss, _ = wm.loss(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), TRAIN_DREAMER.wm_grad_clip)
        opt.step()
    return curve


def main(args: Args) -> None:
    import envs
    from agents.chain import CUE_EPISODES, play_labelled

    torch.set_num_threads(1)
    try:
        spec = envs.spec(args.task)
    except ValueError as e:
        print(f"benchmarks.cue_link: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if not spec.cue or not args.task.startswith("minigrid/memory-"):
        need = "a cue task whose scripted policy can choose wrong (minigrid/memory-s*)"
        print(f"benchmarks.cue_link: error: --task must be {need}, got {args.task!r}", file=sys.stderr)
        raise SystemExit(2)
    started = record.start()
    env = envs.make(args.task)
    results = []
    for seed in args.seeds:
        train = stream(play_labelled(args.task, {}, args.episodes, seed * 1_000_003).episodes)
        test = play_labelled(args.task, {}, CUE_EPISODES, 10_000_000 + seed)
        for arm, text in (("a", args.a), ("b", args.b)):
            t0 = time.process_time()
            curve = run_arm(args, parse_overrides(text), seed, train, test, env)
            last = curve[-1]
            print(
                f"{args.task} seed {seed} arm {arm} ({text or 'defaults'}): z_seen {last['z_seen']:.2f} "
                f"(majority {last['z_seen_chance']:.2f}, pixels {last['pixels_seen']:.2f}), h_probe {last['h_probe']:.2f} "
                f"(majority {last['h_probe_chance']:.2f}), reward side {last['reward_side']:.2f} "
                f"(majority {last['reward_side_chance']:.2f}); {time.process_time() - t0:.0f} s CPU",
                flush=True,
            )
            results.append({"seed": seed, "arm": arm, "overrides": text, "curve": curve})
    payload = {"task": args.task, "a": args.a, "b": args.b, "updates": args.updates, "episodes": args.episodes, "runs": results}
    name = "cue-link-" + args.task.replace("minigrid/memory-", "minigrid-")
    print(f"benchmarks.cue_link: wrote {record.write_result(name, payload, started=started)}")


if __name__ == "__main__":
    main(tyro.cli(Args))
