"""The Transformer's positions and window: attention depends only on the distance between two
tokens (rotary positions), so training windows that count from 0 and acting that counts from the
episode start agree, and the preset contexts cover every replay window a task trains on.

What holds, to float32 rounding: the output at token t reads tokens t - layers * (context - 1) .. t
of its episode and nothing else, whatever came before and wherever the position count started.
"""

from __future__ import annotations

import pytest
import torch

import envs
import world_models as wm
from agents.config import MAX_WINDOW, window_for
from tests.test_world_models import ACTS, TINY, close, model, obs_of, observe, sequence


def backbone(context: int, layers: int) -> wm.backbones.TransformerBackbone:
    return model("transformer", TINY.replace(context=context, layers=layers)).backbone


def act(bb, x: torch.Tensor, is_first: torch.Tensor, state=None) -> tuple[torch.Tensor, dict]:
    """bb.step over x (B, T, in_dim) one token at a time -> (y (B, T, W), state)."""
    state = bb.initial_state(x.shape[0]) if state is None else state
    ys = []
    for t in range(x.shape[1]):
        y, state = bb.step(x[:, t], is_first[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@torch.no_grad()
@pytest.mark.parametrize("start", [1, 4097, 10**7])
def test_outputs_depend_on_distances_not_on_where_the_position_count_started(start):
    bb = backbone(context=6, layers=2)
    x = torch.randn(2, 15, bb.in_dim)
    is_first = torch.zeros(2, 15, dtype=torch.bool)
    y0, s0 = bb(x, is_first)
    shifted = bb.initial_state(2)
    shifted["pos"] = torch.full((2,), start)
    y1, s1 = bb(x, is_first, shifted)
    close(y1, y0)
    assert (s1["pos"] - s0["pos"]).tolist() == [start, start]
    y_act, _ = act(bb, x, is_first, shifted)  # acting deep into a long run counts the same distances
    close(y_act, y0)


@torch.no_grad()
@pytest.mark.parametrize("layers", [1, 2])
def test_acting_past_the_context_equals_a_fresh_window_of_the_receptive_field(layers):
    """Acting for T steps (the KV cache rolling past the context) equals `forward` from a blank state
    over the last layers * (context - 1) + 1 tokens, a window that starts mid-episode at position 0."""
    context, T = 4, 30
    bb = backbone(context, layers)
    field = layers * (context - 1) + 1
    x = torch.randn(2, T, bb.in_dim)
    is_first = torch.zeros(2, T, dtype=torch.bool)
    is_first[:, 0] = True
    y_act, state = act(bb, x, is_first)
    assert state["pos"].tolist() == [T, T] and state["k0"].shape[1] == context - 1
    for t in range(field - 1, T, 5):
        window = slice(t - field + 1, t + 1)
        y_win, _ = bb(x[:, window], torch.zeros(2, field, dtype=torch.bool))
        close(y_win[:, -1], y_act[:, t])
    if layers > 1:  # a deeper layer's cached keys hold what its own window saw: `context` tokens are not enough
        y_ctx, _ = bb(x[:, T - context :], torch.zeros(2, context, dtype=torch.bool))
        assert (y_ctx[:, -1] - y_act[:, -1]).abs().max() > 1e-3


@torch.no_grad()
def test_a_window_holding_an_episode_from_its_start_equals_acting_after_a_long_episode():
    """Acting through an episode longer than the context, then a new one: `observe` on a window
    holding the new episode from its start (blank state) equals the acted features."""
    m = model("transformer", TINY.replace(context=5))
    long, short = 23, 9
    batch = sequence(2, long + short, [[0, long], [0, long]])
    state = m.initial_state(2)
    feats = []
    for t in range(long + short):
        prev = batch["action"][:, t - 1] if t else torch.zeros(2, ACTS)
        state, f = m.step(state, prev, obs_of(batch, (slice(None), t)), batch["is_first"][:, t], sample=False)
        feats.append(f)
    acted = torch.stack(feats, 1)
    _, _, feat, last = observe(m, {k: v[:, long:] for k, v in batch.items()})
    close(feat, acted[:, long:])
    close(last.mem["k1"], state.mem["k1"])
    _, _, whole, _ = observe(m, batch)  # and the whole run at once, both episodes past the context
    close(whole, acted)


@torch.no_grad()
def test_rows_of_several_episodes_longer_than_the_context_equal_each_episode_alone():
    m = model("transformer", TINY.replace(context=4))
    L = 20
    starts = [[0, 9], [6, 7], [0, 1, 13]]
    _, _, _, carried = observe(m, sequence(3, 11))  # a cache and a position count from an earlier chunk
    carried.mem["pos"] = carried.mem["pos"] + 10**6
    batch = sequence(3, L, starts)
    _, prior, feat, _ = observe(m, batch, carried)
    for b, row in enumerate(starts):
        bounds = sorted(set([0] + row + [L]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            alone = {k: v[b : b + 1, lo:hi] for k, v in batch.items()}
            state = carried[torch.tensor([b])] if lo == 0 and 0 not in row else None
            _, p_prior, p_feat, _ = observe(m, alone, state)
            close(feat[b : b + 1, lo:hi], p_feat)
            close(prior.stats[b : b + 1, lo:hi], p_prior.stats)


@pytest.mark.parametrize("preset", list(wm.config.PRESETS))
def test_every_preset_context_spans_every_replay_window(preset):
    """Attention must span the window a task trains on (cue to decision); replay windows follow the
    task's memory horizon up to MAX_WINDOW."""
    context = wm.WorldModelConfig.preset(preset).context
    assert context >= MAX_WINDOW
    for env in envs.ids():
        assert context >= window_for(envs.spec(env).memory_horizon), env
    assert context > envs.spec("memory/distracting-100").memory_horizon


@torch.no_grad()
def test_world_model_with_a_long_context_keeps_the_cue_a_hundred_steps_back():
    """At preset tiny the output at step 101 still depends on the step that held the cue."""
    m = model("transformer")
    assert m.backbone.context >= 102
    batch = sequence(1, 102, [[0]])
    _, _, feat, _ = observe(m, batch)
    batch["vector"][0, 0] += 3.0
    _, _, feat2, _ = observe(m, batch)
    assert (feat2[0, -1, : m.h_dim] - feat[0, -1, : m.h_dim]).abs().max() > 1e-4


@torch.no_grad()
def test_rotary_positions_under_bf16_autocast_stay_close_to_float32():
    bb = backbone(context=8, layers=2)
    x = torch.randn(2, 12, bb.in_dim)
    is_first = torch.zeros(2, 12, dtype=torch.bool)
    y32, _ = bb(x, is_first)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, _ = bb(x, is_first)
    assert y16.dtype == torch.bfloat16
    close(y16.float(), y32, atol=0.1)
