"""A selective SSM (Mamba, Gu and Dao 2023): the step size, B and C depend on the input, so the
transition a_t = exp(dt_t A) varies in time; `kernels.scan` runs it over the E*N states.
Blocks are Mamba's (pre-norm, mixer, residual); the short causal convolution of Mamba is left out
so that the state is the SSM state alone."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.backbones.ssm import SSMBackbone, scan_with_carry
from world_models.config import WorldModelConfig


class SelectiveSSM(nn.Module):
    """u (B, L, W) -> y (B, L, W); state (B, E, N) float32, E = expand * W."""

    needs_out = False  # the mixer has its own output projection

    def __init__(self, W: int, expand: int, N: int, dt_min: float, dt_max: float, backend: str = "auto"):
        super().__init__()
        E, R = expand * W, max(1, math.ceil(W / 16))
        self.E, self.N, self.R, self.backend = E, N, R, backend
        self.in_proj = nn.Linear(W, 2 * E, bias=False)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E)
        dt = torch.exp(torch.empty(E).uniform_(math.log(dt_min), math.log(dt_max)))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))  # (E, N)
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, W, bias=False)
        self.state_shape, self.state_dtype = (E, N), torch.float32

    def forward(self, u: Tensor, is_first: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, L, W), is_first (B, L), s (B, E, N) -> (y (B, L, W), states (B, L, E, N))."""
        Bsz, L, _ = u.shape
        x, z = self.in_proj(u).chunk(2, -1)
        x = F.silu(x)  # (B, L, E)
        dt, Bm, Cm = self.x_proj(x).split([self.R, self.N, self.N], -1)
        dt = F.softplus(self.dt_proj(dt))  # (B, L, E)
        A = -torch.exp(self.A_log)  # (E, N)
        a = torch.exp(dt[..., None] * A).reshape(Bsz, L, -1)  # (B, L, E*N)
        bu = ((dt * x)[..., None] * Bm[:, :, None, :]).reshape(Bsz, L, -1)  # (B, L, E*N)
        hs = scan_with_carry(a, bu, is_first, s.reshape(Bsz, -1), self.backend).reshape(Bsz, L, self.E, self.N)
        y = (hs @ Cm[..., None]).squeeze(-1) + self.D * x  # (B, L, E)
        return self.out_proj(y * F.silu(z)), hs

    def step(self, u: Tensor, is_first: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, W), is_first (B,), s (B, E, N) -> (y (B, W), s_next): the scan with L = 1."""
        y, hs = self.forward(u[:, None], is_first[:, None], s)
        return y[:, 0], hs[:, 0]


class MambaBackbone(SSMBackbone):
    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__(in_dim, width, config, lambda: SelectiveSSM(width, config.mamba_expand, config.mamba_state,
                                                                     config.dt_min, config.dt_max, config.scan_backend),
                         ssms_per_block=1, mlp=False)
