"""A causal Transformer over (z_{t-1}, a_{t-1}) tokens (TransDreamer-style): pre-norm blocks, rotary
positions (RoPE), no attention across an episode start, an attention window of `config.context`
tokens, and a key/value cache that carries the context across calls (chunks of a sequence, env
steps, imagination).

Positions are rotary so that attention depends only on the distance between two tokens, never on
where the counting started: a training window starts its count at 0 (replay marks its first step
as a reset), acting counts from the real episode start, and both give a token the same meaning.
The rotation angles are computed in float64 from integer positions, so a long acting run loses no
precision. What holds, to float32 rounding:
- `forward` over a sequence equals `step` one token at a time, and two chunks carrying the state;
- a row holding several episodes equals each episode alone (the mask is block-diagonal);
- the output at token t reads tokens t - layers * (context - 1) .. t and nothing else, so acting
  for any number of steps equals `forward` from a blank state over the last layers * (context - 1) + 1
  tokens (its receptive field); with one layer, the last `context` tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.backbones.base import Backbone
from world_models.config import WorldModelConfig
from world_models.nets import make_act, make_norm


def rotary(pos: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """RoPE angles of integer positions pos (...) -> cos, sin (..., dim // 2), float32.

    float64 angles keep cos and sin exact to float32 at any position (MPS has no float64)."""
    dtype = torch.float32 if pos.device.type == "mps" else torch.float64
    half = dim // 2
    freq = 10000.0 ** (-torch.arange(half, device=pos.device, dtype=dtype) / max(half, 1))  # (dim/2,)
    angle = pos.to(dtype)[..., None] * freq
    return angle.cos().float(), angle.sin().float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, heads, L, d) rotated pairwise (channel i with i + d/2) by cos, sin (B, 1, L, d/2); an odd last channel stays."""
    half = cos.shape[-1]
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], -1)
    return out.to(x.dtype)


class Block(nn.Module):
    """Pre-norm causal self-attention and MLP, each residual."""

    def __init__(self, width: int, heads: int, config: WorldModelConfig):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = make_norm(config.norm, width), make_norm(config.norm, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), make_act(config.act), nn.Linear(2 * width, width))

    def forward(self, x: Tensor, cache_k: Tensor, cache_v: Tensor, mask: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, L, W); cache_k, cache_v (B, C, W), the keys already rotated; mask (B, L, C + L) bool,
        True = may attend; cos, sin (B, L, W / heads / 2) the rotation of the chunk's positions.

        Returns (x (B, L, W), k, v (B, C + L, W)): the (rotated) keys and values of cache and chunk."""
        B, L, W = x.shape
        d = W // self.heads

        def heads(t: Tensor) -> Tensor:  # (B, T, W) -> (B, heads, T, d)
            return t.reshape(B, t.shape[1], self.heads, d).transpose(1, 2)

        def merge(t: Tensor) -> Tensor:  # (B, heads, T, d) -> (B, T, W)
            return t.transpose(1, 2).reshape(B, t.shape[2], W)

        q, k, v = self.qkv(self.norm1(x)).chunk(3, -1)
        q, k = rotate(heads(q), cos[:, None], sin[:, None]), rotate(heads(k), cos[:, None], sin[:, None])
        k, v = torch.cat([cache_k, merge(k)], 1), torch.cat([cache_v, v], 1)
        att = F.scaled_dot_product_attention(q, heads(k), heads(v), attn_mask=mask[:, None])
        x = x + self.proj(merge(att))
        return x + self.mlp(self.norm2(x)), k, v


class TransformerBackbone(Backbone):
    """(B, L, in_dim) -> (B, L, width). State: `k0`, `v0`, `k1`, ... (B, C, width) the cached keys
    (rotated to their positions) and values per block (C <= context - 1, oldest first), `valid` (B, C)
    bool, `pos` (B,) the position of the next token, counted from its episode's start (or from the
    first token the backbone saw, for a sequence that began mid-episode: only distances matter)."""

    def __init__(self, in_dim: int, width: int, config: WorldModelConfig):
        super().__init__()
        if width % config.heads:
            raise ValueError(f"transformer width {width} must be a multiple of heads={config.heads}")
        if config.context < 1:
            raise ValueError(f"transformer context must be >= 1 token, got {config.context}")
        self.in_dim, self.out_dim, self.width, self.context = in_dim, width, width, config.context
        self.head_dim = width // config.heads
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
        cos, sin = rotary(pos, self.head_dim)  # (B, L, head_dim / 2)

        # who may attend to whom: query i (chunk) to key j (cache then chunk)
        dist = (C + t)[:, None] - torch.arange(C + L, device=x.device)  # (L, C + L)
        key_valid = torch.cat([valid, torch.ones(B, L, dtype=torch.bool, device=x.device)], 1)  # (B, C + L)
        key_seg = torch.cat([torch.zeros(B, C, dtype=torch.long, device=x.device), seg], 1)  # (B, C + L)
        mask = key_valid[:, None] & (key_seg[:, None] == seg[:, :, None]) & (dist >= 0) & (dist < self.context)

        h, keys, values = self.inp(x), [], []
        for i, block in enumerate(self.blocks):
            h, k, v = block(h, state[f"k{i}"], state[f"v{i}"], mask, cos, sin)
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
