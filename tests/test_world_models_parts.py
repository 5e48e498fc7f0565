"""The world models' parts against references: distributions against torch.distributions and
formulas, the SSM layers against plain complex128 loops, the HiPPO-N eigenvalues against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributions as td

import world_models as wm
from world_models.backbones.mamba import SelectiveSSM, causal_conv
from world_models.backbones.s4 import S4DLayer
from world_models.backbones.s5 import S5Layer, hippo_n, hippo_n_eigenvalues
from world_models.distributions import TwoHotSymlog
from world_models.model import image_loss
from world_models.nets import ChannelNorm, ImageDecoder, ImageEncoder, MLP, RMSNorm
from world_models.state import State


# ------------------------------------------------------------------------------ distributions
def test_symexp_inverts_symlog():
    x = torch.randn(1000, dtype=torch.float64) * 100
    torch.testing.assert_close(wm.symexp(wm.symlog(x)), x)
    torch.testing.assert_close(wm.symlog(torch.tensor([-math.e + 1, 0.0, 3.0])), torch.tensor([-1.0, 0.0, math.log(4)]))


def test_two_hot_weights_sum_to_one_and_average_to_the_symlog_value():
    dist = wm.TwoHotSymlog(torch.zeros(7, 255))
    x = torch.tensor([-1e6, -50.0, -1.3, 0.0, 0.7, 2.5, 1e3])
    w = dist.two_hot(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(7))
    assert ((w > 0).sum(-1) <= 2).all()
    torch.testing.assert_close((w * dist.bins).sum(-1), wm.symlog(x).clamp(-20, 20))


def test_two_hot_log_prob_and_mean_follow_the_bins():
    logits = torch.randn(5, 255)
    dist = wm.TwoHotSymlog(logits)
    x = torch.randn(5) * 10
    ref = (dist.two_hot(x) * torch.log_softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(dist.log_prob(x), ref)
    torch.testing.assert_close(dist.mean, wm.symexp((torch.softmax(logits, -1) * dist.bins).sum(-1)))
    peaked = wm.TwoHotSymlog(torch.log(wm.TwoHotSymlog(torch.zeros(5, 255)).two_hot(x) + 1e-12))
    torch.testing.assert_close(peaked.mean, x, rtol=1e-3, atol=1e-3)
    assert torch.isnan(dist.log_prob(torch.tensor([0.0, float("nan"), 1.0, float("inf"), 2.0]))[[1, 3]]).all()


def test_unimix_categorical_matches_torch_categorical_of_the_mixed_probs():
    logits = torch.randn(4, 6, 5) * 3
    dist = wm.OneHotCategorical(logits, unimix=0.01)
    probs = 0.99 * torch.softmax(logits, -1) + 0.01 / 5
    torch.testing.assert_close(dist.probs, probs)
    ref = td.Categorical(probs=probs)
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    other_logits = torch.randn(4, 6, 5)
    other = wm.OneHotCategorical(other_logits, unimix=0.01)
    ref_other = td.Categorical(probs=0.99 * torch.softmax(other_logits, -1) + 0.01 / 5)
    torch.testing.assert_close(dist.kl(other), td.kl_divergence(ref, ref_other))
    value = torch.nn.functional.one_hot(torch.randint(0, 5, (4, 6)), 5).float()
    torch.testing.assert_close(dist.log_prob(value), ref.log_prob(value.argmax(-1)))
    torch.testing.assert_close(dist.mode().argmax(-1), probs.argmax(-1))


@pytest.mark.parametrize("unimix", [0.0, 0.01])
def test_balanced_kl_has_the_values_and_gradients_of_the_two_detached_kls(unimix):
    """DreamerV3's dyn = KL(sg(post) || prior) and rep = KL(post || sg(prior)) from one fused pass: same values,
    and each one's gradient reaches only its own side, as with autograd through the plain formulas."""
    a, b = (torch.randn(3, 7, 5, dtype=torch.float64).mul(2).requires_grad_() for _ in range(2))
    wa, wb = torch.rand(3, 7, dtype=torch.float64), torch.rand(3, 7, dtype=torch.float64)
    post, prior = wm.OneHotCategorical(a, unimix), wm.OneHotCategorical(b, unimix)
    dyn, rep = post.kl_balanced(prior)
    grads = torch.autograd.grad((dyn * wa).sum() + (rep * wb).sum(), (a, b))
    ref_post, ref_prior = (td.Categorical(probs=(1 - unimix) * torch.softmax(x.float(), -1) + unimix / 5) for x in (a, b))
    ref_dyn = td.kl_divergence(td.Categorical(probs=ref_post.probs.detach()), ref_prior)
    ref_rep = td.kl_divergence(ref_post, td.Categorical(probs=ref_prior.probs.detach()))
    ref_grads = torch.autograd.grad((ref_dyn * wa).sum() + (ref_rep * wb).sum(), (a, b))
    torch.testing.assert_close(dyn, ref_dyn)
    torch.testing.assert_close(rep, ref_rep)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-4)
    dyn, rep = wm.OneHotCategorical(a, unimix).kl_balanced(wm.OneHotCategorical(b, unimix))
    ga, gb = torch.autograd.grad(dyn.sum(), (a, b), allow_unused=True)
    assert (ga is None or not ga.abs().max()) and gb.abs().max() > 0


