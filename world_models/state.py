"""The recurrent state a world model carries between calls (chunks of a sequence, env steps,
imagination starts): a small batch-first dataclass of tensors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class State:
    """World-model state after observing (or imagining) a step, batch-first.

    h: (B, H) the backbone output h_t (the deterministic part of the features).
    z: (B, Z) the latent z_t (flat; one-hot per categorical variable), read at the next step.
    action: (B, A) the action taken after that step, read at the next step; `observe` fills it from
        its last action; `step` and `imagine` leave zeros (their callers pass the action explicitly).
    mem: the backbone's own memory, name -> (B, ...) tensor: `h` (RSSM), `s0`, `s1`, ... the SSM
        states per SSM layer (complex for s4/s5), or `k0`, `v0`, ... (B, C, D) key/value caches,
        `valid` (B, C) and `pos` (B,) for the Transformer.
    """

    h: Tensor
    z: Tensor
    action: Tensor
    mem: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.h.shape[0]

    def map(self, fn) -> State:
        return State(fn(self.h), fn(self.z), fn(self.action), {k: fn(v) for k, v in self.mem.items()})

    def detach(self) -> State:
        return self.map(lambda t: t.detach())

    def to(self, device) -> State:
        return self.map(lambda t: t.to(device))

    def to_arrays(self) -> dict[str, Tensor]:
        """The state as flat tensors (B, ...) to store with replayed steps, float32 or wider (exact):
        `h`, `z`, `action` and `mem/<name>`; a complex memory tensor as its real and imaginary parts
        (B, ..., 2) under `cmem/<name>`."""
        out = {"h": self.h.float(), "z": self.z.float(), "action": self.action.float()}
        for k, v in self.mem.items():
            if v.is_complex():
                out[f"cmem/{k}"] = torch.view_as_real(v)
            else:
                out[f"mem/{k}"] = v.float() if v.is_floating_point() and v.dtype != torch.float64 else v
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Tensor], prefix: str = "") -> State:
        """The inverse of `to_arrays`, reading the keys that begin with `prefix`."""
        got = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        mem = {}
        for k, v in got.items():
            kind, _, name = k.partition("/")
            if kind in ("mem", "cmem"):
                mem[name] = torch.view_as_complex(v.contiguous()) if kind == "cmem" else v
        return cls(got["h"], got["z"], got["action"], mem)

    def __getitem__(self, index) -> State:
        """Rows of the batch: an index tensor, a slice or a bool mask."""
        return self.map(lambda t: t[index])

    @classmethod
    def cat(cls, states: list[State]) -> State:
        """Concatenate along the batch. Memory tensors whose dim 1 differs (key/value caches of
        different lengths) are left-padded with zeros, which marks the padding invalid."""
        if not states:
            raise ValueError("State.cat needs at least one state, got an empty list")
        keys = set(states[0].mem)
        if any(set(s.mem) != keys for s in states):
            raise ValueError(f"State.cat: memory keys differ: {[sorted(s.mem) for s in states]}")

        def cat(tensors: list[Tensor]) -> Tensor:
            if tensors[0].dim() >= 2 and len({t.shape[1] for t in tensors}) > 1:
                width = max(t.shape[1] for t in tensors)
                tensors = [_left_pad(t, width) for t in tensors]
            return torch.cat(tensors, 0)

        return State(
            cat([s.h for s in states]),
            cat([s.z for s in states]),
            cat([s.action for s in states]),
            {k: cat([s.mem[k] for s in states]) for k in states[0].mem},
        )


def _left_pad(t: Tensor, width: int) -> Tensor:
    """(B, C, ...) -> (B, width, ...) with zeros in front."""
    pad = [0, 0] * (t.dim() - 2) + [width - t.shape[1], 0]
    if t.dtype == torch.bool:
        return F.pad(t.to(torch.uint8), pad).bool()
    return F.pad(t, pad)
