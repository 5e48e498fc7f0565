"""S4D (Gu, Gupta, Goel, Re 2022): SISO diagonal SSMs, N complex states per channel, S4D-Lin or
S4D-Inv initialisation, zero-order hold with a learned step size per channel, run by `kernels.scan`
with a time-invariant transition over the H*N states."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from world_models.backbones.ssm import SSMBackbone, cached_without_grad, complex_param, recurrent_step, scan_with_carry
from world_models.config import WorldModelConfig


class S4DLayer(nn.Module):
    """u (B, L, H) -> y (B, L, H); state x (B, H, N) complex64. Parameters named as in s4d.py."""

    def __init__(self, H: int, N: int, dt_min: float, dt_max: float, init: str = "lin", backend: str = "auto"):
        super().__init__()
        self.H, self.N, self.backend = H, N, backend
        n = torch.arange(N, dtype=torch.float32)
        if init == "lin":
            A_imag = math.pi * n
        elif init == "inv":
            A_imag = N / math.pi * (N / (2 * n + 1) - 1)
        else:
            raise ValueError(f"unknown S4D initialisation {init!r}; known: lin, inv")
        self.log_A_real = nn.Parameter(torch.full((H, N), math.log(0.5)))
        self.A_imag = nn.Parameter(A_imag.repeat(H, 1))  # (H, N)
        self.C = complex_param((H, N), 1.0)  # (H, N)
        self.D = nn.Parameter(torch.ones(H))
        self.log_dt = nn.Parameter(torch.empty(H).uniform_(math.log(dt_min), math.log(dt_max)))
        self.state_shape, self.state_dtype = (H, N), torch.complex64

    def discretize(self) -> tuple[Tensor, Tensor, Tensor]:
        """Zero-order hold with B = 1: (a (H, N), B_bar (H, N), C (H, N)), complex64."""
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        a = torch.exp(A * torch.exp(self.log_dt)[:, None])
        return a, (a - 1) / A, torch.view_as_complex(self.C)

    def forward(self, u: Tensor, is_first: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, L, H), is_first (B, L), x (B, H, N) -> (y (B, L, H), states (B, L, H, N))."""
        a, B_bar, C = self.discretize()
        Bsz, L, H = u.shape
        bu = (u.to(torch.complex64)[..., None] * B_bar).reshape(Bsz, L, H * self.N)
        xs = scan_with_carry(a.reshape(-1), bu, is_first, x.reshape(Bsz, -1), self.backend).reshape(Bsz, L, H, self.N)
        y = (xs * C).sum(-1).real + self.D * u
        return y, xs

    def step(self, u: Tensor, is_first: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, H), is_first (B,), x (B, H, N) -> (y (B, H), x_next (B, H, N))."""
        a, B_bar, C = cached_without_grad(self, self.discretize)
        bu = u[..., None] * B_bar  # (B, H, N) complex
        return recurrent_step(x, a, bu, C, self.D, u, is_first)


class S4Backbone(SSMBackbone):
    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__(
            in_dim,
            width,
            config,
            lambda: S4DLayer(width, config.s4_state, config.dt_min, config.dt_max, config.s4_init, config.scan_backend),
        )
