"""A selective SSM (Mamba, Gu and Dao 2023): the step size, B and C depend on the input, so the
transition a_t = exp(dt_t A) varies in time; `kernels.scan` runs it over the E*N states.
Blocks are Mamba's (pre-norm, mixer, residual). Before the SSM, Mamba's short causal depthwise
convolution (kernel 4) mixes each channel over the last 4 steps; its window of past inputs is part
of the recurrent state, carried across calls and zeroed at an episode start like the SSM state."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.backbones.ssm import SSMBackbone, scan_with_carry
from world_models.config import WorldModelConfig


def causal_conv(x: Tensor, window: Tensor, is_first: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """Depthwise causal convolution that does not look back past an episode start.

    x (B, L, E); window (B, K-1, E) the inputs before x (oldest first, zeros after a reset);
    is_first (B, L) bool; weight (E, K) (nn.Conv1d's (E, 1, K) squeezed: weight[:, K-1] multiplies
    the current input); bias (E,). y_t = bias + sum_j weight[:, j] x_{t-(K-1)+j}, the terms before the
    episode start of step t left out. Returns (y (B, L, E), windows (B, L, K-1, E)): the window after each step.
    """
    B, L, E = x.shape
    K = weight.shape[1]
    xs = torch.cat([window, x], 1)  # (B, K-1+L, E)
    seg = torch.cumsum(is_first, 1)  # (B, L): episode index in this call; 0 = the carried one
    segs = torch.cat([seg.new_zeros(B, K - 1), seg], 1)  # (B, K-1+L)
    y = torch.addcmul(bias, weight[:, K - 1], x)
    for j in range(K - 1):  # the earlier taps, masked where they reach into an earlier episode
        same = (segs[:, j : j + L] == seg)[..., None]  # (B, L, 1)
        y = y + torch.where(same, weight[:, j] * xs[:, j : j + L], 0.0)
    idx = torch.arange(L, device=x.device)[:, None] + 1 + torch.arange(K - 1, device=x.device)  # (L, K-1) into xs
    keep = (segs[:, idx] == seg[..., None])[..., None]  # (B, L, K-1, 1)
    windows = torch.where(keep, xs[:, idx], 0.0)  # (B, L, K-1, E)
    return y, windows


class SelectiveSSM(nn.Module):
    """u (B, L, W) -> y (B, L, W). State (B, E, N + K-1) float32, E = expand * W: [..., :N] the SSM
    state, [..., N:] the convolution's window of the last K-1 inputs (oldest first)."""

    needs_out = False  # the mixer has its own output projection

    def __init__(self, W: int, expand: int, N: int, dt_min: float, dt_max: float, backend: str = "auto", conv: int = 4):
        super().__init__()
        E, R = expand * W, max(1, math.ceil(W / 16))
        self.E, self.N, self.R, self.K, self.backend = E, N, R, conv, backend
        self.in_proj = nn.Linear(W, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, conv, groups=E, padding=conv - 1)  # Mamba's; run by causal_conv
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E)
        dt = torch.exp(torch.empty(E).uniform_(math.log(dt_min), math.log(dt_max)))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))  # (E, N)
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, W, bias=False)
        self.state_shape, self.state_dtype = (E, N + conv - 1), torch.float32

    def forward(self, u: Tensor, is_first: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, L, W), is_first (B, L), s (B, E, N + K-1) -> (y (B, L, W), states (B, L, E, N + K-1))."""
        Bsz, L, _ = u.shape
        N = self.N
        x, z = self.in_proj(u).chunk(2, -1)  # (B, L, E) each
        window = s[..., N:].transpose(1, 2)  # (B, K-1, E); causal_conv drops it where is_first[:, 0]
        x, windows = causal_conv(x, window, is_first, self.conv1d.weight[:, 0], self.conv1d.bias)
        x = F.silu(x)  # (B, L, E)
        dt, Bm, Cm = self.x_proj(x).split([self.R, N, N], -1)
        dt = F.softplus(self.dt_proj(dt))  # (B, L, E)
        A = -torch.exp(self.A_log)  # (E, N)
        a = torch.exp(dt[..., None] * A).reshape(Bsz, L, -1)  # (B, L, E*N)
        bu = ((dt * x)[..., None] * Bm[:, :, None, :]).reshape(Bsz, L, -1)  # (B, L, E*N)
        hs = scan_with_carry(a, bu, is_first, s[..., :N].reshape(Bsz, -1), self.backend).reshape(Bsz, L, self.E, N)
        y = (hs @ Cm[..., None]).squeeze(-1) + self.D * x  # (B, L, E)
        states = torch.cat([hs, windows.transpose(2, 3)], -1)  # (B, L, E, N + K-1)
        return self.out_proj(y * F.silu(z)), states

    def step(self, u: Tensor, is_first: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, W), is_first (B,), s (B, E, N + K-1) -> (y (B, W), s_next): the sequence with L = 1."""
        y, states = self.forward(u[:, None], is_first[:, None], s)
        return y[:, 0], states[:, 0]


class MambaBackbone(SSMBackbone):
    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__(
            in_dim,
            width,
            config,
            lambda: SelectiveSSM(width, config.mamba_expand, config.mamba_state, config.dt_min, config.dt_max, config.scan_backend),
            ssms_per_block=1,
            mlp=False,
        )
