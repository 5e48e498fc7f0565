"""The world-model contract, for every backbone (float32, random inputs, random weights).

Each test compares two ways of computing the same thing: a batch holding several episodes per row
against each episode alone, the sequence at once against one step at a time or two chunks, the
recurrent imagination against recomputing the whole token sequence from scratch.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import world_models as wm
from world_models.state import State

ATOL = 2e-4
VEC, ACTS = 5, 3
OBS = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (VEC,), np.float32)})
OBS_IMAGE = gym.spaces.Dict(
    {"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), "vector": gym.spaces.Box(-np.inf, np.inf, (VEC,), np.float32)}
)
ACT = gym.spaces.Discrete(ACTS)
TINY = wm.WorldModelConfig.preset("tiny")


def model(backbone: str, config: wm.WorldModelConfig = TINY, obs_space=OBS, act_space=ACT) -> wm.WorldModel:
    torch.manual_seed(0)
    m = wm.make(backbone, obs_space, act_space, config)
    with torch.no_grad():  # random weights everywhere, so that every part matters
        for p in m.parameters():
            if p.dim() >= 2 and not torch.count_nonzero(p):
                p.normal_(0, 0.1)
    return m.eval()


def sequence(B: int, L: int, is_first: list[list[int]] | None = None, image: bool = False) -> dict[str, torch.Tensor]:
    """Random observations and one-hot actions; is_first[b] lists the steps where row b starts an episode."""
    batch = {
        "vector": 2 * torch.randn(B, L, VEC),
        "action": F.one_hot(torch.randint(0, ACTS, (B, L)), ACTS).float(),
        "reward": torch.randn(B, L),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
    }
    if image:
        batch["image"] = torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8)
    for b, starts in enumerate(is_first or []):
        batch["is_first"][b, starts] = True
    return batch


def obs_of(batch, index=slice(None)):
    return {k: batch[k][index] for k in ("vector", "image") if k in batch}


def observe(m, batch, state=None, sample=False):
    return m.observe(obs_of(batch), batch["action"], batch["is_first"], state, sample=sample)


def close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def close_states(a: State, b: State, atol=ATOL):
    close(a.h, b.h, atol)
    close(a.z, b.z, atol)
    assert a.mem.keys() == b.mem.keys()
    for k in a.mem:
        close(a.mem[k], b.mem[k], atol)


@pytest.fixture(params=wm.BACKBONES)
def backbone(request):
    return request.param


# ------------------------------------------------------------------------------------ contract
@torch.no_grad()
def test_observe_with_resets_equals_separate_episodes(backbone):
    m = model(backbone)
    L = 12
    starts = [[0, 4, 5, 9], [7], [0], [0, 1, 2, 11]]  # row 1 continues the carried state until t=7
    batch = sequence(len(starts), L, starts)
    _, _, _, carried = observe(m, sequence(len(starts), 6))  # a non-trivial state to start from
    post, prior, feat, _ = observe(m, batch, carried)
    for b, row in enumerate(starts):
        bounds = sorted(set([0] + row + [L]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            alone = {k: v[b : b + 1, lo:hi] for k, v in batch.items()}
            state = carried[torch.tensor([b])] if lo == 0 and 0 not in row else None
            p_post, p_prior, p_feat, _ = observe(m, alone, state)
            close(feat[b : b + 1, lo:hi], p_feat)
            close(prior.stats[b : b + 1, lo:hi], p_prior.stats)
            close(post.stats[b : b + 1, lo:hi], p_post.stats)


@pytest.mark.parametrize("features", [False, True], ids=["h_z", "ssm_states"])
@torch.no_grad()
def test_observe_equals_step_per_step(backbone, features):
    if features and backbone in ("rssm", "transformer"):
        pytest.skip("SSM state features are an SSM option")
    m = model(backbone, TINY.replace(ssm_state_features=features))
    batch = sequence(3, 9, [[0, 3, 4], [5], [0, 8]])
    _, _, feat, last = observe(m, batch)
    state = m.initial_state(3)
    for t in range(9):
        prev = batch["action"][:, t - 1] if t else torch.zeros(3, ACTS)
        state, f = m.step(state, prev, obs_of(batch, (slice(None), t)), batch["is_first"][:, t], sample=False)
        close(f, feat[:, t])
    close_states(state, last)
    if features:
        assert m.feat_dim > m.backbone.width + m.z_dim  # the states are really in the features


@torch.no_grad()
def test_two_chunks_carrying_state_equal_one_sequence(backbone):
    config = TINY.replace(context=5) if backbone == "transformer" else TINY  # window shorter than a chunk
    m = model(backbone, config)
    batch = sequence(3, 14, [[0, 6], [7, 8], [3, 13]])  # resets in either chunk and right at the cut
    post, prior, feat, last = observe(m, batch)
    _, _, f1, s1 = observe(m, {k: v[:, :7] for k, v in batch.items()})
    _, _, f2, s2 = observe(m, {k: v[:, 7:] for k, v in batch.items()}, s1)
    close(torch.cat([f1, f2], 1), feat)
    close_states(s2, last)


@torch.no_grad()
def test_imagine_equals_recomputing_the_whole_sequence_from_scratch(backbone):
    """Recurrent imagination (ssm_step, the KV cache, the GRU) against the backbone run in parallel
    over the context tokens followed by the imagined tokens, from an empty state."""
    m = model(backbone)
    N, T, H = 2, 7, 6
    batch = sequence(N, T, [[0], [0]])
    _, _, feat, start = observe(m, batch)
    actions = F.one_hot(torch.randint(0, ACTS, (N, H)), ACTS).float()
    gen = torch.Generator().manual_seed(1)
    traj = m.imagine(start, actions, H, sample=True, generator=gen)
    assert traj.features.shape == (N, H + 1, m.feat_dim) and traj.actions.shape == (N, H + 1, ACTS)
    close(traj.actions[:, :H], actions)
    assert not traj.actions[:, H].any()
    close(traj.features[:, 0], feat[:, -1])

    z_obs = feat[..., m.h_dim :]  # (N, T, Z)
    z_all = torch.cat([z_obs, traj.latents[:, 1:]], 1)  # (N, T + H, Z)
    a_all = torch.cat([batch["action"][:, :-1], actions], 1)  # imagination replaces the last observed action
    x = torch.cat([z_all[:, :-1], a_all], -1)
    x = torch.cat([torch.zeros_like(x[:, :1]), x], 1)  # token t reads (z_{t-1}, a_{t-1}); zeros at t = 0
    is_first = torch.zeros(N, T + H, dtype=torch.bool)
    is_first[:, 0] = True
    h, _ = m.backbone(x, is_first)
    close(h[:, T:], traj.features[:, 1:, : m.h_dim])
    close(m.prior_net(h[:, T:]).stats, traj.prior.stats)


@torch.no_grad()
def test_imagine_from_loss_starts_equals_imagine_after_observing_the_prefix(backbone):
    m = model(backbone)
    batch = sequence(2, 8, [[0, 5], [2]])
    _, _, starts = m.loss(batch, return_starts=True, sample=False)
    assert starts.batch_size == 16
    actions = F.one_hot(torch.randint(0, ACTS, (16, 4)), ACTS).float()
    traj = m.imagine(starts, actions, 4, sample=False)
    for b, t in [(0, 0), (0, 4), (0, 7), (1, 1), (1, 6)]:
        prefix = {k: v[b : b + 1, : t + 1] for k, v in batch.items()}
        _, _, _, state = observe(m, prefix)
        alone = m.imagine(state, actions[b * 8 + t][None], 4, sample=False)
        close(traj.features[b * 8 + t], alone.features[0])


@torch.no_grad()
def test_state_cat_and_index_keep_each_row(backbone):
    """States of different histories (caches of different lengths) concatenated, then imagined."""
    m = model(backbone)
    states = [observe(m, sequence(1, L, [[0]]))[3] for L in (2, 5, 3)]
    both = State.cat(states)
    actions = F.one_hot(torch.randint(0, ACTS, (3, 3)), ACTS).float()
    traj = m.imagine(both, actions, 3, sample=False)
    for i, s in enumerate(states):
        alone = m.imagine(s, actions[i : i + 1], 3, sample=False)
        close(traj.features[i], alone.features[0])
    picked = both[torch.tensor([2, 0])]
    close(picked.h, torch.cat([states[2].h, states[0].h]))
    assert not picked.detach().h.requires_grad


def test_imagination_with_a_policy_backpropagates_through_the_dynamics(backbone):
    m = model(backbone, act_space=gym.spaces.Box(-1, 1, (2,), np.float32))
    actor = torch.nn.Linear(m.feat_dim, 2)
    batch = sequence(2, 4, [[0], [0]])
    batch["action"] = torch.rand(2, 4, 2) * 2 - 1
    _, _, starts = m.loss(batch, return_starts=True)
    calls = []

    def policy(feat):
        calls.append(feat.shape)
        return torch.tanh(actor(feat))

    traj = m.imagine(starts, policy, 5)
    assert len(calls) == 6 and traj.features.shape == (8, 6, m.feat_dim) and traj.actions.shape == (8, 6, 2)
    (m.reward(traj.features, traj.actions)[:, 1:].sum() + traj.features[:, -1].pow(2).sum()).backward()
    assert actor.weight.grad is not None and actor.weight.grad.abs().sum() > 0
    grads = [p.grad for p in m.backbone.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0


def test_loss_with_images_has_stable_metric_names_and_trains_every_part(backbone):
    m = model(backbone, TINY.replace(free_bits=0.0), obs_space=OBS_IMAGE).train()  # free bits would mute the prior's gradient
    batch = sequence(2, 3, [[0], [1]], image=True)
    batch["is_terminal"][1, 2] = True
    loss, metrics = m.loss(batch)
    for name in (
        "loss",
        "loss/image",
        "loss/vector",
        "loss/reward",
        "loss/cont",
        "loss/dyn",
        "loss/rep",
        "kl",
        "prior_entropy",
        "post_entropy",
    ):
        assert np.isfinite(metrics[name]), name
    terms = ("loss/image", "loss/vector", "loss/reward", "loss/cont")
    expected = sum(metrics[k] for k in terms) + 0.5 * metrics["loss/dyn"] + 0.1 * metrics["loss/rep"]
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for name in ("encoder", "backbone", "posterior_net", "prior_net", "decoder", "reward_head", "cont_head"):
        grads = [p.grad for p in getattr(m, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    pred = m.decode(torch.randn(4, m.feat_dim))
    assert pred["image"].shape == (4, 64, 64, 3) and 0 <= pred["image"].min() and pred["image"].max() <= 1
    assert pred["vector"].shape == (4, VEC)
    assert m.reward(torch.randn(4, 3, m.feat_dim), torch.randn(4, 3, m.act_dim)).shape == (4, 3)
    c = m.cont(torch.randn(4, m.feat_dim))
    assert c.shape == (4,) and ((0 <= c) & (c <= 1)).all()


def test_transformer_attends_to_a_window_of_context_tokens():
    m = model("transformer", TINY.replace(context=3))
    x = torch.randn(1, 8, m.backbone.in_dim)
    is_first = torch.zeros(1, 8, dtype=torch.bool)
    y, _ = m.backbone(x, is_first)
    for t_changed, affected in [(4, True), (3, False)]:  # query 6 sees 4, 5, 6 (through one layer: 2 more)
        x2 = x.clone()
        x2[0, t_changed] += 1.0
        y2, _ = m.backbone(x2, is_first)
        assert (y2[0, 6] - y[0, 6]).abs().max().item() > 1e-4 or not affected
    m1 = model("transformer", TINY.replace(context=3, layers=1))
    y, _ = m1.backbone(x, is_first)
    x2 = x.clone()
    x2[0, 3] += 1.0
    close(m1.backbone(x2, is_first)[0][0, 6], y[0, 6])


# ------------------------------------------------------------------------------- sizes, errors
@pytest.mark.parametrize("preset", ["tiny", "small", "medium", "large"])
@pytest.mark.parametrize("obs_space", [OBS, OBS_IMAGE], ids=["vector", "image"])
def test_parameter_counts_agree_across_backbones_within_15_percent(preset, obs_space):
    config = wm.WorldModelConfig.preset(preset)
    counts = {b: wm.count_params(b, obs_space, ACT, config) for b in wm.BACKBONES}
    assert max(counts.values()) <= 1.15 * min(counts.values()), counts


def test_num_params_counts_every_parameter():
    m = wm.make("s5", OBS, ACT, TINY)
    assert m.num_params() == sum(p.numel() for p in m.parameters()) == wm.count_params("s5", OBS, ACT, TINY)


def test_action_sizes_of_each_space():
    assert wm.make("rssm", OBS, gym.spaces.MultiDiscrete([2, 3]), TINY).act_dim == 5
    assert wm.make("s5", OBS, gym.spaces.Box(-1, 1, (4,), np.float32), TINY).act_dim == 4
    assert wm.make("s4", OBS, ACT, TINY).act_dim == ACTS


@pytest.mark.parametrize(
    "make_bad, match",
    [
        (lambda: wm.make("lstm", OBS, ACT, TINY), "unknown backbone 'lstm'; known: rssm"),
        (
            lambda: wm.make("s5", gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)}), ACT, TINY),
            r"must be uint8 \(64, 64, 3\)",
        ),
        (lambda: wm.make("s5", gym.spaces.Dict({}), ACT, TINY), "needs an 'image' or a 'vector'"),
        (lambda: wm.make("s5", OBS, gym.spaces.Box(-1, 1, (2, 2)), TINY), "1-D Box"),
        (lambda: wm.make("transformer", OBS, ACT, TINY.replace(ssm_state_features=True)), "SSM backbones"),
        (lambda: wm.WorldModelConfig.preset("huge"), "unknown world-model preset 'huge'; known: tiny"),
        (lambda: wm.WorldModelConfig.preset("tiny", depth=3), r"unknown WorldModelConfig fields \['depth'\]"),
    ],
)
def test_bad_construction_raises_value_error(make_bad, match):
    with pytest.raises(ValueError, match=match):
        make_bad()


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda b: b.update(vector=b["vector"][..., :3]), r"obs\['vector'\] must be float \(2, 4, 5\)"),
        (lambda b: b.update(vector=b["vector"].long()), r"obs\['vector'\] must be float"),
        (lambda b: b.update(image=b["image"].float()), r"obs\['image'\] must be uint8 \(2, 4, 64, 64, 3\)"),
        (lambda b: b.update(image=b["image"][:, :, :32]), r"obs\['image'\] must be uint8"),
        (lambda b: b.update(action=torch.zeros(2, 4, 7)), r"action must be float \(2, 4, 3\)"),
        (lambda b: b.update(is_first=torch.zeros(2, 5, dtype=torch.bool)), r"is_first must be \(2, 4\)"),
        (lambda b: b.pop("image"), "missing"),
    ],
)
def test_bad_input_raises_value_error_naming_what_was_expected(corrupt, match):
    m = model("s5", obs_space=OBS_IMAGE)
    batch = sequence(2, 4, image=True)
    corrupt(batch)
    with pytest.raises(ValueError, match=match):
        m.loss(batch)


def test_bad_step_and_imagine_inputs_raise_value_error():
    m = model("s4")
    state = m.initial_state(2)
    with pytest.raises(ValueError, match=r"action must be float \(2, 3\)"):
        m.step(state, torch.zeros(2, 4), {"vector": torch.zeros(2, VEC)}, torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"obs\['vector'\] must be float \(2, 5\)"):
        m.step(state, torch.zeros(2, 3), {"vector": torch.zeros(2, 1, VEC)}, torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"imagine \(given actions\): action must be float \(2, 4, 3\)"):
        m.imagine(state, torch.zeros(2, 5, 3), 4)
    with pytest.raises(ValueError, match="state must have batch 3"):
        m.observe({"vector": torch.zeros(3, 2, VEC)}, torch.zeros(3, 2, 3), torch.zeros(3, 2, dtype=torch.bool), state)


def test_a_loss_term_that_is_not_finite_raises_naming_it():
    m = model("s5")
    batch = sequence(2, 3)
    batch["reward"][0, 1] = float("nan")
    with pytest.raises(FloatingPointError, match="loss/reward"):
        m.loss(batch)


@pytest.mark.parametrize("backbone", ["rssm", "s5"])
@torch.no_grad()
def test_gaussian_latents_keep_the_contract(backbone):
    m = model(backbone, TINY.replace(latent="gaussian"))
    assert m.z_dim == TINY.stoch
    batch = sequence(2, 6, [[0, 3], [2]])
    loss, metrics = m.loss(batch)
    assert np.isfinite(metrics["loss"]) and metrics["kl"] >= 0
    _, _, feat, _ = observe(m, batch)
    state = m.initial_state(2)
    for t in range(6):
        prev = batch["action"][:, t - 1] if t else torch.zeros(2, ACTS)
        state, f = m.step(state, prev, obs_of(batch, (slice(None), t)), batch["is_first"][:, t], sample=False)
        close(f, feat[:, t])
