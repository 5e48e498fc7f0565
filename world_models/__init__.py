"""memwm world models: encoders, decoders, heads, latents, the sequence backbones and the WorldModel interface.

model = world_models.make("s5", obs_space, act_space, WorldModelConfig.preset("small"))
loss, metrics, starts = model.loss(batch, return_starts=True)
traj = model.imagine(starts, policy, horizon=15)
"""

from world_models.backbones import BACKBONES, Backbone
from world_models.config import PRESETS, WorldModelConfig
from world_models.distributions import Bernoulli, Normal, OneHotCategorical, TwoHotSymlog, symexp, symlog
from world_models.latents import Latent
from world_models.model import Imagination, Spec, WorldModel, action_dim, count_params, fit_width, make
from world_models.state import State

__all__ = [
    "BACKBONES",
    "Backbone",
    "PRESETS",
    "WorldModelConfig",
    "Bernoulli",
    "Normal",
    "OneHotCategorical",
    "TwoHotSymlog",
    "symexp",
    "symlog",
    "Latent",
    "Imagination",
    "Spec",
    "WorldModel",
    "action_dim",
    "count_params",
    "fit_width",
    "make",
    "State",
]
