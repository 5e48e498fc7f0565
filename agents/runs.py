"""Reading run folders: a `memwm train` run (config.yaml, checkpoints/, replay/) or a `memwm compare`
backbone folder (model.pt beside the compare run's data/), for the commands that only read them
(`memwm eval`, `memwm imagine`).

A train checkpoint (agents/checkpoint.py) holds `identity` {env, backbone, wm config, agent} and
`agent`, the learner's state dict; a Dreamer's `wm.*` entries are its world model's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

import envs
import world_models
from agents import checkpoint
from agents.config import TrainConfig, fit_action_space, load_yaml
from agents.dreamer import Dreamer
from agents.manifest import verify
from envs.collect import collect_episodes
from envs.dataset import load_episodes
from world_models.imagine import model_obs_space
from world_models.saving import WORLD_MODEL_FORMAT, LoadedModel, build_world_model, read_world_model_file


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The resolved TrainConfig a `memwm train` run saved."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ValueError(f"{run_dir} is not a memwm run (no config.yaml)")
    verify(run_dir)
    return TrainConfig.from_dict(load_yaml(path))


def build_dreamer(config: TrainConfig, device: torch.device, spaces=None) -> tuple[Dreamer, tuple]:
    """The Dreamer learner for the config's environment; `spaces` (obs_space, act_space) avoids making an env."""
    if spaces is None:
        env = envs.make(config.env, seed=config.seed, **config.env_options)
        spaces = (env.observation_space, env.action_space)
        env.close()
    obs_space, act_space = model_obs_space(spaces[0]), spaces[1]
    config, _ = fit_action_space(config, act_space)
    wm = world_models.make(config.backbone, obs_space, act_space, config.wm, device=device)
    agent = Dreamer(wm, act_space, config.dreamer, config.wm, precision=config.precision).to(device)
    if config.compile:
        agent.compile_networks()
    return agent, (obs_space, act_space)


def identity(config: TrainConfig) -> dict:
    """What a resume of a Dreamer run must match: the environment and the model."""
    return {
        "agent": "dreamer",
        "env": config.env,
        "env_options": dict(config.env_options),
        "backbone": config.backbone,
        "wm": dataclasses.asdict(config.wm),
    }


def latest_checkpoint(run_dir: str | os.PathLike, device: torch.device) -> tuple[dict, Path]:
    """The newest readable checkpoint of a run and its path; a ValueError if there is none."""
    found = checkpoint.load(Path(run_dir) / "checkpoints", map_location=device)
    if found is None:
        raise ValueError(f"run {run_dir} has no checkpoint in {Path(run_dir) / 'checkpoints'}; train it first")
    return found


def find_model_file(run: Path) -> Path:
    """The world-model file of a run folder: a compare backbone's `model.pt`, or the newest checkpoint of
    a `memwm train` run; a file path is taken as it is."""
    if run.is_file():
        return run
    if not run.is_dir():
        raise ValueError(
            f"run {str(run)!r} does not exist; expected a `memwm train` run folder, a "
            f"`memwm compare` backbone folder (with model.pt) or a model file"
        )
    verify(run)
    if (run / "model.pt").is_file():
        return run / "model.pt"
    ckpts = checkpoint.checkpoints(run / "checkpoints")
    if ckpts:
        return ckpts[-1]
    found = sorted(p.parent.name for p in run.glob("*/model.pt"))
    hint = f"; it holds compare backbones {found}: pass one of them, e.g. {run / found[0]}" if found else ""
    raise ValueError(f"no world model in {str(run)!r}: expected model.pt or checkpoints/*.pt{hint}")


def run_folder(path: Path) -> Path:
    """The run folder of a model file: the folder above checkpoints/, or the file's folder."""
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _checkpoint_world_model(raw: dict, path: Path) -> dict:
    """A train checkpoint's world model as a world-model dict (world_models/saving.py); its spaces come
    from its environment, made with the run's env options."""
    identity, agent = raw.get("identity"), raw.get("agent")
    if not (isinstance(identity, dict) and isinstance(agent, dict) and {"env", "backbone", "wm"} <= set(identity)):
        raise ValueError(
            f"{path} is neither a memwm world-model file (format {WORLD_MODEL_FORMAT!r}) nor a "
            f"`memwm train` checkpoint (identity + agent); its top-level keys are {sorted(raw)[:12]}"
        )
    if identity.get("agent", "dreamer") != "dreamer":
        raise ValueError(
            f"{path} is a run of agent {identity['agent']!r}, which learns no world model; "
            f"imagine needs a Dreamer run or a compare backbone"
        )
    config_path = run_folder(path) / "config.yaml"
    options = (load_yaml(config_path).get("env_options") or {}) if config_path.exists() else dict(identity.get("env_options") or {})
    env = envs.make(identity["env"], **options)
    obs_space, act_space = model_obs_space(env.observation_space), env.action_space
    env.close()
    state_dict = {k[len("wm.") :]: v for k, v in agent.items() if k.startswith("wm.")}
    return {
        **raw,
        "backbone": identity["backbone"],
        "config": identity["wm"],
        "env": identity["env"],
        "env_options": options,
        "obs_space": obs_space,
        "act_space": act_space,
        "state_dict": state_dict,
    }


def load_run_world_model(run: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedModel:
    """The world model of `run` (a run folder, a compare backbone folder or a file), on `device`, in eval mode."""
    path = find_model_file(Path(run))
    raw = read_world_model_file(path)
    payload = raw if raw.get("format") == WORLD_MODEL_FORMAT else _checkpoint_world_model(raw, path)
    return build_world_model(payload, device, path)


def load_run_policy(loaded: LoadedModel, device: torch.device) -> Callable[[Tensor], Tensor]:
    """The trained actor of the Dreamer run `loaded` came from: features (N, F) -> actions (N, A), its mode."""
    if loaded.payload.get("format") == WORLD_MODEL_FORMAT:
        raise ValueError(
            f"{loaded.path} holds no policy (a `memwm compare` model is trained without one); "
            f"imagine with the episodes' actions (drop --policy) or pass a `memwm train` run"
        )
    config = load_run_config(run_folder(loaded.path))
    agent, _ = build_dreamer(config, device, (loaded.obs_space, loaded.act_space))
    agent.load_state_dict(loaded.payload["agent"])
    agent.eval()
    return lambda feat: agent.actor(feat).mode()


def episodes_for(run_dir: Path, env_id: str, options: dict, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`count` real episodes of a run's environment: a compare run's held-out data, a train run's replay,
    or fresh ones collected with the env's scripted policy (random actions where it has none) into
    RUN/imagine-episodes."""
    for folder in (run_dir.parent / "data" / "eval", run_dir / "replay", run_dir / "imagine-episodes"):
        if folder.is_dir() and any(folder.glob("*.npz")):
            eps = load_episodes(folder)
            if len(eps) >= count:
                rng = np.random.default_rng(seed)
                return [eps[i] for i in sorted(rng.choice(len(eps), count, replace=False))]
    folder = run_dir / "imagine-episodes"
    env = envs.make(env_id, **options)
    try:
        envs.scripted_policy(env)
        policy = "scripted"
    except ValueError:  # only some tasks have a scripted policy
        policy = "random"
    finally:
        env.close()
    collect_episodes(env_id, count, policy, folder, seed, **options)
    return load_episodes(folder)[:count]
