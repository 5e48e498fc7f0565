"""One typed config for every world model: named size presets plus overrides (tyro-friendly)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

Objective = Literal["reconstruction", "barlow", "next_embed"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)


@dataclass(frozen=True)
class WorldModelConfig:
    """Sizes and loss settings of a world model. `preset(name, **overrides)` gives the named sizes.

    `deter` is the width of the RSSM's GRU. The other backbones get a `width` (0 = automatic)
    chosen so that the whole world model has as many parameters as the RSSM one at the same
    config, which keeps backbone comparisons fair.
    """

    # sizes
    deter: int = 256  # RSSM recurrent state size; the parameter budget of every backbone
    width: int = 0  # model width of the non-RSSM backbones; 0 = fit to the RSSM's parameter count
    hidden: int = 256  # units of the MLPs (encoder, heads, latent nets)
    mlp_layers: int = 2  # hidden layers of each MLP
    layers: int = 2  # blocks of the transformer and SSM backbones
    cnn_depth: int = 16  # channels of the first conv layer (x2 per layer, 4 layers)
    norm: Literal["layer", "rms", "none"] = "layer"
    act: Literal["silu", "gelu", "elu", "relu"] = "silu"

    # latents
    latent: Literal["categorical", "gaussian"] = "categorical"
    stoch: int = 32  # categorical variables (or Gaussian dimensions)
    classes: int = 16  # classes per categorical variable
    unimix: float = 0.01  # uniform mixture of categorical latents (DreamerV3: 1%)
    min_std: float = 0.1  # Gaussian latents: lower bound of the standard deviation

    # backbones
    heads: int = 4  # transformer attention heads
    context: int = 1024  # transformer attention window (tokens, the current one included)
    ssm_state: int = 32  # S5: complex states per SSM layer (shared by all channels)
    s4_state: int = 8  # S4: complex states per channel (the scan holds width * s4_state)
    s4_init: Literal["lin", "inv"] = "lin"  # S4D-Lin or S4D-Inv initialisation of A
    s5_init: Literal["gaussian", "s5"] = "gaussian"  # S5's B and C: complex normal, or the paper's (V^-1 B, C V, lecun)
    # How an S5 state takes its input. "zoh": zero-order hold, B_bar = (Lambda_bar - 1) / Lambda B, about dt B for
    # a small step: a state with a long timescale holds i.i.d. inputs at a scale of about sqrt(dt), so what it
    # remembers of a symbol is a small direction beside the current input. "unit_variance": B_bar = sqrt(1 -
    # |Lambda_bar|^2) B (the LRU's normalisation, Orvieto et al. 2023), so that every state holds i.i.d. inputs
    # at their own variance, whatever its timescale.
    s5_input: Literal["zoh", "unit_variance"] = "zoh"
    # Standardise the features (h_t, z_t) per dimension by running statistics of the training batches before
    # the heads, the decoder, the actor and the critic read them. What a backbone remembers of an unpredictable
    # symbol can lie in directions whose spread is a thousandth of the others': a head reads them only
    # slowly, since a weight's effect scales with its input's spread (see benchmarks/reward_link.py).
    feature_norm: bool = False
    feature_norm_decay: float = 0.99  # EMA decay of the running mean and variance
    mamba_state: int = 8  # selective SSM: states per channel
    mamba_expand: int = 2  # selective SSM: inner width = expand * width
    dt_min: float = 1e-3  # SSM step sizes are initialised log-uniform in [dt_min, dt_max]
    dt_max: float = 1e-1
    ssm_state_features: bool = False  # SSMs: append the SSM states (real, imaginary) to the features (R2I)
    scan_backend: str = "auto"  # kernels.scan backend used in training

    # heads and losses (DreamerV3)
    reward_bins: int = 255  # two-hot symlog bins over [-20, 20]
    # The reward head's output layer: "zeros" (DreamerV3: every reward predicts 0 at first) or "torch"
    # (PyTorch's default Linear init, bias zero). A zero output layer passes no gradient to the layer
    # below it until its own weights have grown, so a reward that is a product of two inputs (the action
    # and a remembered symbol) waits on a plateau; random output weights train the hidden layer at once.
    reward_head_init: Literal["zeros", "torch"] = "zeros"
    # What the reward head reads to predict the reward r_{t+1} that arrives with step t+1. "next" (DreamerV3,
    # S4WM): the features after the step, (h_{t+1}, z_{t+1}), where the action a_t is one more input the
    # backbone has mixed into h. "action": the features before it and the action, (h_t, z_t, a_t), the head
    # giving one reward per action component (logits = base + sum_j a_j head_j; for a one-hot action the
    # taken action's own output), as TD-MPC's and MuZero's reward models do. A reward that is a product
    # of the action and a remembered symbol is then linear in the features for each action, instead of a
    # product the head must find inside h (see benchmarks/reward_link.py).
    reward_input: Literal["next", "action"] = "next"
    free_bits: float = 1.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    image_scale: float = 1.0
    vector_scale: float = 1.0
    reward_scale: float = 1.0
    cont_scale: float = 1.0
    # Reconstruction terms are sums over every observed element (12,288 for an image), so their size
    # depends on the task (how much of the frame is unpredictable) and can drown the one-number reward
    # and continue terms. With obs_norm each reconstruction term is divided by a slow running mean of
    # its own value whenever that mean exceeds 1: a term then weighs about as much as a scalar head's,
    # on every task, and a small term is never scaled up.
    obs_norm: bool = False
    obs_norm_decay: float = 0.99  # EMA decay of the running means

    # representation objective: what makes the features describe the observation
    objective: Objective = "reconstruction"  # decode the observation (DreamerV3); or no decoder in the gradient:
    #   "barlow", Barlow Twins between the projected features and the encoder embedding (R2-Dreamer), or
    #   "next_embed", the same between the projected h_t, made before o_t is seen, and o_t's embedding (NE-Dreamer)
    barlow_scale: float = 0.05  # weight of the Barlow Twins term in the world-model loss (R2-Dreamer's)
    barlow_lambda: float = 5e-4  # weight of the off-diagonal (redundancy) sum against the diagonal one
    probe: bool = True  # decoder-free: train a decoder on detached features, for imagination videos
    probe_stride: int = 8  # the probe decodes every probe_stride-th step: it only draws videos

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown world-model objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        if self.probe_stride < 1:
            raise ValueError(f"probe_stride must be >= 1, got {self.probe_stride}")

    @classmethod
    def preset(cls, name: str, **overrides) -> WorldModelConfig:
        """The named sizes `tiny` (tests), `small` (a laptop CPU), `medium`, `large` (GPU), then overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown world-model preset {name!r}; known: {', '.join(PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown WorldModelConfig fields {unknown}; known: {', '.join(sorted(fields))}")
        return dataclasses.replace(cls(**PRESETS[name]), **overrides)

    def replace(self, **changes) -> WorldModelConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, dict] = {
    "tiny": dict(
        deter=64,
        hidden=64,
        mlp_layers=1,
        layers=2,
        cnn_depth=8,
        stoch=8,
        classes=8,
        heads=2,
        context=512,  # at least the longest replay window (agents' MAX_WINDOW): attention spans any window a task trains on
        ssm_state=16,
        s4_state=4,
        mamba_state=8,
    ),
    "small": dict(
        deter=256,
        hidden=256,
        mlp_layers=2,
        layers=2,
        cnn_depth=16,
        stoch=32,
        classes=16,
        heads=4,
        context=1024,
        ssm_state=32,
        s4_state=8,
        mamba_state=8,
    ),
    "medium": dict(
        deter=1024,
        hidden=512,
        mlp_layers=2,
        layers=3,
        cnn_depth=32,
        stoch=32,
        classes=32,
        heads=8,
        context=1024,
        ssm_state=64,
        s4_state=16,
        mamba_state=16,
    ),
    "large": dict(
        deter=2048,
        hidden=768,
        mlp_layers=3,
        layers=4,
        cnn_depth=48,
        stoch=32,
        classes=32,
        heads=8,
        context=2048,
        ssm_state=128,
        s4_state=32,
        mamba_state=16,
    ),
}
