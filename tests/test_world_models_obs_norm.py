"""obs_norm: each reconstruction term divided by max(1, a running mean of its own value), updated in training only."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import world_models as wm

OBS = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), "vector": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)})
ACT = gym.spaces.Discrete(3)


def _batch(B=3, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randint(0, 256, (B, L, 64, 64, 3), generator=g, dtype=torch.uint8),
        "vector": torch.randn(B, L, 4, generator=g) * 30,  # large enough that the vector term exceeds 1
        "action": torch.eye(3)[torch.randint(0, 3, (B, L), generator=g)],
        "reward": torch.randn(B, L, generator=g),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
    }


def _total_from_terms(metrics, config, image_div, vector_div):
    """The world-model loss written out from its logged terms and the divisors of the reconstruction terms."""
    return (
        config.image_scale * metrics["loss/image"] / image_div
        + config.vector_scale * metrics["loss/vector"] / vector_div
        + config.reward_scale * metrics["loss/reward"]
        + config.cont_scale * metrics["loss/cont"]
        + config.dyn_scale * metrics["loss/dyn"]
        + config.rep_scale * metrics["loss/rep"]
    )


def test_reconstruction_terms_are_divided_by_their_running_mean_and_small_terms_are_not_scaled_up():
    torch.manual_seed(0)
    config = wm.WorldModelConfig.preset("tiny", obs_norm=True, obs_norm_decay=0.9)
    model = wm.make("s5", OBS, ACT, config)
    batches = [_batch(seed=s) for s in range(4)]
    ema = {"image": None, "vector": None}
    for batch in batches:
        loss, metrics = model.loss(batch, generator=torch.Generator().manual_seed(1))
        for name in ema:  # the reference running mean, starting at the first value
            v = metrics[f"loss/{name}"]
            ema[name] = v if ema[name] is None else 0.9 * ema[name] + 0.1 * v
        expected = _total_from_terms(metrics, config, max(1.0, ema["image"]), max(1.0, ema["vector"]))
        assert abs(loss.item() - expected) < 1e-3 * max(1.0, abs(expected))
    assert abs(model.obs_norm_image.item() - ema["image"]) < 1e-3 * ema["image"]
    assert ema["image"] > 1.0  # an image term over random pixels is far above 1: it was divided

    # a term whose running mean is below 1 keeps its weight
    small = wm.make("s5", OBS, ACT, config)
    small.obs_norm_vector.fill_(0.25)
    small.obs_norm_image.fill_(50.0)
    with torch.no_grad():  # no update outside training: the divisors stay as set
        loss, metrics = small.loss(batches[0], generator=torch.Generator().manual_seed(1))
    assert small.obs_norm_vector.item() == 0.25 and small.obs_norm_image.item() == 50.0
    assert abs(loss.item() - _total_from_terms(metrics, config, 50.0, 1.0)) < 1e-3 * abs(loss.item())


def test_without_obs_norm_the_loss_is_the_plain_weighted_sum():
    config = wm.WorldModelConfig.preset("tiny")
    model = wm.make("rssm", OBS, ACT, config)
    loss, metrics = model.loss(_batch(), generator=torch.Generator().manual_seed(1))
    assert abs(loss.item() - _total_from_terms(metrics, config, 1.0, 1.0)) < 1e-3 * abs(loss.item())
    assert model.obs_norm_image.item() == 0.0  # untouched


def test_the_running_means_are_saved_with_the_model():
    config = wm.WorldModelConfig.preset("tiny", obs_norm=True)
    model = wm.make("s5", OBS, ACT, config)
    model.loss(_batch())
    other = wm.make("s5", OBS, ACT, config)
    other.load_state_dict(model.state_dict())
    assert other.obs_norm_image.item() == model.obs_norm_image.item() > 0
