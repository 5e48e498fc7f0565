"""The world model: encoder, posterior, a swappable sequence backbone, prior, decoder, reward and
continue heads, and DreamerV3's loss, behind one interface for every backbone.

Sequences follow DreamerV3's replay: action[:, t] is the action taken after seeing obs[:, t]. To
predict step t the backbone reads x_t = (z_{t-1}, a_{t-1}), both zero at an episode start, and gives
h_t; the prior is p(z_t | h_t); the posterior is q(z_t | o_t) (S4WM: all posteriors of a sequence at
once, then the backbone in parallel) or q(z_t | h_t, o_t) for the RSSM (step by step). Features
(h_t, z_t) feed the decoder, the heads and the policy.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from collections.abc import Callable

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models import backbones
from world_models.checks import check_action, check_batch, check_flags, check_obs, check_policy, check_sequence, check_state, obs_keys
from world_models.config import WorldModelConfig
from world_models.distributions import Bernoulli, TwoHotSymlog, symexp, symlog
from world_models.latents import Latent, LatentNet, kl_losses, latent_dim
from world_models.nets import IMAGE_SHAPE, MLP, ObsDecoder, ObsEncoder
from world_models.objectives import barlow_twins
from world_models.state import State

OBS_KEYS = ("image", "vector")
# feature_norm: added to the variance; small, since the dimensions that hold memory can have spreads of 1e-4
FEATURE_NORM_EPS = 1e-8


def image_loss(pred: Tensor, image: Tensor) -> Tensor:
    """Squared error summed over pixels: pred (..., 64, 64, 3) float in [0, 1] scale (the decoder's
    layout), image (..., 64, 64, 3) uint8 -> (...). One uint8 -> float pass and one fused
    squared-error kernel each way, where sub and pow would each make an intermediate tensor."""
    target = image.float().div_(255.0)  # (..., 64, 64, 3)
    return F.mse_loss(pred, target, reduction="none").sum((-3, -2, -1))


IGNORED_OBS_KEYS = ("is_first", "is_last", "is_terminal")


@dataclass(frozen=True)
class Spec:
    """What a world model reads and writes: image or not, vector size, action vector size."""

    image: bool
    vector_dim: int
    act_dim: int

    @classmethod
    def from_spaces(cls, obs_space: gymnasium.spaces.Dict, act_space: gymnasium.Space) -> Spec:
        if not isinstance(obs_space, gymnasium.spaces.Dict):
            raise ValueError(f"obs_space must be a gymnasium.spaces.Dict with 'image' and/or 'vector', got {obs_space!r}")
        unknown = sorted(set(obs_space.spaces) - set(OBS_KEYS) - set(IGNORED_OBS_KEYS))
        if unknown:
            raise ValueError(f"unknown observation keys {unknown}; a world model reads {OBS_KEYS} (and ignores {IGNORED_OBS_KEYS})")
        image, vector_dim = "image" in obs_space.spaces, 0
        if image and (obs_space["image"].shape != IMAGE_SHAPE or obs_space["image"].dtype != np.uint8):
            raise ValueError(f"obs_space['image'] must be uint8 {IMAGE_SHAPE}, got {obs_space['image']!r}")
        if "vector" in obs_space.spaces:
            shape = obs_space["vector"].shape
            if len(shape) != 1:
                raise ValueError(f"obs_space['vector'] must be 1-D (K,), got shape {shape}")
            vector_dim = int(shape[0])
        if not image and not vector_dim:
            raise ValueError(f"obs_space needs an 'image' or a 'vector' key, got keys {list(obs_space.spaces)}")
        return cls(image, vector_dim, action_dim(act_space))


def action_dim(act_space: gymnasium.Space) -> int:
    """Size of the action vector: one-hot size (Discrete), sum of one-hots (MultiDiscrete), Box dim."""
    if isinstance(act_space, gymnasium.spaces.Discrete):
        return int(act_space.n)
    if isinstance(act_space, gymnasium.spaces.MultiDiscrete):
        return int(np.sum(act_space.nvec))
    if isinstance(act_space, gymnasium.spaces.Box) and len(act_space.shape) == 1:
        return int(act_space.shape[0])
    raise ValueError(f"act_space must be Discrete, MultiDiscrete or a 1-D Box, got {act_space!r}")


@dataclass
class Imagination:
    """An imagined trajectory from N start states over `horizon` steps.

    features: (N, H+1, F), [:, 0] the start's features.
    actions: (N, H+1, A), actions[:, i] taken from features[:, i]; given actions fill [:, :H] and
        [:, H] is zero; a policy samples [:, H] too.
    latents: (N, H+1, Z) the z of each step ([:, 0] the start's).
    prior: Latent with stats (N, H, S): p(z_i | h_i) for steps 1..H.
    state: the State after the last step (for continuing the imagination).
    """

    features: Tensor
    actions: Tensor
    latents: Tensor
    prior: Latent
    state: State


class WorldModel(nn.Module):
    """See the module docstring. Build with `world_models.make`."""

    def __init__(self, backbone: str, spec: Spec, config: WorldModelConfig, width: int):
        super().__init__()
        if config.ssm_state_features and backbone not in ("s4", "s5", "mamba"):
            raise ValueError(f"ssm_state_features applies to the SSM backbones s4, s5, mamba, not {backbone!r}")
        self.backbone_name, self.spec, self.config = backbone, spec, config
        c = config
        self.act_dim, self.z_dim = spec.act_dim, latent_dim(c)
        self.encoder = ObsEncoder(spec.image, spec.vector_dim, c.cnn_depth, c.hidden, c.mlp_layers, c.norm, c.act)
        self.backbone = backbones.make(backbone, self.z_dim + spec.act_dim, width, c)
        self.h_dim = self.backbone.out_dim
        self.posterior_sees_h = backbone == "rssm"  # DreamerV3's RSSM; the others follow S4WM
        self.posterior_net = LatentNet(self.encoder.out_dim + (self.h_dim if self.posterior_sees_h else 0), c)
        self.prior_net = LatentNet(self.h_dim, c)
        self.feat_dim = self.h_dim + self.z_dim
        # reconstruction trains the decoder with everything else; the decoder-free objectives keep it as a
        # probe on detached features (or drop it) and project into the embedding's space: all the features
        # (barlow, R2-Dreamer), or h_t alone, which has not seen o_t and so predicts it (next_embed, NE-Dreamer)
        self.decoder = (
            ObsDecoder(self.feat_dim, spec.image, spec.vector_dim, c.cnn_depth, c.hidden, c.mlp_layers, c.norm, c.act)
            if c.objective == "reconstruction" or c.probe
            else None
        )
        projected = {"barlow": self.feat_dim, "next_embed": self.h_dim}.get(c.objective)
        self.projector = nn.Linear(projected, self.encoder.out_dim, bias=False) if projected else None
        if c.reward_input == "action":  # one output per action component and a base (config.reward_input)
            self.reward_head = MLP(self.feat_dim + self.act_dim, (self.act_dim + 1) * c.reward_bins, c.hidden, c.mlp_layers, c.norm, c.act)
        else:
            self.reward_head = MLP(self.feat_dim, c.reward_bins, c.hidden, c.mlp_layers, c.norm, c.act)
        self.cont_head = MLP(self.feat_dim, 1, c.hidden, c.mlp_layers, c.norm, c.act)
        out = self.reward_head.net[-1]
        if not out.weight.is_meta:  # see WorldModelConfig.reward_head_init
            nn.init.zeros_(out.bias)
            if c.reward_head_init == "zeros":
                nn.init.zeros_(out.weight)
        if c.feature_norm:  # running statistics of the features (config.feature_norm); only then in the state dict
            self.register_buffer("feat_mean", torch.zeros(self.feat_dim))
            self.register_buffer("feat_var", torch.ones(self.feat_dim))
            self.register_buffer("feat_updates", torch.zeros((), dtype=torch.long))
        # running means of the reconstruction terms (config.obs_norm); 0 = not seen yet
        self.register_buffer("obs_norm_image", torch.zeros(()))
        self.register_buffer("obs_norm_vector", torch.zeros(()))

    # ----------------------------------------------------------------------------------- basics
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        device = self.device if device is None else device
        return State(
            torch.zeros(batch_size, self.h_dim, device=device),
            torch.zeros(batch_size, self.z_dim, device=device),
            torch.zeros(batch_size, self.act_dim, device=device),
            self.backbone.initial_state(batch_size, device),
        )

    def features(self, h: Tensor, z: Tensor) -> Tensor:
        """h (..., H), z (..., Z) -> the features (..., F) every head, the decoder and the policy read: (h, z),
        standardised per dimension by the running statistics when config.feature_norm."""
        feat = torch.cat([h, z], -1)
        if not self.config.feature_norm:
            return feat
        return (feat - self.feat_mean) / torch.sqrt(self.feat_var + FEATURE_NORM_EPS)

    @torch.no_grad()
    def _update_feature_stats(self, raw: Tensor) -> None:
        """Fold a training batch's un-standardised features (B, L, F) into the running mean and variance: the average of the
        batches so far until there are 1 / (1 - decay) of them, an EMA from then on (so the first batch
        replaces the initial 0 and 1 outright: an EMA from them would take thousands of updates to forget
        a variance of 1 where the true one is 1e-6)."""
        flat = raw.detach().float().flatten(0, -2)  # (N, F)
        self.feat_updates.add_(1)
        w = (1.0 / self.feat_updates).clamp(min=1.0 - self.config.feature_norm_decay)  # a tensor: no sync on a GPU
        self.feat_mean.lerp_(flat.mean(0), w)
        self.feat_var.lerp_(flat.var(0, unbiased=False), w)

    @staticmethod
    def _pick(dist: Latent, sample: bool, generator: torch.Generator | None) -> Tensor:
        return dist.sample(generator) if sample else dist.mode()

    # --------------------------------------------------------------------------------- observing
    def observe(
        self,
        obs: dict[str, Tensor],
        action: Tensor,
        is_first: Tensor,
        state: State | None = None,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[Latent, Latent, Tensor, State]:
        """Posterior and prior over a sequence.

        obs: image (B, L, 64, 64, 3) uint8 and/or vector (B, L, K) float; action (B, L, A);
        is_first (B, L) bool (resets the backbone, previous latent and previous action).
        Returns (posterior, prior) with stats (B, L, S), features (B, L, F), the state after step L-1.
        sample=False takes the modes instead of samples (deterministic).
        """
        post, prior, feat, state, _, _ = self._observe(obs, action, is_first, state, sample, generator, all_states=False)
        return post, prior, feat, state

    def _observe(self, obs, action, is_first, state, sample, generator, all_states):
        B, L = check_sequence(action, self.act_dim)
        check_action(action, self.act_dim, (B, L), "observe")
        check_obs(obs, self.spec.image, self.spec.vector_dim, (B, L), "observe")
        is_first = check_flags(is_first, (B, L), "is_first", "observe")
        state = self.initial_state(B, action.device) if state is None else state
        check_state(state, B, self.h_dim, self.z_dim, "observe")
        embed = self.encoder(obs)  # (B, L, E)
        keep = ~is_first[..., None]  # (B, L, 1)
        a_prev = torch.where(keep, torch.cat([state.action[:, None], action[:, :-1]], 1), 0.0)  # (B, L, A)

        if not self.posterior_sees_h:
            post = self.posterior_net(embed)
            z = self._pick(post, sample, generator)  # (B, L, Z)
            z_prev = torch.where(keep, torch.cat([state.z[:, None], z[:, :-1]], 1), 0.0)
            h, mem = self.backbone(torch.cat([z_prev, a_prev], -1), is_first, state.mem, all_states=all_states)
        else:  # RSSM: z_t depends on h_t, so the sequence runs step by step
            mem, z_t, hs, zs, stats = state.mem, state.z, [], [], []
            for t in range(L):
                z_prev = torch.where(keep[:, t], z_t, 0.0)
                h_t, mem = self.backbone.step(torch.cat([z_prev, a_prev[:, t]], -1), is_first[:, t], mem)
                post_t = self.posterior_net(torch.cat([h_t, embed[:, t]], -1))
                z_t = self._pick(post_t, sample, generator)
                hs.append(h_t)
                zs.append(z_t)
                stats.append(post_t.stats)
            h, z, post = torch.stack(hs, 1), torch.stack(zs, 1), Latent(torch.stack(stats, 1), self.config)
            if all_states:
                mem = {"h": h}
        prior = self.prior_net(h)
        feat = self.features(h, z)  # (B, L, F)
        if all_states:
            starts = State(h.flatten(0, 1), z.flatten(0, 1), action.flatten(0, 1), {k: v.flatten(0, 1) for k, v in mem.items()})
            last = starts[torch.arange(B, device=h.device) * L + L - 1]
        else:
            starts, last = None, State(h[:, -1], z[:, -1], action[:, -1], mem)
        return post, prior, feat, last, starts, embed

    def step(
        self,
        state: State,
        prev_action: Tensor,
        obs: dict[str, Tensor],
        is_first: Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[State, Tensor]:
        """One env step for acting: state after the previous step, prev_action (B, A) taken since, obs of
        (B, ...), is_first (B,) resets those rows. Returns (state, features (B, F))."""
        B = prev_action.shape[0] if prev_action.dim() else 0
        check_action(prev_action, self.act_dim, (B,), "step")
        check_obs(obs, self.spec.image, self.spec.vector_dim, (B,), "step")
        is_first = check_flags(is_first, (B,), "is_first", "step")
        check_state(state, B, self.h_dim, self.z_dim, "step")
        keep = ~is_first[:, None]
        x = torch.cat([torch.where(keep, state.z, 0.0), torch.where(keep, prev_action, 0.0)], -1)
        h, mem = self.backbone.step(x, is_first, state.mem)  # (B, H)
        embed = self.encoder(obs)  # (B, E)
        post = self.posterior_net(torch.cat([h, embed], -1) if self.posterior_sees_h else embed)
        z = self._pick(post, sample, generator)
        return State(h, z, torch.zeros_like(prev_action), mem), self.features(h, z)

    # -------------------------------------------------------------------------------- imagining
    def img_step(
        self, state: State, action: Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[State, Tensor, Latent]:
        """One imagined step from `state` taking `action` (N, A): (state, features (N, F), prior)."""
        x = torch.cat([state.z, action], -1)
        h, mem = self.backbone.step(x, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device), state.mem)
        prior = self.prior_net(h)
        z = self._pick(prior, sample, generator)  # straight-through: dynamics gradients flow
        return State(h, z, torch.zeros_like(action), mem), self.features(h, z), prior

    def imagine(
        self,
        start: State,
        policy: Callable[[Tensor], Tensor] | Tensor,
        horizon: int,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> Imagination:
        """Roll the prior forward `horizon` steps from `start` (N states) in recurrent mode.

        policy: a function features (N, F) -> actions (N, A), or actions (N, horizon, A) for
        open-loop prediction. See `Imagination` for what comes back.
        """
        N = start.batch_size
        check_state(start, N, self.h_dim, self.z_dim, "imagine")
        given = check_policy(policy, self.act_dim, N, horizon)
        feats, acts, zs, priors = [self.features(start.h, start.z)], [], [start.z], []
        state = start
        for i in range(horizon):
            action = policy[:, i] if given else policy(feats[-1])
            state, feat, prior = self.img_step(state, action, sample, generator)
            acts.append(action)
            feats.append(feat)
            zs.append(state.z)
            priors.append(prior.stats)
        acts.append(torch.zeros(N, self.act_dim, device=start.h.device) if given else policy(feats[-1]))
        prior_stats = torch.stack(priors, 1) if priors else start.h.new_zeros(N, 0, self.prior_net.net.out_dim)
        return Imagination(torch.stack(feats, 1), torch.stack(acts, 1), torch.stack(zs, 1), Latent(prior_stats, self.config), state)

    # ------------------------------------------------------------------------------ predictions
    @property
    def can_decode(self) -> bool:
        """False for a decoder-free objective trained without its probe: `decode` then raises."""
        return self.decoder is not None

    def probe_parameters(self) -> list[nn.Parameter]:
        """The probe decoder's parameters (none under reconstruction, where the decoder is part of the
        model): their gradient touches nothing else, so they can be clipped apart from the model's."""
        return list(self.decoder.parameters()) if self.config.objective != "reconstruction" and self.can_decode else []

    def decode(self, features: Tensor) -> dict[str, Tensor]:
        """features (..., F) -> `image` (..., 64, 64, 3) float mean in [0, 1] (x255 for uint8 scale)
        and/or `vector` (..., K) in the observation's own scale (un-symlogged)."""
        if self.decoder is None:
            raise ValueError(
                f"this world model has no decoder (objective {self.config.objective!r} with probe off); "
                f"train it with probe on to decode features"
            )
        out = self.decoder(features)
        if "image" in out:
            out["image"] = out["image"].clamp(0, 1)
        if "vector" in out:
            out["vector"] = symexp(out["vector"])
        return out

    def reward_dist(self, features: Tensor, actions: Tensor) -> TwoHotSymlog:
        """The rewards that arrive with the steps of a sequence, as distributions.

        features (..., T, F) and actions (..., T, A) of consecutive steps, actions[..., t] taken after step t
        (the replay's and `Imagination`'s convention). config.reward_input "next": over all T steps, the
        reward of step t from features[..., t]; "action": over steps 1..T-1, the reward of step t from
        features[..., t-1] and actions[..., t-1] (step 0's came from a step before the sequence)."""
        if self.config.reward_input == "next":
            return TwoHotSymlog(self.reward_head(features))
        before, taken = features[..., :-1, :], actions[..., :-1, :].to(features.dtype)
        out = self.reward_head(torch.cat([before, taken], -1))  # (..., T-1, (A+1) * bins)
        out = out.unflatten(-1, (self.act_dim + 1, self.config.reward_bins))
        return TwoHotSymlog(out[..., 0, :] + (taken[..., None] * out[..., 1:, :]).sum(-2))

    def reward(self, features: Tensor, actions: Tensor) -> Tensor:
        """features (..., T, F), actions (..., T, A) (see reward_dist) -> the predicted reward that arrives with
        each step (..., T), the two-hot symlog mean; with reward_input "action", 0 at step 0 (not predicted)."""
        pred = self.reward_dist(features, actions).mean
        if self.config.reward_input == "next":
            return pred
        return torch.cat([torch.zeros_like(pred[..., :1]), pred], -1)

    def cont_dist(self, features: Tensor) -> Bernoulli:
        return Bernoulli(self.cont_head(features).squeeze(-1))

    def cont(self, features: Tensor) -> Tensor:
        """features (..., F) -> probability that the episode continues (...)."""
        return self.cont_dist(features).mean

    # ------------------------------------------------------------------------------------ loss
    def _representation_terms(
        self, obs: dict[str, Tensor], feat: Tensor, embed: Tensor, is_first: Tensor
    ) -> dict[str, tuple[float, Tensor]]:
        """The loss terms {name: (scale, value)} that teach the features (B, L, F) to describe the
        observation, whose embedding is (B, L, E): reconstruction, or Barlow Twins plus the probe."""
        c = self.config
        if c.objective == "reconstruction":
            return self._reconstruction_terms(obs, feat, "")
        target = embed.detach()  # a target only: the encoder learns through the posterior
        if c.objective == "barlow":
            pred, target = self.projector(feat).flatten(0, 1), target.flatten(0, 1)  # (B*L, E)
        else:  # next_embed: an episode's first h_t has seen nothing to predict from
            keep = ~is_first  # (B, L)
            pred, target = self.projector(feat[..., : self.h_dim][keep]), target[keep]  # (M, E)
        terms = {c.objective: (c.barlow_scale, barlow_twins(pred, target, c.barlow_lambda))}
        if self.decoder is not None:  # the probe: its gradient stops at the features, so it only trains itself
            stride = c.probe_stride
            probe_obs = {k: v[:, ::stride] for k, v in obs.items()}
            terms.update(self._reconstruction_terms(probe_obs, feat[:, ::stride].detach(), "probe_"))
        return terms

    def _reconstruction_terms(self, obs: dict[str, Tensor], feat: Tensor, prefix: str) -> dict[str, tuple[float, Tensor]]:
        """Decoder losses of features (B, L, F) against the observations of the same steps."""
        c, terms = self.config, {}
        pred = self.decoder(feat)
        if self.spec.image:
            terms[prefix + "image"] = (c.image_scale, image_loss(pred["image"], obs["image"]).mean())
        if self.spec.vector_dim:
            terms[prefix + "vector"] = (c.vector_scale, (pred["vector"] - symlog(obs["vector"].float())).pow(2).sum(-1).mean())
        return terms

    def loss(
        self,
        batch: dict[str, Tensor],
        state: State | None = None,
        return_starts: bool = False,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ):
        """DreamerV3's world-model loss on a batch of (B, L, ...) sequences.

        batch: observation keys, `action` (B, L, A), `reward` (B, L), `is_first`, `is_terminal` (B, L), and
        optionally `context/...` (B, ...), the state each window starts from (`State.to_arrays`, DreamerV3's
        replay context), read when `state` is None; is_first[:, 0] resets the rows that begin an episode.
        Returns (loss, metrics) or, with return_starts, (loss, metrics, starts): a detached State
        batched over B*L (b-major), the state right after observing each step.
        """
        keys = obs_keys(self.spec.image, self.spec.vector_dim)
        lead = check_batch(batch, keys)
        action, reward = batch["action"], batch["reward"]
        is_terminal = check_flags(batch["is_terminal"], lead, "is_terminal", "loss")
        obs = {k: batch[k] for k in keys}
        if state is None and "context/h" in batch:
            state = State.from_arrays(batch, "context/")
        post, prior, feat, _, starts, embed = self._observe(obs, action, batch["is_first"], state, sample, generator, return_starts)
        if self.config.feature_norm and self.training and torch.is_grad_enabled():  # the batch's (h, z), un-standardised
            self._update_feature_stats(feat.detach() * torch.sqrt(self.feat_var + FEATURE_NORM_EPS) + self.feat_mean)

        c = self.config
        is_first = check_flags(batch["is_first"], lead, "is_first", "loss")
        terms = self._representation_terms(obs, feat, embed, is_first)
        if c.reward_input == "next":
            terms["reward"] = (c.reward_scale, -self.reward_dist(feat, action).log_prob(reward.float()).mean())
        else:  # steps 1..L-1, except where a new episode starts: no step before it caused its reward
            caused = ~is_first[:, 1:]  # (B, L-1)
            nll = -self.reward_dist(feat, action).log_prob(reward[:, 1:].float())  # (B, L-1)
            terms["reward"] = (c.reward_scale, (nll * caused).sum() / caused.sum().clamp(min=1))
        terms["cont"] = (c.cont_scale, -self.cont_dist(feat).log_prob(1.0 - is_terminal.float()).mean())
        dyn, rep, kl = kl_losses(post, prior, c.free_bits)
        terms["dyn"], terms["rep"] = (c.dyn_scale, dyn.mean()), (c.rep_scale, rep.mean())
        if c.obs_norm:
            for name in ("image", "vector"):
                if name in terms:
                    scale, value = terms[name]
                    terms[name] = (scale / self._obs_norm(name, value).item(), value)

        total = feat.new_zeros(())
        for name, (scale, value) in terms.items():
            if not torch.isfinite(value):
                raise FloatingPointError(f"world-model loss term loss/{name} is not finite: {value.item()}")
            total = total + scale * value
        metrics: dict[str, float] = {f"loss/{name}": value.item() for name, (_, value) in terms.items()}
        with torch.no_grad():
            metrics.update(
                {
                    "loss": total.item(),
                    "kl": kl.mean().item(),
                    "prior_entropy": prior.entropy().mean().item(),
                    "post_entropy": post.entropy().mean().item(),
                }
            )
        if return_starts:
            return total, metrics, starts.detach()
        return total, metrics

    def _obs_norm(self, name: str, value: Tensor) -> Tensor:
        """The divisor of reconstruction term `name`: max(1, running mean of its value), updated in training."""
        mean = getattr(self, f"obs_norm_{name}")
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                v = value.detach().float()
                mean.copy_(torch.where(mean > 0, self.config.obs_norm_decay * mean + (1 - self.config.obs_norm_decay) * v, v))
        return mean.clamp(min=1.0)