def test_categorical_samples_follow_the_probs_and_pass_gradients_straight_through():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5]], requires_grad=True)
    dist = wm.OneHotCategorical(logits.expand(20000, 4), unimix=0.0)
    gen = torch.Generator().manual_seed(0)
    sample = dist.sample(gen)
    assert ((sample.detach() == 0) | (sample.detach() == 1)).all() and (sample.detach().sum(-1) == 1).all()
    freq = sample.detach().mean(0)
    torch.testing.assert_close(freq, torch.softmax(logits.detach(), -1)[0], atol=0.015, rtol=0)
    again = wm.OneHotCategorical(logits.expand(20000, 4)).sample(torch.Generator().manual_seed(0))
    assert torch.equal(again.detach(), sample.detach())
    weights = torch.randn(4)
    (g_sample,) = torch.autograd.grad((sample * weights).sum(), logits, retain_graph=True)
    (g_probs,) = torch.autograd.grad((dist.probs * weights).sum(), logits)
    torch.testing.assert_close(g_sample, g_probs)


def test_normal_and_bernoulli_match_torch_distributions():
    mean, std = torch.randn(3, 4), torch.rand(3, 4) + 0.1
    mean2, std2 = torch.randn(3, 4), torch.rand(3, 4) + 0.1
    x = torch.randn(3, 4)
    ours, ref = wm.Normal(mean, std), td.Independent(td.Normal(mean, std), 1)
    torch.testing.assert_close(ours.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    torch.testing.assert_close(ours.kl(wm.Normal(mean2, std2)), td.kl_divergence(ref, td.Independent(td.Normal(mean2, std2), 1)))
    logits, y = torch.randn(10), (torch.rand(10) > 0.5).float()
    b, rb = wm.Bernoulli(logits), td.Bernoulli(logits=logits)
    torch.testing.assert_close(b.log_prob(y), rb.log_prob(y))
    torch.testing.assert_close(b.entropy(), rb.entropy())
    torch.testing.assert_close(b.mean, rb.mean)


def test_gaussian_latents_sample_with_gradients():
    config = wm.WorldModelConfig.preset("tiny", latent="gaussian")
    stats = torch.randn(2, 3, 2 * config.stoch, requires_grad=True)
    latent = wm.Latent(stats, config)
    z = latent.sample(torch.Generator().manual_seed(0))
    assert z.shape == (2, 3, config.stoch) and (latent.dist.std >= config.min_std).all()
    z.sum().backward()
    assert stats.grad.abs().sum() > 0
    assert latent.kl(latent).abs().max() < 1e-6


# ------------------------------------------------------------------------------------ SSM layers
def hippo_n_reference(P: int) -> np.ndarray:
    """Eigenvalues of the normal part of HiPPO-LegS (size 2P) with positive imaginary parts."""
    N = 2 * P
    n = np.arange(N)
    A = -np.where(n[:, None] > n[None, :], np.sqrt((2 * n[:, None] + 1) * (2 * n[None, :] + 1)), 0.0) - np.diag(n + 1)
    p = np.sqrt(n + 0.5)
    eig = np.linalg.eigvals(A + np.outer(p, p))
    eig = eig[eig.imag > 0]
    return eig[np.argsort(eig.imag)]


def test_hippo_n_eigenvalues_match_numpy():
    ours = hippo_n_eigenvalues(8).numpy()
    np.testing.assert_allclose(ours, hippo_n_reference(8), rtol=1e-4, atol=1e-4)


def reference_scan(a, bu, is_first, carry):
    """h_t = a_t * (0 if is_first_t else h_{t-1}) + bu_t in complex128; a (B, L, ...) or broadcastable."""
    h, out = carry.to(torch.complex128), []
    for t in range(bu.shape[1]):
        at = a[:, t] if a.dim() == bu.dim() else a
        h = at * torch.where(is_first[:, t].reshape(-1, *[1] * (h.dim() - 1)), torch.zeros_like(h), h) + bu[:, t]
        out.append(h)
    return torch.stack(out, 1)


def random_resets(B, L):
    is_first = torch.rand(B, L) < 0.25
    is_first[0, 0] = True
    return is_first


def test_s5_initialises_B_and_C_through_the_hippo_n_eigenvectors():
    """S5 (Smith et al. 2023): B = V^-1 B0 with B0 real lecun-normal (2P, H), C = C0 V with C0 complex
    lecun-normal (H, 2P); here C also carries S5's readout factor 2 (y = 2 Re(C x) there, Re(C x) here)."""
    P, H = 32, 48
    Lambda, V = hippo_n(P)  # (P,), (2P, P)
    n = torch.arange(2 * P, dtype=torch.float64)
    q = torch.sqrt(2 * n + 1)
    A_normal = -0.5 * torch.eye(2 * P) - 0.5 * q[:, None] * q[None, :] * torch.sign(n[:, None] - n[None, :])
    torch.testing.assert_close(A_normal.to(torch.complex128) @ V, V * Lambda)  # eigenvectors of HiPPO-N
    torch.testing.assert_close(V.conj().T @ V, torch.eye(P, dtype=torch.complex128))  # orthonormal: V^-1 = V^H
    torch.manual_seed(0)
    layer = S5Layer(H=H, P=P, dt_min=0.01, dt_max=0.1, init="s5")
    B, C = (torch.view_as_complex(x).to(torch.complex128) for x in (layer.B, layer.C))
    # the conjugate half of the eigenvectors completes V: B0 = V B + conj(V B) = 2 Re(V B) is the real draw
    B0 = 2 * (V @ B).real  # (2P, H)
    std = 1 / math.sqrt(2 * P)
    assert abs(B0.std().item() / std - 1) < 0.1 and B0.abs().max() <= 2 * std / 0.8796 + 1e-5
    assert abs(C.abs().pow(2).mean().item() / (4 / P) - 1) < 0.1  # |2 C0 V|^2 = 4 * 2 / (2P) per entry
    with pytest.raises(ValueError, match="unknown S5 initialisation of B and C 'lecun'; known: gaussian, s5"):
        S5Layer(H=H, P=P, dt_min=0.01, dt_max=0.1, init="lecun")


@torch.no_grad()
def test_s5_layer_matches_a_complex128_loop():
    layer = S5Layer(H=6, P=4, dt_min=0.01, dt_max=0.5)
    u, is_first = torch.randn(3, 11, 6), random_resets(3, 11)
    x0 = torch.randn(3, 4, dtype=torch.complex64)
    y, xs = layer(u, is_first, x0)
    Lambda = torch.complex(-torch.exp(layer.Lambda_re_log.double()), layer.Lambda_im.double())
    dt = torch.exp(layer.log_dt.double())
    Lambda_bar = torch.exp(Lambda * dt)
    B_bar = ((Lambda_bar - 1) / Lambda)[:, None] * torch.view_as_complex(layer.B.double())
    ref_x = reference_scan(Lambda_bar, u.double().to(torch.complex128) @ B_bar.T, is_first, x0)
    ref_y = (ref_x @ torch.view_as_complex(layer.C.double()).T).real + layer.D.double() * u.double()
    torch.testing.assert_close(xs.to(torch.complex128), ref_x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y.double(), ref_y, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("init", ["lin", "inv"])
@torch.no_grad()
def test_s4d_layer_matches_a_complex128_loop(init):
    layer = S4DLayer(H=5, N=3, dt_min=0.01, dt_max=0.5, init=init)
    u, is_first = torch.randn(2, 9, 5), random_resets(2, 9)
    x0 = torch.randn(2, 5, 3, dtype=torch.complex64)
    y, xs = layer(u, is_first, x0)
    A = torch.complex(-torch.exp(layer.log_A_real.double()), layer.A_imag.double())  # (H, N)
    a = torch.exp(A * torch.exp(layer.log_dt.double())[:, None])
    bu = u.double()[..., None] * ((a - 1) / A)  # (B, L, H, N)
    ref_x = reference_scan(a, bu, is_first, x0)
    ref_y = (ref_x * torch.view_as_complex(layer.C.double())).sum(-1).real + layer.D.double() * u.double()
    torch.testing.assert_close(xs.to(torch.complex128), ref_x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y.double(), ref_y, atol=1e-4, rtol=1e-4)
    if init == "lin":
        torch.testing.assert_close(layer.A_imag[0], math.pi * torch.arange(3.0))


@pytest.mark.parametrize(
    "make_layer",
    [lambda: S5Layer(H=6, P=4, dt_min=0.01, dt_max=0.5), lambda: S4DLayer(H=6, N=3, dt_min=0.01, dt_max=0.5)],
    ids=["s5", "s4"],
)
def test_ssm_step_without_grad_reuses_the_discretisation_until_a_parameter_changes(make_layer):
    """The no-grad step caches the discretisation: it must equal the step under autograd (computed
    afresh) after an optimiser step, after load_state_dict, and after an in-place edit."""
    layer = make_layer()
    u, reset = torch.randn(5, 6), torch.tensor([True, False, False, True, False])
    x = torch.randn(5, *layer.state_shape, dtype=torch.complex64)

    def fresh():  # autograd on: no cache
        y, x_next = layer.step(u, reset, x)
        return y.detach(), x_next.detach()

    def cached():
        with torch.no_grad():
            return layer.step(u, reset, x)

    before = fresh()
    torch.testing.assert_close(cached(), before)
    saved = {k: v.clone() for k, v in layer.state_dict().items()}
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    y, _ = layer(torch.randn(2, 4, 6), torch.zeros(2, 4, dtype=torch.bool), torch.zeros(2, *layer.state_shape, dtype=torch.complex64))
    y.pow(2).mean().backward()
    opt.step()
    after = fresh()
    assert not torch.allclose(after[0], before[0])
    torch.testing.assert_close(cached(), after)
    layer.load_state_dict(saved)
    torch.testing.assert_close(cached(), before)
    with torch.no_grad():
        layer.log_dt.add_(0.5)
    torch.testing.assert_close(cached(), fresh())


@torch.no_grad()
def test_selective_ssm_matches_a_loop_with_input_dependent_steps():
    """Mamba's mixer step by step: the causal depthwise convolution over a window of the last 3 inputs
    (zeroed at a reset, carried in the state), then the selective scan."""
    layer = SelectiveSSM(W=4, expand=2, N=3, dt_min=0.01, dt_max=0.5).double()
    u, is_first = torch.randn(2, 9, 4, dtype=torch.float64), random_resets(2, 9)
    is_first[1, 0] = False  # row 1 starts from the carried state (SSM state and window)
    s0 = torch.randn(2, 8, 3 + 3, dtype=torch.float64)  # (B, E, N + K-1)
    y, states = layer(u, is_first, s0)
    h, window, ys = s0[..., :3], s0[..., 3:], []  # window (B, E, 3), oldest first
    w, bias = layer.conv1d.weight[:, 0], layer.conv1d.bias  # (E, 4), (E,)
    for t in range(9):
        x, z = layer.in_proj(u[:, t]).chunk(2, -1)
        reset = is_first[:, t, None, None]
        h, window = torch.where(reset, 0.0, h), torch.where(reset, 0.0, window)
        taps = torch.cat([window, x[..., None]], -1)  # (B, E, 4): x_{t-3} .. x_t
        window = taps[..., 1:]
        x = torch.nn.functional.silu((taps * w).sum(-1) + bias)
        dt, Bm, Cm = layer.x_proj(x).split([layer.R, 3, 3], -1)
        dt = torch.nn.functional.softplus(layer.dt_proj(dt))  # (B, E)
        h = torch.exp(dt[..., None] * -torch.exp(layer.A_log)) * h + (dt * x)[..., None] * Bm[:, None, :]
        ys.append(layer.out_proj(((h * Cm[:, None, :]).sum(-1) + layer.D * x) * torch.nn.functional.silu(z)))
        torch.testing.assert_close(states[:, t], torch.cat([h, window], -1))
    torch.testing.assert_close(y, torch.stack(ys, 1))


@torch.no_grad()
def test_mamba_causal_conv_is_the_padded_depthwise_conv1d_without_resets():
    x, weight, bias = torch.randn(3, 10, 6), torch.randn(6, 4), torch.randn(6)
    y, windows = causal_conv(x, torch.zeros(3, 3, 6), torch.zeros(3, 10, dtype=torch.bool), weight, bias)
    want = torch.nn.functional.conv1d(x.transpose(1, 2), weight[:, None], bias, padding=3, groups=6)[..., :10]
    torch.testing.assert_close(y, want.transpose(1, 2))
    torch.testing.assert_close(windows[:, -1], x[:, -3:])


# ------------------------------------------------------------------------------ nets and state
def test_image_encoder_and_decoder_shapes():
    enc, dec = ImageEncoder(4), ImageDecoder(10, 4)
    image = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    assert enc(image).shape == (2, 3, enc.out_dim) and enc.out_dim == 32 * 16
    assert dec(torch.randn(2, 3, 10)).shape == (2, 3, 64, 64, 3)


def test_channel_norm_is_the_layer_norm_formula_over_channels_and_keeps_channels_last():
    torch.manual_seed(0)
    norm = ChannelNorm("layer", 5)
    with torch.no_grad():
        norm.norm.weight.normal_(), norm.norm.bias.normal_()
    x = (torch.randn(3, 5, 6, 7) * 3 + 1).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    out = norm(x)
    mean, var = ref_x.mean(1, keepdim=True), ref_x.var(1, unbiased=False, keepdim=True)
    w, b = norm.norm.weight.detach()[:, None, None], norm.norm.bias.detach()[:, None, None]
    ref = (ref_x - mean) / (var + 1e-3).sqrt() * w + b
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(out)
    out.backward(grad), ref.backward(grad)
    torch.testing.assert_close(x.grad, ref_x.grad)
    enc = ImageEncoder(4)
    layouts = []
    for m in enc.net:
        m.register_forward_hook(lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last)))
    enc(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert all(layouts) and len(layouts) == 12


def test_image_loss_is_the_squared_error_to_the_uint8_image_over_255_in_value_and_gradient():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    pred = torch.rand(2, 3, 64, 64, 3, requires_grad=True)
    ref_pred = pred.detach().clone().requires_grad_()
    loss = image_loss(pred, image)
    ref = (ref_pred - image.float() / 255.0).pow(2).sum((-3, -2, -1))
    assert loss.shape == (2, 3)
    torch.testing.assert_close(loss, ref)
    weights = torch.randn(2, 3)
    (loss * weights).sum().backward(), (ref * weights).sum().backward()
    torch.testing.assert_close(pred.grad, ref_pred.grad)


def test_mlp_and_rms_norm():
    mlp = MLP(3, 2, 8, 2, norm="rms", act="gelu")
    assert mlp(torch.randn(5, 3)).shape == (5, 2)
    x = torch.randn(4, 6)
    torch.testing.assert_close(RMSNorm(6)(x), x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt())
    with pytest.raises(ValueError, match="unknown norm 'batch'; known: layer, rms, none"):
        MLP(3, 2, 8, 1, norm="batch")


def test_state_cat_pads_caches_and_rejects_mismatches():
    a = State(
        torch.ones(1, 2), torch.ones(1, 3), torch.ones(1, 1), {"k0": torch.ones(1, 2, 4), "valid": torch.ones(1, 2, dtype=torch.bool)}
    )
    b = State(
        torch.ones(2, 2), torch.ones(2, 3), torch.ones(2, 1), {"k0": torch.ones(2, 3, 4), "valid": torch.ones(2, 3, dtype=torch.bool)}
    )
    both = State.cat([a, b])
    assert both.mem["k0"].shape == (3, 3, 4) and both.batch_size == 3
    assert both.mem["valid"].tolist() == [[False, True, True], [True] * 3, [True] * 3]
    assert both.mem["k0"][0, 0].abs().sum() == 0
    with pytest.raises(ValueError, match="empty list"):
        State.cat([])
    with pytest.raises(ValueError, match="memory keys differ"):
        State.cat([a, State(a.h, a.z, a.action, {})])


def test_backbones_run_on_their_own_as_sequence_models():
    config = wm.WorldModelConfig.preset("tiny")
    for name in wm.BACKBONES:
        bb = wm.backbones.make(name, 7, 16, config)
        x, is_first = torch.randn(2, 5, 7), torch.zeros(2, 5, dtype=torch.bool)
        y, state = bb(x, is_first, bb.initial_state(2))
        assert y.shape == (2, 5, bb.out_dim)
        y1, _ = bb.step(x[:, 0], is_first[:, 0], bb.initial_state(2))
        torch.testing.assert_close(y1, y[:, 0], atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match=r"x must be \(B, L, 7\)"):
            bb(torch.randn(2, 5, 6), is_first)
    with pytest.raises(ValueError, match="unknown backbone 'gru'"):
        wm.backbones.make("gru", 7, 16, config)


@pytest.mark.parametrize("init", ["zeros", "torch"])
def test_reward_head_starts_with_zero_bias_and_zero_or_random_weights(init):
    import gymnasium as gym

    torch.manual_seed(0)
    obs = gym.spaces.Dict({"vector": gym.spaces.Box(-1, 1, (5,), np.float32)})
    model = wm.make("s5", obs, gym.spaces.Discrete(3), wm.WorldModelConfig.preset("tiny", reward_head_init=init))
    out = model.reward_head.net[-1]
    assert torch.count_nonzero(out.bias) == 0
    feat, act = torch.randn(7, model.feat_dim), torch.eye(3)[torch.randint(0, 3, (7,))]
    if init == "zeros":  # DreamerV3: every reward predicts exactly 0 at first
        assert torch.count_nonzero(out.weight) == 0
        torch.testing.assert_close(model.reward(feat, act), torch.zeros(7), rtol=0, atol=1e-5)
    else:  # random weights: predictions vary with the features from the first step
        assert out.weight.std() > 0.01 and model.reward(feat, act).std() > 0


@pytest.mark.parametrize("input_gain", ["zoh", "unit_variance"])
def test_s5_state_variance_under_iid_inputs_matches_its_input_gain(input_gain):
    # x_t = Lambda_bar x_{t-1} + B_bar u_t with i.i.d. unit-variance u: E|x_p|^2 = |gain_p|^2 ||B_p||^2 / (1 - |Lambda_bar_p|^2),
    # which "unit_variance" makes ||B_p||^2 for every state, whatever its timescale
    torch.manual_seed(0)
    layer = S5Layer(H=4, P=8, dt_min=1e-2, dt_max=1.0, backend="reference", input_gain=input_gain)
    u = torch.randn(64, 600, 4)
    _, xs = layer(u, torch.zeros(64, 600, dtype=torch.bool), torch.zeros(64, 8, dtype=torch.complex64))
    measured = xs[:, 200:].abs().pow(2).mean((0, 1))  # (P,) past the start's transient
    Lambda_bar, B_bar, _ = layer.discretize()
    expected = B_bar.abs().pow(2).sum(-1) / (1 - Lambda_bar.abs() ** 2)  # (P,)
    torch.testing.assert_close(measured, expected.detach(), rtol=0.2, atol=0)
    B_norm = torch.view_as_complex(layer.B).abs().pow(2).sum(-1).detach()
    if input_gain == "unit_variance":
        torch.testing.assert_close(expected.detach(), B_norm, rtol=1e-4, atol=0)
    else:  # zero-order hold: slow states (small dt) hold i.i.d. inputs far below their input's scale
        assert (expected.detach() / B_norm).min() < 0.1


def test_feature_norm_standardises_every_feature_by_running_statistics_of_training_batches():
    import gymnasium as gym

    torch.manual_seed(0)
    obs = gym.spaces.Dict({"vector": gym.spaces.Box(-1, 1, (5,), np.float32)})
    config = wm.WorldModelConfig.preset("tiny", feature_norm=True, feature_norm_decay=0.0)  # decay 0: the last batch's statistics
    model = wm.make("s5", obs, gym.spaces.Discrete(3), config)
    B, L = 4, 12
    batch = {
        "vector": torch.randn(B, L, 5),
        "action": torch.nn.functional.one_hot(torch.randint(0, 3, (B, L)), 3).float(),
        "reward": torch.randn(B, L),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    model.loss(batch, sample=False)  # folds the batch's features into the statistics
    _, _, feat, _ = model.observe({"vector": batch["vector"]}, batch["action"], batch["is_first"], sample=False)
    raw = feat * torch.sqrt(model.feat_var + wm.model.FEATURE_NORM_EPS) + model.feat_mean
    flat = raw.reshape(-1, model.feat_dim)
    torch.testing.assert_close(model.feat_mean, flat.mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model.feat_var, flat.var(0, unbiased=False), atol=1e-5, rtol=1e-4)
    spread = flat.std(0) > 1e-3  # the standardised features of the same batch have mean 0 and spread ~1
    torch.testing.assert_close(feat.reshape(-1, model.feat_dim).mean(0), torch.zeros(model.feat_dim), atol=1e-4, rtol=0)
    assert (feat.reshape(-1, model.feat_dim).std(0)[spread] > 0.9).all()
    with torch.no_grad():  # evaluation leaves the statistics as they are
        before = model.feat_mean.clone()
        model.loss({**batch, "vector": batch["vector"] + 5}, sample=False)
    assert torch.equal(before, model.feat_mean)
    assert "feat_mean" not in wm.make("s5", obs, gym.spaces.Discrete(3), wm.WorldModelConfig.preset("tiny")).state_dict()


@pytest.mark.parametrize("space", ["discrete", "box"])
def test_reward_input_action_reads_the_features_before_the_step_and_the_action_taken(space):
    """reward_input="action": the reward of step t is the head's base output plus, per action component, that
    component times its own output, read from the features of step t-1 and the action after it; step 0 gets 0,
    and the loss skips step 0 and steps that start an episode."""
    import gymnasium as gym

    torch.manual_seed(0)
    obs = gym.spaces.Dict({"vector": gym.spaces.Box(-1, 1, (5,), np.float32)})
    act_space = gym.spaces.Discrete(3) if space == "discrete" else gym.spaces.Box(-1, 1, (2,), np.float32)
    config = wm.WorldModelConfig.preset("tiny", reward_input="action", reward_head_init="torch")
    model = wm.make("s5", obs, act_space, config)
    A, B, L, K = model.act_dim, 2, 6, config.reward_bins
    feat = torch.randn(B, L, model.feat_dim)
    act = torch.eye(A)[torch.randint(0, A, (B, L))] if space == "discrete" else torch.rand(B, L, A) * 2 - 1
    with torch.no_grad():
        got = model.reward(feat, act)  # (B, L)
        out = model.reward_head(torch.cat([feat[:, :-1], act[:, :-1]], -1)).reshape(B, L - 1, A + 1, K)
        logits = out[:, :, 0] + sum(act[:, :-1, j, None] * out[:, :, j + 1] for j in range(A))
        expected = TwoHotSymlog(logits).mean
    assert torch.equal(got[:, 0], torch.zeros(B))
    torch.testing.assert_close(got[:, 1:], expected)
    if space == "discrete":  # a one-hot action picks its own output: other actions' outputs do not matter
        taken = act[:, :-1].argmax(-1)
        own = out[:, :, 0] + out.gather(2, (taken + 1)[:, :, None, None].expand(B, L - 1, 1, K))[:, :, 0]
        torch.testing.assert_close(got[:, 1:], TwoHotSymlog(own).mean)
    # the loss: the reward of a step that starts an episode is not a target (changing it changes nothing)
    batch = {
        "vector": torch.randn(B, L, 5),
        "action": act,
        "reward": torch.randn(B, L),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = batch["is_first"][0, 3] = True
    _, m1 = model.loss(batch, sample=False)
    changed = batch["reward"].clone()
    changed[:, 0], changed[0, 3] = 50.0, -50.0
    _, m2 = model.loss({**batch, "reward": changed}, sample=False)
    assert m1["loss/reward"] == m2["loss/reward"]
    changed[1, 3] = 50.0  # a reward caused by the step before it is a target
    _, m3 = model.loss({**batch, "reward": changed}, sample=False)
    assert m3["loss/reward"] != m1["loss/reward"]
