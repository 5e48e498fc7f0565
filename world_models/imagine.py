"""Watch what a world model imagines: `memwm imagine`, and the open-loop rollout that the compare
probes share.

`open_loop` observes the first `context` steps of real sequences (posterior features), then
imagines `horizon` steps open-loop from the last observed state with the sequences' own actions
(or a policy's), and returns the features of both phases in one time axis, so that decoding
them gives the model's version of every frame: reconstructions (context) then predictions.

`memwm imagine --run DIR` loads a world model saved by `memwm compare` (`DIR/model.pt`) or by
`memwm train` (`DIR/checkpoints/`), observes C steps of real episodes of the run's environment,
imagines H steps, and writes the video of `world_models.video` (rows truth / model / error,
context framed green, imagination red) as a GIF/MP4 and as a TensorBoard video.

World-model files (`save_world_model` / `load_world_model`) are plain `torch.save` dicts, so that
this package reads checkpoints without importing `agents`:

    format: "memwm-world-model/1"
    backbone: str, config: dict (WorldModelConfig fields), env: str
    obs_space, act_space: gymnasium spaces
    state_dict: the WorldModel's parameters
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

WORLD_MODEL_FORMAT = "memwm-world-model/1"
OBS_KEYS = ("image", "vector")


# --------------------------------------------------------------------------- saving and loading


def save_world_model(path: str | os.PathLike, wm, *, backbone: str, config, env: str, obs_space, act_space,
                     **extra) -> Path:
    """Write a world model and everything needed to rebuild it to `path`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": WORLD_MODEL_FORMAT,
        "backbone": backbone,
        "config": dataclasses.asdict(config),
        "env": env,
        "obs_space": obs_space,
        "act_space": act_space,
        "state_dict": {k: v.detach().cpu() for k, v in wm.state_dict().items()},
        **extra,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


@dataclass
class LoadedModel:
    """A world model rebuilt from a file, with what it was trained on."""

    wm: torch.nn.Module
    backbone: str
    env: str
    env_options: dict
    obs_space: object
    act_space: object
    path: Path
    payload: dict  # the whole file's dict (extra keys included)


