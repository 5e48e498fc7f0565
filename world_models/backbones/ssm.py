"""What the SSM backbones (s4, s5, mamba) share: running an SSM layer with `kernels.scan` while
carrying a state across calls, one recurrent step with `kernels.ssm_step`, the S4WM block, and the
stack of blocks that makes a backbone.

An SSM layer implements
    state_shape: tuple, state_dtype: torch.dtype
    forward(u (B, L, H), is_first (B, L), s (B, *state_shape)) -> (y (B, L, H), states (B, L, *state_shape))
    step(u (B, H), is_first (B,), s) -> (y (B, H), s_next)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

import kernels
from world_models.backbones.base import Backbone
from world_models.config import WorldModelConfig
from world_models.nets import make_act, make_norm


def scan_with_carry(a: Tensor, bu: Tensor, is_first: Tensor, carry: Tensor, backend: str = "auto") -> Tensor:
    """States of h_t = a_t * h_{t-1} + bu_t, h_{-1} = carry, reset to zero where is_first.

    a: (D,) or (B, L, D); bu: (B, L, D); is_first: (B, L) bool; carry: (B, D). Returns (B, L, D).
    The scan's h0 is the reset value (zero), so the carried state enters through bu at t = 0.
    """
    a0 = a if a.dim() == 1 else a[:, 0]
    kept = torch.where(is_first[:, :1], torch.zeros_like(carry), a0 * carry)  # (B, D)
    bu = torch.cat([(bu[:, 0] + kept)[:, None], bu[:, 1:]], 1)
    hs, _ = kernels.scan(a, bu, reset=is_first, backend=backend)
    return hs


def recurrent_step(h: Tensor, a: Tensor, bu: Tensor, C: Tensor, D: Tensor, u: Tensor, reset: Tensor) -> tuple[Tensor, Tensor]:
    """One step h' = a * (0 if reset else h) + bu and its readout y = Re(C h') + D u (kernels.ssm_step).

    MIMO (S5): h, bu (B, N), a (N,), C (H, N); SISO (S4D): h, bu (B, H, N), a, C (H, N).
    Returns (y (B, H), h' like h). The layer built these shapes and dtypes, so the step skips the checks.
    """
    return kernels.ssm_step(h, a, bu, C, D=D, u=u, reset=reset, check=False)


def cached_without_grad(layer: nn.Module, compute: Callable[[], tuple]) -> tuple:
    """compute() (a layer's discretisation), computed once and reused while no gradient is recorded.

    Acting and imagining run one step at a time without gradients; the discretisation of a layer
    (exp(Lambda dt), B_bar, ...) depends only on its parameters, so it is recomputed only when one of
    the layer's parameters changed: the key is each parameter's storage and version counter, which optimiser steps,
    load_state_dict and in-place edits bump (and .to() gives new storage). Under autograd it is always
    computed afresh, so that gradients flow.
    """
    if torch.is_grad_enabled():
        return compute()
    key = tuple((p.data_ptr(), p._version) for p in layer.parameters())
    cached = layer.__dict__.get("_no_grad_cache")
    if cached is None or cached[0] != key:
        cached = (key, compute())
        layer.__dict__["_no_grad_cache"] = cached  # a plain attribute, not a buffer: never saved
    return cached[1]


def complex_param(shape: tuple[int, ...], std: float) -> nn.Parameter:
    """A complex matrix stored as real (..., 2), initialised normal with total std `std`."""
    return nn.Parameter(torch.randn(*shape, 2) * (std / 2**0.5))


class SSMBlock(nn.Module):
    """S4WM's block: [pre-norm, SSM, act, linear, residual] x `ssms`, then pre-norm MLP, residual.

    With ssms=1 and mlp=False it is a plain residual block around a mixer (Mamba's layout)."""

    def __init__(self, width: int, make_layer: Callable[[], nn.Module], config: WorldModelConfig, ssms: int = 2, mlp: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(make_layer() for _ in range(ssms))
        self.norms = nn.ModuleList(make_norm(config.norm, width) for _ in range(ssms))
        self.outs = nn.ModuleList(
            nn.Sequential(make_act("gelu"), nn.Linear(width, width)) if getattr(layer, "needs_out", True) else nn.Identity()
            for layer in self.layers
        )
        self.mlp = (
            nn.Sequential(make_norm(config.norm, width), nn.Linear(width, 2 * width), make_act(config.act), nn.Linear(2 * width, width))
            if mlp
            else None
        )

    def forward(self, x: Tensor, is_first: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, L, W), states: one (B, *S) per SSM -> (x, [states (B, L, *S)])."""
        out = []
        for layer, norm, lin, s in zip(self.layers, self.norms, self.outs, states):
            y, ss = layer(norm(x), is_first, s)
            x = x + lin(y)
            out.append(ss)
        if self.mlp is not None:
            x = x + self.mlp(x)
        return x, out

    def step(self, x: Tensor, is_first: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, W), states: one (B, *S) per SSM -> (x (B, W), next states)."""
        out = []
        for layer, norm, lin, s in zip(self.layers, self.norms, self.outs, states):
            y, s = layer.step(norm(x), is_first, s)
            x = x + lin(y)
            out.append(s)
        if self.mlp is not None:
            x = x + self.mlp(x)
        return x, out


class SSMBackbone(Backbone):
    """Linear in, `layers` SSM blocks, final norm: (B, L, in_dim) -> (B, L, width [+ state features]).

    State: `s0`, `s1`, ... one tensor (B, *state_shape) per SSM layer. With
    config.ssm_state_features the output also holds every SSM state (real and imaginary parts), as in R2I.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        config: WorldModelConfig,
        make_layer: Callable[[], nn.Module],
        ssms_per_block: int = 2,
        mlp: bool = True,
    ):
        super().__init__()
        self.in_dim, self.width, self.config = in_dim, width, config
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(SSMBlock(width, make_layer, config, ssms_per_block, mlp) for _ in range(config.layers))
        self.norm = make_norm(config.norm, width)
        self.ssm_layers = [layer for block in self.blocks for layer in block.layers]
        self.state_feature_dim = 0
        if config.ssm_state_features:
            for layer in self.ssm_layers:
                n = int(torch.Size(layer.state_shape).numel())
                self.state_feature_dim += 2 * n if layer.state_dtype.is_complex else n
        self.out_dim = width + self.state_feature_dim

    def initial_state(self, batch: int, device=None) -> dict[str, Tensor]:
        return {
            f"s{i}": torch.zeros(batch, *layer.state_shape, dtype=layer.state_dtype, device=device)
            for i, layer in enumerate(self.ssm_layers)
        }

    def _split(self, state: dict[str, Tensor]) -> list[list[Tensor]]:
        flat, per_block, i = [state[f"s{j}"] for j in range(len(self.ssm_layers))], [], 0
        for block in self.blocks:
            per_block.append(flat[i : i + len(block.layers)])
            i += len(block.layers)
        return per_block

    def _state_features(self, states: list[Tensor], lead: int) -> Tensor:
        """states (*lead dims, *S) -> (*lead dims, state_feature_dim)."""
        parts = []
        for s in states:
            s = s.flatten(lead)
            parts += [s.real, s.imag] if s.is_complex() else [s]
        return torch.cat(parts, -1)

    def forward(self, x: Tensor, is_first: Tensor, state: dict[str, Tensor] | None = None, all_states: bool = False):
        self.check_inputs(x, is_first)
        state = self.initial_state(x.shape[0], x.device) if state is None else state
        h, seqs = self.inp(x), []
        for block, s in zip(self.blocks, self._split(state)):
            h, ss = block(h, is_first, s)
            seqs += ss
        y = self.norm(h)  # (B, L, W)
        if self.state_feature_dim:
            y = torch.cat([y, self._state_features(seqs, 2)], -1)
        if all_states:
            return y, {f"s{i}": s for i, s in enumerate(seqs)}
        return y, {f"s{i}": s[:, -1].clone() for i, s in enumerate(seqs)}  # not a view: frees the (B, L, ...) states

    def step(self, x: Tensor, is_first: Tensor, state: dict[str, Tensor]):
        h, new = self.inp(x), []
        for block, s in zip(self.blocks, self._split(state)):
            h, s = block.step(h, is_first, s)
            new += s
        y = self.norm(h)  # (B, W)
        if self.state_feature_dim:
            y = torch.cat([y, self._state_features(new, 1)], -1)
        return y, {f"s{i}": s for i, s in enumerate(new)}
