"""S5 (Smith, Warrington, Linderman 2023): a MIMO diagonal SSM, one complex state of size P shared by
all H channels, HiPPO-N initialisation, zero-order hold with learned per-state step sizes, run by
`kernels.scan` with a time-invariant transition."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.backbones.ssm import SSMBackbone, cached_without_grad, complex_param, recurrent_step, scan_with_carry
from world_models.config import WorldModelConfig


def hippo_n_eigenvalues(P: int) -> Tensor:
    """(P,) complex64: the eigenvalues -1/2 + i w (w > 0) of the normal part of HiPPO-LegS of size 2P."""
    return _hippo_n_eigenvalues(P).clone()


@functools.lru_cache(maxsize=None)
def _hippo_n_eigenvalues(P: int) -> Tensor:
    # cached: every S5 layer of every model (and every width that fit_width tries) needs the same ones
    n = torch.arange(2 * P, dtype=torch.float64, device="cpu")
    q = torch.sqrt(2 * n + 1)
    S = -0.5 * q[:, None] * q[None, :] * torch.sign(n[:, None] - n[None, :])  # skew-symmetric part
    w = torch.linalg.eigvalsh(-1j * S.to(torch.complex128))  # real; S = i * diag(w) in its eigenbasis
    w = torch.sort(w[w > 0]).values[:P]
    return torch.complex(torch.full_like(w, -0.5), w).to(torch.complex64)


def input_matrix(B: Tensor) -> Tensor:
    """B (P, H) complex -> W (2P, H) real, rows Re B_0, Im B_0, Re B_1, ...: the real form `project` multiplies by."""
    P, H = B.shape
    return torch.view_as_real(B).permute(0, 2, 1).reshape(2 * P, H)


def project(u: Tensor, W: Tensor) -> Tensor:
    """u (..., H) real, W = input_matrix(B) (2P, H) -> B u (..., P) complex: one real matmul, no complex copy of u."""
    return torch.view_as_complex(F.linear(u, W).reshape(*u.shape[:-1], W.shape[0] // 2, 2))


def readout(x: Tensor, C: Tensor, D: Tensor, u: Tensor) -> Tensor:
    """Re(C x) + D u: x (..., P) complex, C (H, P) complex, D (H,), u (..., H) -> (..., H), one real matmul."""
    H, P = C.shape
    W = (torch.view_as_real(C) * torch.tensor([1.0, -1.0], device=C.device)).reshape(H, 2 * P)
    return torch.addcmul(torch.view_as_real(x).flatten(-2) @ W.T, D, u)


class S5Layer(nn.Module):
    """u (B, L, H) -> y (B, L, H); state x (B, P) complex64. Parameters named as in the paper."""

    def __init__(self, H: int, P: int, dt_min: float, dt_max: float, backend: str = "auto"):
        super().__init__()
        self.H, self.P, self.backend = H, P, backend
        Lambda = hippo_n_eigenvalues(P)
        self.Lambda_re_log = nn.Parameter(torch.log(-Lambda.real).to(torch.get_default_device()))  # Re(Lambda) = -exp(.)
        self.Lambda_im = nn.Parameter(Lambda.imag.to(torch.get_default_device()))
        self.B = complex_param((P, H), 1 / math.sqrt(H))  # (P, H)
        self.C = complex_param((H, P), 1.0)  # (H, P): standard normal, as in S5
        self.D = nn.Parameter(torch.ones(H))
        self.log_dt = nn.Parameter(torch.empty(P).uniform_(math.log(dt_min), math.log(dt_max)))
        self.state_shape, self.state_dtype = (P,), torch.complex64

    def discretize(self) -> tuple[Tensor, Tensor, Tensor]:
        """Zero-order hold: (Lambda_bar (P,), B_bar (P, H), C (H, P)), complex64."""
        Lambda = torch.complex(-torch.exp(self.Lambda_re_log), self.Lambda_im)
        Lambda_bar = torch.exp(Lambda * torch.exp(self.log_dt))
        B_bar = ((Lambda_bar - 1) / Lambda)[:, None] * torch.view_as_complex(self.B)
        return Lambda_bar, B_bar, torch.view_as_complex(self.C)

    def forward(self, u: Tensor, is_first: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, L, H), is_first (B, L), x (B, P) -> (y (B, L, H), states (B, L, P))."""
        Lambda_bar, B_bar, C = self.discretize()
        xs = scan_with_carry(Lambda_bar, project(u, input_matrix(B_bar)), is_first, x, self.backend)  # (B, L, P)
        return readout(xs, C, self.D, u), xs

    def step(self, u: Tensor, is_first: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, H), is_first (B,), x (B, P) -> (y (B, H), x_next (B, P))."""
        Lambda_bar, W, C = cached_without_grad(self, (self.Lambda_re_log, self.Lambda_im, self.B, self.C, self.log_dt),
                                               self._step_weights)
        return recurrent_step(x, Lambda_bar, project(u, W), C, self.D, u, is_first)

    def _step_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """(Lambda_bar (P,), input_matrix(B_bar) (2P, H), C (H, P)): what one recurrent step reads."""
        Lambda_bar, B_bar, C = self.discretize()
        return Lambda_bar, input_matrix(B_bar), C


class S5Backbone(SSMBackbone):
    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__(in_dim, width, config, lambda: S5Layer(width, config.ssm_state, config.dt_min, config.dt_max,
                                                                config.scan_backend))