# ------------------------------------------------------------------------------- construction
def make(
    backbone: str,
    obs_space: gymnasium.spaces.Dict,
    act_space: gymnasium.Space,
    config: WorldModelConfig | None = None,
    device: torch.device | str | None = None,
) -> WorldModel:
    """A world model with the named backbone (one of BACKBONES) for these spaces.

    config.width = 0 sizes the non-RSSM backbones so that the whole model has about as many
    parameters as the RSSM model at the same config (`fit_width`)."""
    if backbone not in backbones.BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(backbones.BACKBONES)}")
    config = WorldModelConfig() if config is None else config
    if not isinstance(config, WorldModelConfig):
        raise ValueError(f"config must be a WorldModelConfig, got {type(config).__name__}")
    spec = Spec.from_spaces(obs_space, act_space)
    width = fit_width(backbone, spec, config)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return WorldModel(backbone, spec, config, width)


def count_params(
    backbone: str, obs_space: gymnasium.spaces.Dict, act_space: gymnasium.Space, config: WorldModelConfig | None = None
) -> int:
    """Parameters of `make(backbone, ...)` without allocating them (built on the meta device)."""
    return make(backbone, obs_space, act_space, config, device="meta").num_params()


@functools.cache
def fit_width(backbone: str, spec: Spec, config: WorldModelConfig) -> int:
    """The backbone width: config.deter for the RSSM; config.width if set; else the width (a multiple
    of 8, and of the heads for the Transformer) whose model parameter count is closest to the RSSM's."""
    if backbone == "rssm":
        return config.deter
    if config.width:
        return config.width
    target = _count("rssm", spec, config.replace(ssm_state_features=False), config.deter)
    step = int(np.lcm(8, config.heads)) if backbone == "transformer" else 8
    lo, hi = 1, 2
    while _count(backbone, spec, config, hi * step) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # the count grows with the width: bisect for the last width below the target
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _count(backbone, spec, config, mid * step) < target else (lo, mid)
    return min((lo * step, hi * step), key=lambda w: abs(_count(backbone, spec, config, w) - target))


@functools.cache
def _count(backbone: str, spec: Spec, config: WorldModelConfig, width: int) -> int:
    with torch.device("meta"):
        return WorldModel(backbone, spec, config, width).num_params()
