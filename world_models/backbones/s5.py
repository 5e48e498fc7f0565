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
    return hippo_n(P)[0].to(torch.complex64)


@functools.cache
def hippo_n(P: int) -> tuple[Tensor, Tensor]:
    """(Lambda (P,), V (2P, P)) complex128 on the CPU: the P eigenvalues -1/2 + i w (w > 0, ascending) of
    HiPPO-N, the normal part of HiPPO-LegS of size 2P, and their orthonormal eigenvectors (S5's conjugate-
    symmetric half). Cached: every S5 layer of every model (and every width fit_width tries) uses them."""
    n = torch.arange(2 * P, dtype=torch.float64, device="cpu")
    q = torch.sqrt(2 * n + 1)
    S = -0.5 * q[:, None] * q[None, :] * torch.sign(n[:, None] - n[None, :])  # skew-symmetric part
    w, V = torch.linalg.eigh(-1j * S.to(torch.complex128))  # w real ascending; S = V diag(i w) V^H
    keep = w > 0
    return torch.complex(torch.full_like(w[keep], -0.5), w[keep]), V[:, keep]


def _lecun_normal(*shape: int, fan_in: int) -> Tensor:
    """Truncated normal (at 2 std) with variance 1 / fan_in, as jax's lecun_normal that S5 uses."""
    std = 1 / math.sqrt(fan_in) / 0.87962566103423978  # the truncation's variance correction (jax)
    return nn.init.trunc_normal_(torch.empty(*shape, dtype=torch.float64, device="cpu"), std=std, a=-2 * std, b=2 * std)


def s5_init_B_C(P: int, H: int) -> tuple[Tensor, Tensor]:
    """S5's initialisation of B (P, H) and C (H, P), complex64 (Smith et al. 2023, and its code):
    B = V^-1 B0, B0 (2P, H) real lecun-normal; C = C0 V, C0 (H, 2P) complex with real and imaginary parts
    lecun-normal; V the HiPPO-N eigenvectors (2P, P) (V^-1 = V^H: they are orthonormal). S5 reads out
    2 Re(C x) over the conjugate-symmetric half; this layer reads Re(C x), so C carries the factor 2."""
    _, V = hippo_n(P)
    B = V.conj().T @ _lecun_normal(2 * P, H, fan_in=2 * P).to(torch.complex128)
    C0 = torch.complex(_lecun_normal(H, 2 * P, fan_in=2 * P), _lecun_normal(H, 2 * P, fan_in=2 * P))
    return B.to(torch.complex64), (2 * C0 @ V).to(torch.complex64)


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

    def __init__(
        self, H: int, P: int, dt_min: float, dt_max: float, backend: str = "auto", init: str = "gaussian", input_gain: str = "zoh"
    ):
        super().__init__()
        if input_gain not in ("zoh", "unit_variance"):
            raise ValueError(f"unknown S5 input gain {input_gain!r}; known: zoh, unit_variance")
        self.H, self.P, self.backend, self.input_gain = H, P, backend, input_gain
        Lambda = hippo_n_eigenvalues(P)
        self.Lambda_re_log = nn.Parameter(torch.log(-Lambda.real).to(torch.get_default_device()))  # Re(Lambda) = -exp(.)
        self.Lambda_im = nn.Parameter(Lambda.imag.to(torch.get_default_device()))
        if init == "s5":  # the paper's, through the eigenvectors (s5_init_B_C)
            B, C = s5_init_B_C(P, H)
            device = torch.get_default_device()
            self.B = nn.Parameter(torch.view_as_real(B).to(device))  # (P, H, 2): complex stored as real
            self.C = nn.Parameter(torch.view_as_real(C).to(device))  # (H, P, 2)
        elif init == "gaussian":  # complex normal B (total std 1/sqrt(H)) and C (total std 1), in the eigenbasis
            self.B = complex_param((P, H), 1 / math.sqrt(H))  # (P, H)
            self.C = complex_param((H, P), 1.0)  # (H, P)
        else:
            raise ValueError(f"unknown S5 initialisation of B and C {init!r}; known: gaussian, s5")
        self.D = nn.Parameter(torch.ones(H))
        self.log_dt = nn.Parameter(torch.empty(P).uniform_(math.log(dt_min), math.log(dt_max)))
        self.state_shape, self.state_dtype = (P,), torch.complex64

    def discretize(self) -> tuple[Tensor, Tensor, Tensor]:
        """Discretised parameters (zero-order hold for Lambda): (Lambda_bar (P,), B_bar (P, H), C (H, P)), complex64."""
        Lambda = torch.complex(-torch.exp(self.Lambda_re_log), self.Lambda_im)
        Lambda_bar = torch.exp(Lambda * torch.exp(self.log_dt))
        if self.input_gain == "zoh":
            gain = (Lambda_bar - 1) / Lambda  # (P,) complex: zero-order hold
        else:  # a state's stationary variance under i.i.d. unit inputs is gain^2 / (1 - |Lambda_bar|^2) = 1
            gain = torch.sqrt(1 - Lambda_bar.abs() ** 2).to(Lambda_bar.dtype)  # (P,)
        B_bar = gain[:, None] * torch.view_as_complex(self.B)
        return Lambda_bar, B_bar, torch.view_as_complex(self.C)

    def forward(self, u: Tensor, is_first: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, L, H), is_first (B, L), x (B, P) -> (y (B, L, H), states (B, L, P))."""
        Lambda_bar, B_bar, C = self.discretize()
        xs = scan_with_carry(Lambda_bar, project(u, input_matrix(B_bar)), is_first, x, self.backend)  # (B, L, P)
        return readout(xs, C, self.D, u), xs

    def step(self, u: Tensor, is_first: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, H), is_first (B,), x (B, P) -> (y (B, H), x_next (B, P))."""
        Lambda_bar, W, C = cached_without_grad(self, self._step_weights)
        return recurrent_step(x, Lambda_bar, project(u, W), C, self.D, u, is_first)

    def _step_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """(Lambda_bar (P,), input_matrix(B_bar) (2P, H), C (H, P)): what one recurrent step reads."""
        Lambda_bar, B_bar, C = self.discretize()
        return Lambda_bar, input_matrix(B_bar), C


class S5Backbone(SSMBackbone):
    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__(
            in_dim,
            width,
            config,
            lambda: S5Layer(width, config.ssm_state, config.dt_min, config.dt_max, config.scan_backend, config.s5_init, config.s5_input),
        )
