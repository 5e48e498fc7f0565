"""Building blocks shared by every world model: norms, MLPs, the CNN encoder and the
transposed-CNN decoder for 64x64x3 images, and the observation encoder/decoder over dict spaces."""

from __future__ import annotations


import torch
from torch import Tensor, nn

from world_models.distributions import symexp, symlog

ACTS = {"silu": nn.SiLU, "gelu": nn.GELU, "elu": nn.ELU, "relu": nn.ReLU}
IMAGE_SHAPE = (64, 64, 3)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, dim: int) -> nn.Module:
    """'layer' (LayerNorm), 'rms' (RMSNorm) or 'none' (identity) over the last dim."""
    if kind == "layer":
        return nn.LayerNorm(dim, eps=1e-3)
    if kind == "rms":
        return RMSNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; known: layer, rms, none")


def make_act(kind: str) -> nn.Module:
    if kind not in ACTS:
        raise ValueError(f"unknown activation {kind!r}; known: {', '.join(ACTS)}")
    return ACTS[kind]()


class MLP(nn.Module):
    """`layers` x (Linear, norm, act), then an optional output Linear; (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, out_dim: int | None, hidden: int, layers: int, norm: str = "layer", act: str = "silu"):
        super().__init__()
        mods: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            mods += [nn.Linear(dim, hidden, bias=norm == "none"), make_norm(norm, hidden), make_act(act)]
            dim = hidden
        if out_dim is not None:
            mods.append(nn.Linear(dim, out_dim))
            dim = out_dim
        self.net = nn.Sequential(*mods)
        self.out_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ChannelNorm(nn.Module):
    """A last-dim norm applied over the channels of (N, C, H, W) -> (N, C, H, W).

    The image path runs channels-last (the encoder's uint8 (..., H, W, C) input permuted, so every
    conv, norm and SiLU output and gradient is channels-last): the permute here is then a contiguous
    view. Forcing NCHW-contiguous tensors instead would copy every activation and gradient between the
    two layouts."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        self.norm = make_norm(kind, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ImageEncoder(nn.Module):
    """64x64x3 uint8 -> (..., out_dim): 4 stride-2 convs (depth, 2, 4, 8 x depth) down to 4x4."""

    def __init__(self, depth: int, norm: str = "layer", act: str = "silu"):
        super().__init__()
        mods: list[nn.Module] = []
        cin = 3
        for i in range(4):
            cout = depth * 2**i
            mods += [nn.Conv2d(cin, cout, 4, 2, 1, bias=norm == "none"), ChannelNorm(norm, cout), make_act(act)]
            cin = cout
        self.net = nn.Sequential(*mods)
        self.out_dim = cin * 4 * 4

    def forward(self, image: Tensor) -> Tensor:
        """image: (..., 64, 64, 3) uint8 -> (..., out_dim)."""
        lead = image.shape[:-3]
        x = image.reshape(-1, *IMAGE_SHAPE).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.net(x).reshape(*lead, self.out_dim)


class ImageDecoder(nn.Module):
    """(..., in_dim) -> (..., 64, 64, 3): a Linear to 4x4 x 8 depth, then 4 stride-2 transposed convs.

    The output is the predicted mean of the image scaled to [0, 1] (not clamped; `WorldModel.decode`
    clamps it)."""

    def __init__(self, in_dim: int, depth: int, norm: str = "layer", act: str = "silu"):
        super().__init__()
        self.depth = depth
        self.fc = nn.Linear(in_dim, 8 * depth * 16)
        mods: list[nn.Module] = []
        cin = 8 * depth
        for i in range(4):
            last = i == 3
            cout = 3 if last else depth * 2 ** (2 - i)
            mods.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=last or norm == "none"))
            if not last:
                mods += [ChannelNorm(norm, cout), make_act(act)]
            cin = cout
        self.net = nn.Sequential(*mods)

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        x = self.fc(feat.reshape(-1, feat.shape[-1])).reshape(-1, 8 * self.depth, 4, 4)
        x = self.net(x).permute(0, 2, 3, 1) + 0.5  # (N, 64, 64, 3)
        return x.reshape(*lead, *IMAGE_SHAPE)


class ObsEncoder(nn.Module):
    """Encodes the `image` (CNN) and `vector` (symlog, MLP) keys and concatenates: -> (..., out_dim)."""

    def __init__(self, image: bool, vector_dim: int, cnn_depth: int, hidden: int, mlp_layers: int, norm: str, act: str):
        super().__init__()
        self.image = ImageEncoder(cnn_depth, norm, act) if image else None
        self.vector = MLP(vector_dim, None, hidden, max(mlp_layers, 1), norm, act) if vector_dim else None
        self.out_dim = (self.image.out_dim if self.image else 0) + (self.vector.out_dim if self.vector else 0)

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        parts = []
        if self.image is not None:
            parts.append(self.image(obs["image"]))
        if self.vector is not None:
            parts.append(self.vector(symlog(obs["vector"].float())))
        return torch.cat(parts, -1)


class ObsDecoder(nn.Module):
    """features (..., F) -> dict of predictions: `image` (..., 64, 64, 3) in [0, 1] scale (unclamped)
    and `vector` (..., K) in symlog space (the loss compares it with symlog of the target)."""

    def __init__(self, feat_dim: int, image: bool, vector_dim: int, cnn_depth: int, hidden: int, mlp_layers: int, norm: str, act: str):
        super().__init__()
        self.image = ImageDecoder(feat_dim, cnn_depth, norm, act) if image else None
        self.vector = MLP(feat_dim, vector_dim, hidden, mlp_layers, norm, act) if vector_dim else None

    def forward(self, feat: Tensor) -> dict[str, Tensor]:
        out = {}
        if self.image is not None:
            out["image"] = self.image(feat)
        if self.vector is not None:
            out["vector"] = self.vector(feat)
        return out


__all__ = [
    "MLP",
    "ImageEncoder",
    "ImageDecoder",
    "ObsEncoder",
    "ObsDecoder",
    "RMSNorm",
    "make_norm",
    "make_act",
    "symlog",
    "symexp",
    "IMAGE_SHAPE",
]
