"""The S4WM probes (Deng, Park, Ahn 2023, "Facing off World Models") on held-out episodes.

Each probe observes an episode's context phase, imagines the rest open-loop with the episode's
actions, and scores the imagination:
- imagination (memory/rooms-*, memory/teleport): MSE of imagined vs true frames by imagination
  step, in bins;
- reward (memory/distracting-*): accuracy of the predicted reward where the task decides it, from
  the posterior (inference) and from imagination after the context;
- doors (memory/doors-keys-*): MSE of the imagined frames that show doors;
and how fast imagination runs. Episodes are dicts of (T, ...) numpy arrays as envs' episode
files hold them, with the task's probe masks (`reward_decided`, `door_visible`) and `phase`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from world_models.imagine import decode_frames, episodes_to_batch, open_loop, query_start
from world_models.metrics import frame_mse, horizon_bins, reward_accuracy
from world_models.model import OBS_KEYS

PROBES = ("imagination", "reward", "doors")


def probe_context(ep: dict, shift: int = 0) -> int:
    """Steps a probe observes before imagining: the episode's query start (+ shift)."""
    start = query_start(ep)
    if start is None or start < 1:
        raise ValueError(
            "an eval episode has no query phase (`phase` == 1 after step 0); the compare probes need the task's phase annotations"
        )
    if start + shift >= len(ep["action"]):
        raise ValueError(f"an eval episode of {len(ep['action'])} steps leaves nothing to imagine after {start + shift} observed")
    return start + shift


def probe_groups(episodes: list[dict], shift: int) -> list[list[int]]:
    """Indices of eval episodes grouped by (length, context), so each group is one batch."""
    groups: dict[tuple, list[int]] = {}
    for i, ep in enumerate(episodes):
        groups.setdefault((len(ep["action"]), probe_context(ep, shift)), []).append(i)
    return list(groups.values())


def probe_mask(ep: dict, key: str) -> np.ndarray:
    """(T,) bool: a task's per-step probe mask as envs.collect stores it (`reward_decided`, `door_visible`)."""
    if key not in ep:
        raise ValueError(
            f"this probe needs the episodes' `{key}` array (envs.collect stores the task's masks); the episode has {sorted(ep)}"
        )
    return np.asarray(ep[key], bool)


def junction_arm(ep: dict) -> int:
    """The arm an episode of memory/distracting-* took: its action at the step before the decided reward."""
    decided = np.flatnonzero(probe_mask(ep, "reward_decided"))
    if len(decided) != 1 or decided[0] < 1:
        raise ValueError(f"a distracting episode decides its reward once, after a step; got steps {decided.tolist()}")
    action = np.asarray(ep["action"])[decided[0] - 1]
    return int(np.argmax(action)) if action.ndim else int(action)


@torch.no_grad()
def run_probes(wm, kind: str, episodes: list[dict], act_space, device, shift: int = 0) -> dict:
    """Observe each eval episode's context phase (+ `shift` steps), imagine the rest, and score the S4WM probe.

    Returns per-step imagination MSE (all kinds, images), and by kind: `mse_bins` (imagination),
    `reward_acc_inference` / `reward_acc_imagination` (reward), `door_mse` (doors).
    """
    if kind not in PROBES:
        raise ValueError(f"unknown probe {kind!r}; known: {', '.join(PROBES)}")
    sq_err_sum: dict[int, float] = {}  # imagination step (1-based) -> summed per-frame MSE
    sq_err_n: dict[int, int] = {}
    pairs: dict[str, list] = {"inference": [], "imagination": []}  # (predicted, true) reward where decided
    door_err = []
    query_err = []
    for idx in probe_groups(episodes, shift):
        eps = [episodes[i] for i in idx]
        T, C = len(eps[0]["action"]), probe_context(eps[0], shift)
        batch = episodes_to_batch(eps, act_space, device, length=T)
        roll = open_loop(wm, batch, C, T - C)
        truth = batch["image"].float() / 255.0 if "image" in batch else None  # (N, T, 64, 64, 3)
        if truth is not None:
            pred = decode_frames(wm, roll.features)  # (N, T, 64, 64, 3)
            mse = frame_mse(pred, truth).cpu().numpy()  # (N, T)
            for k in range(1, T - C + 1):
                sq_err_sum[k] = sq_err_sum.get(k, 0.0) + float(mse[:, C - 1 + k].sum())
                sq_err_n[k] = sq_err_n.get(k, 0) + len(eps)
            query_err.append(mse[:, C:].mean(1))
        if kind == "reward":
            _, _, feat_post, _ = wm.observe(
                {k: batch[k] for k in OBS_KEYS if k in batch}, batch["action"], batch["is_first"], sample=False
            )  # (N, T, F)
            true_r = batch["reward"].cpu().numpy()
            for mode, feats, acts in (("inference", feat_post, batch["action"]), ("imagination", roll.features, roll.actions)):
                pred_r = wm.reward(feats, acts).float().cpu().numpy()  # (N, T)
                for n, ep in enumerate(eps):
                    mask = probe_mask(ep, "reward_decided")[:T].copy()
                    if mode == "imagination":
                        mask[:C] = False  # only rewards the model had to imagine
                    pairs[mode].extend(zip(pred_r[n, mask], true_r[n, mask]))
        if kind == "doors" and truth is not None:
            for n, ep in enumerate(eps):
                mask = probe_mask(ep, "door_visible")[:T].copy()
                mask[:C] = False
                if mask.any():
                    door_err.extend(mse[n, mask])
    result: dict = {}
    if sq_err_n:
        H = max(sq_err_n)
        per_step = [sq_err_sum[k] / sq_err_n[k] for k in range(1, H + 1)]
        result["mse_per_step"] = per_step
        result["mse_bins"] = horizon_bins(per_step)
        result["query_mse"] = float(np.concatenate(query_err).mean())
    if kind == "reward":
        for mode, p in pairs.items():
            if not p:
                raise ValueError(f"no step of the eval episodes decides a reward in the {mode} part (`reward_decided`)")
            result[f"reward_acc_{mode}"] = reward_accuracy(*map(np.asarray, zip(*p)))
    if kind == "doors":
        if not door_err:
            raise ValueError("no door-visible frames after the context in the eval episodes")
        result["door_mse"] = float(np.mean(door_err))
    return result


@torch.no_grad()
def imagination_speed(wm, episodes: list[dict], act_space, device, horizon: int = 32, repeats: int = 3, shift: int = 0) -> float:
    """Milliseconds per imagined step (batch of the first eval group, after its context), median of repeats."""
    idx = probe_groups(episodes, shift)[0]
    eps = [episodes[i] for i in idx]
    C = probe_context(eps[0], shift)
    batch = episodes_to_batch(eps, act_space, device, length=len(eps[0]["action"]))
    obs = {k: batch[k][:, :C] for k in OBS_KEYS if k in batch}
    _, _, _, state = wm.observe(obs, batch["action"][:, :C], batch["is_first"][:, :C])
    actions = torch.zeros(len(eps), horizon, batch["action"].shape[-1], device=device)
    actions[..., 0] = 1.0
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        wm.imagine(state, actions, horizon)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times[1:])) / horizon