def _find_model_file(run: Path) -> Path:
    """The world-model file of a run folder: a compare backbone's `model.pt`, or the newest readable
    file in `checkpoints/` of a `memwm train` run; a file path is taken as it is."""
    if run.is_file():
        return run
    if not run.is_dir():
        raise ValueError(f"run {str(run)!r} does not exist; expected a `memwm train` run folder, a "
                         f"`memwm compare` backbone folder (with model.pt) or a model file")
    if (run / "model.pt").is_file():
        return run / "model.pt"
    ckpts = sorted((run / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    if ckpts:
        return ckpts[0]
    found = sorted(p.parent.name for p in run.glob("*/model.pt"))
    hint = f"; it holds compare backbones {found}: pass one of them, e.g. {run / found[0]}" if found else ""
    raise ValueError(f"no world model in {str(run)!r}: expected model.pt or checkpoints/*.pt{hint}")


def _world_model_payload(raw: dict, path: Path) -> dict:
    """The world-model part of a file: our own format, or a `memwm train` checkpoint (agents/checkpoint.py:
    `identity` {env, backbone, wm config} and `agent`, the learner's state dict whose `wm.*` entries are
    the world model's), whose spaces come from its environment."""
    if raw.get("format") == WORLD_MODEL_FORMAT:
        return raw
    identity, agent = raw.get("identity"), raw.get("agent")
    if isinstance(identity, dict) and isinstance(agent, dict) and {"env", "backbone", "wm"} <= set(identity):
        import envs
        import yaml

        run_config = path.parent.parent / "config.yaml"  # the run's resolved TrainConfig: env_options
        saved = yaml.safe_load(run_config.read_text()) if run_config.exists() else None
        options = (saved or {}).get("env_options") or {}
        env = envs.make(identity["env"], **options)
        obs_space, act_space = model_obs_space(env.observation_space), env.action_space
        env.close()
        state_dict = {k[len("wm."):]: v for k, v in agent.items() if k.startswith("wm.")}
        return {**raw, "backbone": identity["backbone"], "config": identity["wm"], "env": identity["env"],
                "env_options": options, "obs_space": obs_space, "act_space": act_space, "state_dict": state_dict}
    raise ValueError(f"{path} is neither a memwm world-model file (format {WORLD_MODEL_FORMAT!r}) nor a "
                     f"`memwm train` checkpoint (identity + agent); its top-level keys are {sorted(raw)[:12]}")


def model_obs_space(space):
    """The observation keys a world model reads (image, vector) of an environment's dict space, without the flags."""
    import gymnasium as gym

    keys = {k: v for k, v in space.spaces.items() if k in OBS_KEYS}
    if not keys:
        raise ValueError(f"the observations carry no image or vector: keys {sorted(space.spaces)}")
    return gym.spaces.Dict(keys)


def load_world_model(run: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the world model saved in `run` (a folder or a file) on `device`, in eval mode."""
    from world_models import WorldModelConfig, make

    path = _find_model_file(Path(run))
    raw = torch.load(path, map_location="cpu", weights_only=False)  # our own files: spaces are pickled
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a {type(raw).__name__}, expected a dict saved by memwm")
    payload = _world_model_payload(raw, path)
    config = WorldModelConfig(**payload["config"])
    wm = make(payload["backbone"], payload["obs_space"], payload["act_space"], config)
    wm.load_state_dict(payload["state_dict"])
    wm.to(device).eval()
    return LoadedModel(wm, payload["backbone"], payload["env"], payload.get("env_options") or {}, payload["obs_space"],
                       payload["act_space"], path, payload)


# --------------------------------------------------------------------------- episodes as tensors


def action_vectors(action: np.ndarray, act_space) -> np.ndarray:
    """Stored actions -> the float vectors a world model reads: (T,) ints of a Discrete space or
    (T, k) ints of a MultiDiscrete space -> concatenated one-hots; Box actions -> float32 (T, A)."""
    import gymnasium as gym

    action = np.asarray(action)
    if isinstance(act_space, gym.spaces.Discrete):
        if action.ndim == 2 and action.shape[1] == act_space.n:  # already one-hot
            return action.astype(np.float32)
        index = action.reshape(-1).astype(np.int64) - int(act_space.start)
        if index.size and (index.min() < 0 or index.max() >= act_space.n):
            raise ValueError(f"discrete actions must lie in [{act_space.start}, {act_space.start + act_space.n}), "
                             f"got values from {index.min() + act_space.start} to {index.max() + act_space.start}")
        return np.eye(act_space.n, dtype=np.float32)[index]
    if isinstance(act_space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(act_space.nvec).reshape(-1)
        if action.ndim == 2 and action.shape[1] == int(nvec.sum()):
            return action.astype(np.float32)
        action = action.reshape(len(action), len(nvec)).astype(np.int64)
        return np.concatenate([np.eye(n, dtype=np.float32)[action[:, i]] for i, n in enumerate(nvec)], -1)
    if isinstance(act_space, gym.spaces.Box):
        return action.reshape(len(action), -1).astype(np.float32)
    raise ValueError(f"unsupported action space {act_space}; expected Discrete, MultiDiscrete or Box")


def episodes_to_batch(episodes: list[dict[str, np.ndarray]], act_space, device: str | torch.device = "cpu",
                      length: int | None = None) -> dict[str, Tensor]:
    """Episodes (dicts of (T, ...) arrays, all at least `length` long) -> a batch of (N, L, ...)
    tensors with the keys `WorldModel.loss` and `observe` read; L = `length` or the shortest episode."""
    if not episodes:
        raise ValueError("episodes_to_batch needs at least one episode, got none")
    L = length or min(len(ep["action"]) for ep in episodes)
    short = [len(ep["action"]) for ep in episodes if len(ep["action"]) < L]
    if short:
        raise ValueError(f"every episode must hold at least {L} steps, got episodes of {short} steps")
    batch: dict[str, Tensor] = {}
    for key in OBS_KEYS:
        if key in episodes[0]:
            batch[key] = torch.as_tensor(np.stack([ep[key][:L] for ep in episodes])).to(device)
    if not batch:
        raise ValueError(f"episodes carry none of the observation keys {OBS_KEYS}; keys: {sorted(episodes[0])}")
    batch["action"] = torch.as_tensor(np.stack([action_vectors(ep["action"][:L], act_space) for ep in episodes])).to(device)
    for key in ("reward",):
        batch[key] = torch.as_tensor(np.stack([np.asarray(ep[key][:L], np.float32) for ep in episodes])).to(device)
    for key in ("is_first", "is_terminal"):
        flags = np.stack([np.asarray(ep[key][:L], bool) for ep in episodes])
        batch[key] = torch.as_tensor(flags).to(device)
    batch["is_first"][:, 0] = True  # every sequence here starts an episode (or is cut from one)
    return batch


# --------------------------------------------------------------------------- the open-loop rollout


@dataclass
class OpenLoop:
    """The model's view of `context + horizon` steps.

    features: (N, C + H, F) posterior features for t < C, imagined (prior) features for t >= C.
    actions: (N, H, A) the actions imagination was driven with (taken after steps C-1 .. C+H-2).
    """

    features: Tensor
    actions: Tensor
    context: int


@torch.no_grad()
def open_loop(wm, batch: dict[str, Tensor], context: int, horizon: int,
              policy: Callable[[Tensor], Tensor] | None = None, sample: bool = False) -> OpenLoop:
    """Observe steps [0, context) of `batch` (N, L, ...), then imagine `horizon` steps.

    The action after the last observed step is `batch["action"][:, context - 1]` (DreamerV3 replay
    order), so imagined step C + i is driven by `action[:, C - 1 + i]`; with a `policy`
    (features (N, F) -> actions (N, A)) the policy chooses every action instead, the first included.
    sample=False takes the latents' modes (deterministic, the model's best guess); True samples them.
    """
    L = batch["action"].shape[1]
    if not 1 <= context <= L:
        raise ValueError(f"context must be in [1, {L}] for sequences of {L} steps, got {context}")
    if horizon < 0 or (policy is None and context + horizon > L):
        raise ValueError(f"horizon must be in [0, {L - context}] to imagine with the sequences' own actions "
                         f"after a context of {context} of {L} steps, got {horizon}")
    obs = {k: batch[k][:, :context] for k in OBS_KEYS if k in batch}
    _, _, feat_ctx, state = wm.observe(obs, batch["action"][:, :context], batch["is_first"][:, :context],
                                      sample=sample)  # (N, C, F)
    if horizon == 0:
        return OpenLoop(feat_ctx, batch["action"][:, :0], context)
    drive = policy if policy is not None else batch["action"][:, context - 1 : context - 1 + horizon]  # (N, H, A)
    imag = wm.imagine(state, drive, horizon, sample=sample)
    features = torch.cat([feat_ctx, imag.features[:, 1:]], 1)  # (N, C + H, F)
    return OpenLoop(features, imag.actions[:, :horizon], context)


@torch.no_grad()
def decode_frames(wm, features: Tensor, chunk: int = 256) -> Tensor:
    """features (N, T, F) -> predicted images (N, T, 64, 64, 3) float in [0, 1], decoded in time chunks."""
    out = []
    for t in range(0, features.shape[1], chunk):
        out.append(wm.decode(features[:, t : t + chunk])["image"].clamp(0, 1).float())
    return torch.cat(out, 1)


# --------------------------------------------------------------------------- the command


def imagine(
    run: Path,
    context: int = 0,
    horizon: int = 0,
    episodes: int = 6,
    out: Path | None = None,
    policy: bool = False,
    seed: int = 0,
    fps: int = 10,
    scale: int = 1,
    device: str = "auto",
) -> Path:
    """Observe C steps of real episodes, imagine H steps open-loop and write the video.

    Args:
        run: a `memwm train` run folder, a `memwm compare` backbone folder (holding model.pt), or a model file.
        context: steps observed before imagining; 0 = the task's context phase (or half the episode).
        horizon: steps imagined; 0 = the rest of the episode.
        episodes: episodes shown side by side (at most 6).
        out: the video file (.gif or .mp4); default RUN/videos/imagine.gif (a compare backbone: RUN/imagine.gif).
        policy: drive imagination with the run's trained policy instead of the episodes' actions.
        seed: which episodes are picked.
        fps: frames per second of the video.
        scale: pixel upscaling of each frame.
        device: auto, cpu or cuda.
    """
    from world_models.video import imagination_video, write_video

    if not 1 <= episodes <= 6:
        raise ValueError(f"--episodes must be in [1, 6] (one video column each), got {episodes}")
    if context < 0 or horizon < 0:
        raise ValueError(f"--context and --horizon must be >= 0, got {context} and {horizon}")
    device = resolve_device(device)
    loaded = load_world_model(run, device)
    if "image" not in getattr(loaded.obs_space, "spaces", {}):
        raise ValueError(f"the world model in {loaded.path} sees no images (observation keys "
                         f"{sorted(getattr(loaded.obs_space, 'spaces', {}))}); nothing to draw")
    run_dir = loaded.path.parent.parent if loaded.path.parent.name == "checkpoints" else loaded.path.parent
    eps = _episodes_for(run_dir, loaded.env, loaded.env_options, episodes, seed)
    ctx = context or default_context(eps)
    L = min(len(ep["action"]) for ep in eps)
    if ctx > L:
        raise ValueError(f"--context {ctx} is longer than the shortest episode ({L} steps)")
    hor = horizon or (L - ctx)
    if not policy and ctx + hor > L:
        raise ValueError(f"--context {ctx} + --horizon {hor} exceeds the shortest episode ({L} steps); "
                         f"use --policy to imagine past the recorded actions")
    drive = _load_policy(loaded, device) if policy else None
    batch = episodes_to_batch(eps, loaded.act_space, device, length=min(L, ctx + hor))
    roll = open_loop(loaded.wm, batch, ctx, hor, drive)
    model = decode_frames(loaded.wm, roll.features).cpu().numpy()  # (N, C + H, 64, 64, 3)
    T = model.shape[1]
    truth = np.zeros(model.shape, np.uint8)  # steps past the recorded episode stay black
    rec = batch["image"].cpu().numpy()
    truth[:, : rec.shape[1]] = rec[:, :T]
    frames = imagination_video(truth, model, context=ctx, scale=scale)
    if out is None:
        out = (run_dir / "imagine.gif") if (run_dir / "model.pt").exists() else (run_dir / "videos" / "imagine.gif")
    path = write_video(out, frames, fps=fps)
    _log_tensorboard(run_dir, frames, fps)
    print(f"imagined {hor} steps after {ctx} observed for {len(eps)} episodes of {loaded.env} "
          f"({loaded.backbone}): {path}")
    return path


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


def default_context(episodes: list[dict[str, np.ndarray]]) -> int:
    """The first query step shared by all episodes (their `phase` arrays), else half the shortest episode."""
    starts = [query_start(ep) for ep in episodes]
    if all(s is not None for s in starts):
        return max(1, min(starts))
    return max(1, min(len(ep["action"]) for ep in episodes) // 2)


def query_start(ep: dict[str, np.ndarray]) -> int | None:
    """The first step of the query phase (`phase` == 1), or None if the episode has no phases."""
    phase = ep.get("phase")
    if phase is None:
        return None
    idx = np.flatnonzero(np.asarray(phase) == 1)
    return int(idx[0]) if len(idx) else None


def _episodes_for(run_dir: Path, env_id: str, options: dict, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`count` real episodes of the run's environment: a compare run's held-out data, a train run's
    replay, or fresh ones collected with the env's scripted policy into RUN/imagine-episodes."""
    from envs.dataset import load_episodes

    for folder in (run_dir.parent / "data" / "eval", run_dir / "replay", run_dir / "imagine-episodes"):
        if folder.is_dir() and any(folder.glob("*.npz")):
            eps = load_episodes(folder)
            if len(eps) >= count:
                rng = np.random.default_rng(seed)
                return [eps[i] for i in sorted(rng.choice(len(eps), count, replace=False))]
    folder = run_dir / "imagine-episodes"
    collect_episodes(env_id, options, folder, count, seed)
    return load_episodes(folder)[:count]


def collect_episodes(env_id: str, options: dict, folder: Path, count: int, seed: int) -> None:
    """Play `count` episodes of the env (built with the run's options) with its scripted policy, or
    random actions where it has none, and write them to `folder` (envs' episode files)."""
    import envs
    from envs.collect import play_episode
    from envs.dataset import save_episode

    env = envs.make(env_id, seed=seed, **options)
    try:
        try:
            act = envs.scripted_policy(env)
        except ValueError:  # only the memory/* tasks have a scripted policy
            act = lambda obs: env.action_space.sample()  # noqa: E731
        for i in range(count):
            save_episode(folder, i, play_episode(env, act, seed + i))
    finally:
        env.close()


# Functions (payload, loaded, device) -> policy or None that rebuild a run's trained policy from its file.
# world_models never imports agents, so the agents package registers the loader for `memwm train`
# checkpoints with `register_policy_loader` when it is imported (the CLI imports it).
_POLICY_LOADERS: list[Callable] = []


def register_policy_loader(loader: Callable) -> Callable:
    """Add `loader(payload: dict, loaded: LoadedModel, device) -> (features (N, F) -> actions (N, A)) | None`."""
    if loader not in _POLICY_LOADERS:
        _POLICY_LOADERS.append(loader)
    return loader


def _load_policy(loaded: LoadedModel, device) -> Callable[[Tensor], Tensor]:
    """The trained policy stored beside the world model: features (N, F) -> actions (N, A)."""
    for loader in _POLICY_LOADERS:
        policy = loader(loaded.payload, loaded, device)
        if policy is not None:
            return policy
    if loaded.payload.get("format") == WORLD_MODEL_FORMAT:
        raise ValueError(f"{loaded.path} holds no policy (a `memwm compare` model is trained without one); "
                         f"imagine with the episodes' actions (drop --policy) or pass a `memwm train` run")
    raise ValueError(f"no policy loader recognises {loaded.path} (registered: {len(_POLICY_LOADERS)}); "
                     f"the agents package registers one for `memwm train` checkpoints when imported")


def _log_tensorboard(run_dir: Path, frames: np.ndarray, fps: int) -> None:
    """The video into the run's TensorBoard events as `imagine/open_loop` (an animated GIF image)."""
    from torch.utils.tensorboard import SummaryWriter

    from world_models.video import add_tensorboard_video

    writer = SummaryWriter(str(run_dir))
    try:
        add_tensorboard_video(writer, "imagine/open_loop", frames, fps=fps)
    finally:
        writer.close()


__all__ = ["save_world_model", "load_world_model", "LoadedModel", "action_vectors", "episodes_to_batch",
           "OpenLoop", "open_loop", "decode_frames", "imagine", "default_context", "query_start",
           "model_obs_space", "register_policy_loader"]
