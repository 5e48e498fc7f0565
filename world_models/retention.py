"""What a backbone remembers, on tensors: the timescales of SSM states and a linear probe of a cue.

Timescales. A diagonal SSM state decays by |a| per step, a = exp(dt * lambda) its discretised
transition, so after k steps an input is weighted by |a|^k: its half-life is
ln 2 / -ln|a| = ln 2 / (dt * -Re(lambda)) steps. The spread of half-lives of a layer is how far back
it can remember. S4D and S5 layers have fixed transitions; a selective SSM (mamba) chooses dt from
its input at every step, so its half-lives are taken at each channel's median step size over
real episodes (`recorded_step_sizes` records them while the model runs), or without episodes at
the step size of a zero input, softplus(dt_proj.bias), around which the selection moves.

Retention. At each delay k after a cue was first seen, a linear probe (ridge regression onto
one-hot classes, read out by argmax) is fitted on the backbone outputs of training episodes at
step cue_step + k and scored on held-out episodes: its accuracy against k is how long the cue
stays linearly readable.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from world_models.backbones.mamba import SelectiveSSM
from world_models.backbones.s4 import S4DLayer
from world_models.backbones.s5 import S5Layer

SSM_LAYERS = (S4DLayer, S5Layer, SelectiveSSM)


# --------------------------------------------------------------------------- timescales


def half_life(log_magnitude: Tensor) -> Tensor:
    """ln|a| (...) of a per-step decay -> steps until it falls to one half (...), float64; inf where |a| >= 1."""
    log_magnitude = log_magnitude.double()
    return torch.where(log_magnitude < 0, math.log(0.5) / log_magnitude, torch.full_like(log_magnitude, math.inf))


@torch.no_grad()
def log_transition_magnitudes(layer: nn.Module, step_size: Tensor | None = None) -> Tensor:
    """ln|a| = dt * Re(lambda) of every state of one SSM layer, flattened, float64: S4D (H*N,), S5 (P,),
    selective SSM (E*N,) at dt = step_size (E,) if given, else softplus(bias). Computed from the
    parameters in float64, not from the float32 transition, whose |a| rounds to 1 for the slowest states."""
    if isinstance(layer, S4DLayer):
        rate = torch.exp(layer.log_dt.double())[:, None] * torch.exp(layer.log_A_real.double())  # (H, N)
    elif isinstance(layer, S5Layer):
        rate = torch.exp(layer.log_dt.double()) * torch.exp(layer.Lambda_re_log.double())  # (P,)
    elif isinstance(layer, SelectiveSSM):
        dt = torch.nn.functional.softplus(layer.dt_proj.bias.double()) if step_size is None else step_size.double()  # (E,)
        rate = dt.to(layer.A_log.device)[:, None] * torch.exp(layer.A_log.double())  # (E, N)
    else:
        raise ValueError(f"{type(layer).__name__} is not an SSM layer; known: {', '.join(c.__name__ for c in SSM_LAYERS)}")
    return -rate.reshape(-1).cpu()


def ssm_layers(backbone: nn.Module) -> list[nn.Module]:
    """The SSM layers of a backbone in order (block by block); [] for a backbone without SSM states (rssm, transformer)."""
    return [m for m in backbone.modules() if isinstance(m, SSM_LAYERS)]


@contextlib.contextmanager
def recorded_step_sizes(backbone: nn.Module):
    """While active, every selective SSM layer's step sizes dt = softplus(dt_proj(.)) are kept: yields
    {layer index among ssm_layers(backbone): [dt (n, E) per call, its steps flattened]}."""
    record: dict[int, list[Tensor]] = {}
    hooks = []
    for i, layer in enumerate(ssm_layers(backbone)):
        if isinstance(layer, SelectiveSSM):

            def keep(module, inputs, output, i=i):  # the layer applies softplus to dt_proj's output
                record.setdefault(i, []).append(torch.nn.functional.softplus(output.detach().double()).reshape(-1, output.shape[-1]).cpu())

            hooks.append(layer.dt_proj.register_forward_hook(keep))
    try:
        yield record
    finally:
        for hook in hooks:
            hook.remove()


def state_half_lives(backbone: nn.Module, step_sizes: dict[int, list[Tensor]] | None = None) -> list[Tensor]:
    """One (S,) float64 tensor per SSM layer of `backbone`: the half-life in steps of each of its states;
    a selective SSM's at each channel's median recorded step size (`recorded_step_sizes`) when given."""
    out = []
    for i, layer in enumerate(ssm_layers(backbone)):
        recorded = (step_sizes or {}).get(i)
        median = torch.cat(recorded).median(0).values if recorded else None  # (E,)
        out.append(half_life(log_transition_magnitudes(layer, median)))
    return out


# --------------------------------------------------------------------------- the cue probe


def fit_linear_probe(x: Tensor, y: Tensor, classes: int, ridge: float = 1e-2) -> tuple[Tensor, Tensor, Tensor]:
    """Ridge regression of one-hot classes on standardised features.

    x (N, F) float, y (N,) int in [0, classes) -> (W (F + 1, classes), mean (F,), std (F,)): the probe
    reads argmax([standardise(x), 1] @ W).
    """
    x = x.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = torch.cat([(x - mean) / std, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # (N, F + 1)
    target = torch.nn.functional.one_hot(y.long(), classes).double()  # (N, classes)
    gram = z.T @ z + ridge * len(x) * torch.eye(z.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, z.T @ target), mean, std


def probe_predict(probe: tuple[Tensor, Tensor, Tensor], x: Tensor) -> Tensor:
    """x (N, F) -> the probe's class (N,)."""
    W, mean, std = probe
    z = torch.cat([(x.double() - mean) / std, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    return (z @ W).argmax(-1)


@dataclass
class Episode:
    """One episode as a probe reads it: `features` (T, F) the backbone's output at each step, `cue` its class,
    `cue_step` the first step at which the cue was in view (-1: never)."""

    features: Tensor
    cue: int
    cue_step: int


def _at_delay(episodes: list[Episode], k: int) -> tuple[Tensor, Tensor]:
    """(x (n, F), y (n,)) of the episodes that saw their cue and last past step cue_step + k."""
    rows = [(e.features[e.cue_step + k], e.cue) for e in episodes if 0 <= e.cue_step and e.cue_step + k < len(e.features)]
    if not rows:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.stack([r[0] for r in rows]), torch.tensor([r[1] for r in rows])


def retention_curve(train: list[Episode], test: list[Episode], classes: int, max_delay: int, ridge: float = 1e-2) -> dict[str, list]:
    """The held-out accuracy of a linear probe of the cue at each delay 0..max_delay after it was seen.

    Returns `delay`, `accuracy` (None where there are too few episodes: fewer than 2 training or 1
    held-out), `train_episodes` and `test_episodes` (how many read each delay), and `chance`: the
    share of the held-out episodes' most frequent cue.
    """
    out: dict[str, list] = {"delay": [], "accuracy": [], "train_episodes": [], "test_episodes": []}
    for k in range(max_delay + 1):
        x, y = _at_delay(train, k)
        xt, yt = _at_delay(test, k)
        accuracy = None
        if len(y) >= 2 and len(yt) >= 1:
            accuracy = float((probe_predict(fit_linear_probe(x, y, classes, ridge), xt) == yt).double().mean())
        out["delay"].append(k)
        out["accuracy"].append(accuracy)
        out["train_episodes"].append(len(y))
        out["test_episodes"].append(len(yt))
    cues = np.array([e.cue for e in test if e.cue_step >= 0])
    out["chance"] = float(np.bincount(cues).max() / len(cues)) if len(cues) else None
    return out


__all__ = [
    "SSM_LAYERS",
    "half_life",
    "log_transition_magnitudes",
    "ssm_layers",
    "recorded_step_sizes",
    "state_half_lives",
    "fit_linear_probe",
    "probe_predict",
    "Episode",
    "retention_curve",
]
