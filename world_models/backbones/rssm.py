"""DreamerV3's recurrent core: an input layer, then a GRU cell with LayerNorm (Hafner et al. 2023).

As a backbone it maps inputs x_t = (z_{t-1}, a_{t-1}) to h_t = GRU(h_{t-1}, x_t); the world model adds
the RSSM's posterior that sees h_t and the observation. Also a plain sequence model (GRU memory)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_models.backbones.base import Backbone, select_state
from world_models.config import WorldModelConfig
from world_models.nets import make_act, make_norm


class GRUBackbone(Backbone):
    """(B, L, in_dim) -> (B, L, deter). State: `h` (B, deter), zero at an episode start."""

    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__()
        self.in_dim, self.out_dim, self.deter = in_dim, width, width
        self.inp = nn.Sequential(
            nn.Linear(in_dim, config.hidden, bias=config.norm == "none"), make_norm(config.norm, config.hidden), make_act(config.act)
        )
        self.gates = nn.Linear(config.hidden + width, 3 * width, bias=config.norm == "none")
        self.gates_norm = make_norm(config.norm, 3 * width)

    def initial_state(self, batch: int, device=None) -> dict[str, Tensor]:
        return {"h": torch.zeros(batch, self.deter, device=device)}

    def cell(self, x: Tensor, h: Tensor) -> Tensor:
        """DreamerV3's GRU: x (B, hidden), h (B, deter) -> h' (B, deter)."""
        reset, cand, update = self.gates_norm(self.gates(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)  # biased towards keeping the state
        return update * cand + (1 - update) * h

    def step(self, x: Tensor, is_first: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        h = select_state(is_first, torch.zeros_like(state["h"]), state["h"])
        h = self.cell(self.inp(x), h)
        return h, {"h": h}

    def forward(self, x: Tensor, is_first: Tensor, state: dict[str, Tensor] | None = None, all_states: bool = False):
        self.check_inputs(x, is_first)
        state = self.initial_state(x.shape[0], x.device) if state is None else state
        inp, hs = self.inp(x), []  # (B, L, hidden)
        h = state["h"]
        for t in range(x.shape[1]):
            h = self.cell(inp[:, t], select_state(is_first[:, t], torch.zeros_like(h), h))
            hs.append(h)
        y = torch.stack(hs, 1)  # (B, L, deter)
        return y, ({"h": y} if all_states else {"h": h})
