"""The network of recurrent PPO (agents/ppo.py): an observation encoder, any memwm backbone as the
memory, and actor and critic heads."""

from __future__ import annotations

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from agents.actions import ActionCodec
from agents.dreamer import ActionDist
from world_models import backbones
from world_models.config import WorldModelConfig
from world_models.distributions import Normal, OneHotCategorical, symlog
from world_models.nets import MLP, ImageEncoder

State = dict[str, Tensor]  # a backbone's memory: name -> (B, ...) tensor


class RecurrentActorCritic(nn.Module):
    """Observation encoder -> memory backbone -> actor and critic heads.

    Observations: `vector` (symlog, then an MLP) and/or `image` (the world models' CNN encoder).
    Actions are vectors in `agents.actions.ActionCodec`'s layout: one-hots for Discrete (and
    MultiDiscrete, independent parts), or for Box a Gaussian in [-1, 1] with a state-independent
    log std (CleanRL's continuous PPO); the sample is stored unclipped and clipped by the codec.
    The backbone's internals (layers, SSM state sizes, norm) come from the WorldModelConfig, its
    width from `width`; `hidden` is the size of the encoder and heads, `init_log_std` the Gaussian's
    initial log std (agents.ppo.PPOConfig's settings).
    """

    def __init__(
        self,
        obs_space: gymnasium.spaces.Dict,
        act_space: gymnasium.Space,
        backbone: str,
        wm_config: WorldModelConfig | None = None,
        *,
        width: int,
        hidden: int,
        init_log_std: float,
    ):
        super().__init__()
        wm_config = wm_config or WorldModelConfig.preset("tiny")
        self.keys = [k for k in ("vector", "image") if k in obs_space.spaces]
        if not self.keys:
            raise ValueError(f"PPO needs a 'vector' or 'image' observation; the env has {sorted(obs_space.spaces)}")
        enc_dim = 0
        if "vector" in self.keys:
            self.vector_enc = MLP(int(np.prod(obs_space["vector"].shape)), None, hidden, 1)
            enc_dim += self.vector_enc.out_dim
        if "image" in self.keys:
            self.image_enc = ImageEncoder(wm_config.cnn_depth)
            enc_dim += self.image_enc.out_dim
        self.backbone = backbones.make(backbone, enc_dim, width, wm_config)
        self.codec = ActionCodec(act_space)
        feat = self.backbone.out_dim
        self.actor = MLP(feat, self.codec.dim, hidden, 1)
        self.critic = MLP(feat, 1, hidden, 1)
        if not self.codec.discrete:
            self.log_std = nn.Parameter(torch.full((self.codec.dim,), init_log_std))
        with torch.no_grad():  # CleanRL's output scales: a near-uniform policy, a near-zero value
            self.actor.net[-1].weight.mul_(0.01)
            self.critic.net[-1].weight.mul_(0.1)

    def initial_state(self, batch: int, device=None) -> State:
        return self.backbone.initial_state(batch, device)

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """obs tensors (..., K) / (..., 64, 64, 3) -> (..., enc_dim)."""
        parts = []
        if "vector" in self.keys:
            parts.append(self.vector_enc(symlog(obs["vector"].float())))
        if "image" in self.keys:
            parts.append(self.image_enc(obs["image"]))
        return torch.cat(parts, -1)

    def heads(self, feat: Tensor) -> tuple[ActionDist, Tensor]:
        """feat (..., F) -> (distribution over action vectors (..., A), value (...))."""
        out = self.actor(feat)
        if self.codec.discrete:
            dist = ActionDist([OneHotCategorical(logits) for logits in out.split(self.codec.sizes, -1)])
        else:
            dist = ActionDist(Normal(out, self.log_std.exp().expand_as(out)))
        return dist, self.critic(feat)[..., 0]

    def forward(self, obs: dict[str, Tensor], is_first: Tensor, state: State):
        """Whole sequences: obs (B, L, ...), is_first (B, L) -> (dist over (B, L, A), value (B, L), state)."""
        feat, state = self.backbone(self.encode(obs), is_first, state)
        return (*self.heads(feat), state)

    def step(self, obs: dict[str, Tensor], is_first: Tensor, state: State):
        """One env step: obs (B, ...), is_first (B,) -> (dist over (B, A), value (B,), state)."""
        feat, state = self.backbone.step(self.encode(obs), is_first, state)
        return (*self.heads(feat), state)

    def sample(self, dist: ActionDist, greedy: bool = False) -> Tensor:
        """An action vector (B, A); `greedy` takes the mode. Gaussian samples stay unclipped (the env clips)."""
        if greedy:
            return dist.mode().detach()
        return (dist.parts.sample() if isinstance(dist.parts, Normal) else dist.sample()).detach()


def index_state(state: State, index) -> State:
    """Rows `index` of every tensor of a backbone state."""
    return {k: v[index] for k, v in state.items()}
