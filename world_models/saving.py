"""The world-model file: a world model and everything needed to rebuild it, in one `torch.save` dict.

    format: "memwm-world-model/1"
    backbone: str, config: dict (WorldModelConfig fields), env: str (the id it was trained on)
    obs_space, act_space: gymnasium spaces (pickled)
    state_dict: the WorldModel's parameters
    ...: any extra keys the writer adds

Where the file lives and how it is written (atomically, under a run folder) is the caller's
business: `save_world_model` takes a path or an open binary file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import torch

WORLD_MODEL_FORMAT = "memwm-world-model/1"


@dataclass
class LoadedModel:
    """A world model rebuilt from a file, with what it was trained on."""

    wm: torch.nn.Module
    backbone: str
    env: str
    env_options: dict
    obs_space: object
    act_space: object
    path: Path | None
    payload: dict  # the file's whole dict (extra keys included)


def world_model_payload(wm, *, backbone: str, config, env: str, obs_space, act_space, **extra) -> dict:
    """The dict of a world-model file (the module docstring's keys), parameters on the CPU."""
    return {
        "format": WORLD_MODEL_FORMAT,
        "backbone": backbone,
        "config": dataclasses.asdict(config),
        "env": env,
        "obs_space": obs_space,
        "act_space": act_space,
        "state_dict": {k: v.detach().cpu() for k, v in wm.state_dict().items()},
        **extra,
    }


def save_world_model(
    file: Union[str, os.PathLike, IO[bytes]], wm, *, backbone: str, config, env: str, obs_space, act_space, **extra
) -> None:
    """Write the world-model file of `wm` to `file` (a path, its folder created, or an open binary file)."""
    if isinstance(file, (str, os.PathLike)):
        Path(file).parent.mkdir(parents=True, exist_ok=True)
    torch.save(world_model_payload(wm, backbone=backbone, config=config, env=env, obs_space=obs_space, act_space=act_space, **extra), file)


def read_world_model_file(path: str | os.PathLike) -> dict:
    """The dict stored in `path` (any memwm torch file); a ValueError if it is not a readable dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no world-model file {str(path)!r}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)  # our own files: the spaces are pickled
    except Exception as e:  # a torn or foreign file: whatever unpickling raises
        raise ValueError(
            f"{path} cannot be read as a memwm file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a {type(raw).__name__}, expected a dict saved by memwm")
    return raw


def build_world_model(payload: dict, device: str | torch.device = "cpu", path: Path | None = None) -> LoadedModel:
    """Rebuild the world model of a world-model dict on `device`, in eval mode."""
    from world_models.config import WorldModelConfig
    from world_models.model import make

    missing = sorted({"backbone", "config", "env", "obs_space", "act_space", "state_dict"} - set(payload))
    if missing:
        where = f"{path} " if path is not None else ""
        raise ValueError(f"{where}is not a memwm world-model file (format {WORLD_MODEL_FORMAT!r}): it lacks {missing}")
    config = WorldModelConfig(**payload["config"])
    wm = make(payload["backbone"], payload["obs_space"], payload["act_space"], config)
    wm.load_state_dict(payload["state_dict"])
    wm.to(device).eval()
    return LoadedModel(
        wm, payload["backbone"], payload["env"], payload.get("env_options") or {}, payload["obs_space"], payload["act_space"], path, payload
    )


def load_world_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the world model saved in the file `path` on `device`, in eval mode."""
    path = Path(path)
    raw = read_world_model_file(path)
    if raw.get("format") != WORLD_MODEL_FORMAT:
        raise ValueError(
            f"{path} is not a memwm world-model file (format {WORLD_MODEL_FORMAT!r}); its top-level keys are {sorted(raw)[:12]}"
        )
    return build_world_model(raw, device, path)
