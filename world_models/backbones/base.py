"""The interface every sequence backbone implements (also usable on its own, e.g. as PPO memory).

    backbone.initial_state(batch, device) -> state: dict[str, Tensor], batch-first
    backbone.forward(x (B, L, in_dim), is_first (B, L) bool, state | None, all_states=False)
        -> (y (B, L, out_dim), state)         # state after the last step, or with all_states=True
                                              # the state after every step: each tensor (B, L, ...)
    backbone.step(x (B, in_dim), is_first (B,) bool, state) -> (y (B, out_dim), state)

`is_first[:, t]` resets the memory before step t (to the initial state; attention does not look back
past it). `forward` and `step` agree to float32 rounding: that is the contract the tests check.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Backbone(nn.Module):
    in_dim: int
    out_dim: int

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(
        self, x: Tensor, is_first: Tensor, state: dict[str, Tensor] | None = None, all_states: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def step(self, x: Tensor, is_first: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        y, state = self.forward(x[:, None], is_first[:, None], state)
        return y[:, 0], state

    def check_inputs(self, x: Tensor, is_first: Tensor) -> None:
        """Raise ValueError on shapes that do not fit: x (B, L, in_dim), is_first (B, L) bool."""
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"{type(self).__name__}: x must be (B, L, {self.in_dim}), got {tuple(x.shape)}")
        if is_first.shape != x.shape[:2] or is_first.dtype != torch.bool:
            raise ValueError(
                f"{type(self).__name__}: is_first must be bool {tuple(x.shape[:2])}, got {is_first.dtype} {tuple(is_first.shape)}"
            )


def select_state(is_first: Tensor, init: Tensor, state: Tensor) -> Tensor:
    """Rows where is_first (B,) take `init` (B, ...), the others keep `state` (B, ...)."""
    mask = is_first.reshape(-1, *([1] * (state.dim() - 1)))
    return torch.where(mask, init, state)
