"""A causal Transformer over (z_{t-1}, a_{t-1}) tokens (TransDreamer-style): pre-norm blocks,
sinusoidal positions counted from the episode start, no attention across an episode start, an
attention window of `config.context` tokens, and a key/value cache that carries the context across
calls (chunks of a sequence, env steps, imagination)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.backbones.base import Backbone
from world_models.config import WorldModelConfig
from world_models.nets import make_act, make_norm, sinusoidal


class Block(nn.Module):
    """Pre-norm causal self-attention and MLP, each residual."""

    def __init__(self, width: int, heads: int, config: WorldModelConfig):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = make_norm(config.norm, width), make_norm(config.norm, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), make_act(config.act), nn.Linear(2 * width, width))

    def forward(self, x: Tensor, cache_k: Tensor, cache_v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, L, W); cache_k, cache_v (B, C, W); mask (B, L, C + L) bool, True = may attend.

        Returns (x (B, L, W), k, v (B, C + L, W)): the keys and values of cache and chunk."""
        B, L, W = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, -1)
        k, v = torch.cat([cache_k, k], 1), torch.cat([cache_v, v], 1)

        def heads(t: Tensor) -> Tensor:
            return t.reshape(B, t.shape[1], self.heads, W // self.heads).transpose(1, 2)

        att = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask[:, None])
        x = x + self.proj(att.transpose(1, 2).reshape(B, L, W))
        return x + self.mlp(self.norm2(x)), k, v


class TransformerBackbone(Backbone):
    """(B, L, in_dim) -> (B, L, width). State: `k0`, `v0`, `k1`, ... (B, C, width) the cached keys and
    values per block (C <= context - 1, oldest first), `valid` (B, C) bool, `pos` (B,) the position of
    the next token in its episode."""

    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__()
        if width % config.heads:
            raise ValueError(f"transformer width {width} must be a multiple of heads={config.heads}")
        if config.context < 1:
            raise ValueError(f"transformer context must be >= 1 token, got {config.context}")
        self.in_dim, self.out_dim, self.width, self.context = in_dim, width, width, config.context
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(Block(width, config.heads, config) for _ in range(config.layers))
        self.norm = make_norm(config.norm, width)

    def initial_state(self, batch: int, device=None) -> dict[str, Tensor]:
        state = {
            "valid": torch.zeros(batch, 0, dtype=torch.bool, device=device),
            "pos": torch.zeros(batch, dtype=torch.long, device=device),
        }
        for i in range(len(self.blocks)):
            state[f"k{i}"] = state[f"v{i}"] = torch.zeros(batch, 0, self.width, device=device)
        return state

    def forward(self, x: Tensor, is_first: Tensor, state: dict[str, Tensor] | None = None, all_states: bool = False):
        self.check_inputs(x, is_first)
        B, L, _ = x.shape
        state = self.initial_state(B, x.device) if state is None else state
        valid = state["valid"]
        C = valid.shape[1]
        t = torch.arange(L, device=x.device)
        seg = torch.cumsum(is_first.long(), 1)  # (B, L) episode index in the chunk; 0 = the cache's episode
        last_reset = torch.cummax(torch.where(is_first, t, -1), 1).values  # (B, L)
        pos = torch.where(last_reset >= 0, t - last_reset, state["pos"][:, None] + t)  # (B, L)

        # who may attend to whom: query i (chunk) to key j (cache then chunk)
        dist = (C + t)[:, None] - torch.arange(C + L, device=x.device)  # (L, C + L)
        key_valid = torch.cat([valid, torch.ones(B, L, dtype=torch.bool, device=x.device)], 1)  # (B, C + L)
        key_seg = torch.cat([torch.zeros(B, C, dtype=torch.long, device=x.device), seg], 1)  # (B, C + L)
        mask = key_valid[:, None] & (key_seg[:, None] == seg[:, :, None]) & (dist >= 0) & (dist < self.context)

        h, keys, values = self.inp(x) + sinusoidal(pos, self.width), [], []
        for i, block in enumerate(self.blocks):
            h, k, v = block(h, state[f"k{i}"], state[f"v{i}"], mask)
            keys.append(k)
            values.append(v)
        y = self.norm(h)  # (B, L, W)

        W = min(self.context - 1, C + L)  # cache length kept
        if not all_states:
            keep = slice(C + L - W, C + L)
            new = {"valid": (key_valid & (key_seg == seg[:, -1:]))[:, keep], "pos": pos[:, -1] + 1}
            for i in range(len(self.blocks)):
                new[f"k{i}"], new[f"v{i}"] = keys[i][:, keep], values[i][:, keep]
            return y, new
        # the state after every step t: the window of W keys ending at token t (B, L, W, ...)
        idx = (C + t)[:, None] - W + 1 + torch.arange(W, device=x.device)  # (L, W)
        inside = idx >= 0
        idx = idx.clamp(min=0)
        win_valid = key_valid[:, idx] & (key_seg[:, idx] == seg[:, :, None]) & inside  # (B, L, W)
        new = {"valid": win_valid, "pos": pos + 1}
        for i in range(len(self.blocks)):
            new[f"k{i}"], new[f"v{i}"] = keys[i][:, idx], values[i][:, idx]  # (B, L, W, width)
        return y, new
