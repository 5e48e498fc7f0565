"""The representation objective: reconstruction (DreamerV3), or Barlow Twins against the detached
encoder embedding of the projected features (R2-Dreamer) or of the projected h_t made before o_t was
seen (next-embedding prediction, NE-Dreamer), with a decoder probe on detached features."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import world_models as wm
from world_models.objectives import barlow_twins

VEC, ACTS = 5, 3
OBS = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (VEC,), np.float32)})
OBS_IMAGE = gym.spaces.Dict(
    {"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), "vector": gym.spaces.Box(-np.inf, np.inf, (VEC,), np.float32)}
)
ACT = gym.spaces.Discrete(ACTS)
TINY = wm.WorldModelConfig.preset("tiny")
BARLOW = TINY.replace(objective="barlow")
# every term but the one under test weighs zero: its gradient is then exactly the whole loss's
ONLY_BARLOW = BARLOW.replace(probe=False, reward_scale=0.0, cont_scale=0.0, dyn_scale=0.0, rep_scale=0.0)
ONLY_PROBE = BARLOW.replace(barlow_scale=0.0, reward_scale=0.0, cont_scale=0.0, dyn_scale=0.0, rep_scale=0.0)


def reference_barlow(x1: torch.Tensor, x2: torch.Tensor, lam: float, eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins written out: standardise each dimension over the N rows (population variance,
    as a batch norm), cross-correlate, (1 - c)^2 on the diagonal, lam * c^2 off it."""
    n, d = x1.shape
    z1 = (x1 - x1.mean(0)) / torch.sqrt(((x1 - x1.mean(0)) ** 2).sum(0) / n + eps)
    z2 = (x2 - x2.mean(0)) / torch.sqrt(((x2 - x2.mean(0)) ** 2).sum(0) / n + eps)
    c = torch.einsum("ni,nj->ij", z1, z2) / n
    eye = torch.eye(d, dtype=x1.dtype)
    return ((1 - c) ** 2 * eye).sum() + lam * (c**2 * (1 - eye)).sum()


def sequence(B: int, L: int, image: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random observations (images: 4 colours, so that a tiny model learns them in a few dozen
    steps), one-hot actions, rewards, episode starts at 0 and (row 1) halfway, one terminal."""
    gen = torch.Generator().manual_seed(seed)
    batch = {
        "vector": 2 * torch.randn(B, L, VEC, generator=gen),
        "action": F.one_hot(torch.randint(0, ACTS, (B, L), generator=gen), ACTS).float(),
        "reward": torch.randn(B, L, generator=gen),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    batch["is_first"][1, L // 2] = True
    batch["is_terminal"][1, L // 2 - 1] = True
    if image:
        palette = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 255, 0], [255, 255, 255]], dtype=torch.uint8)
        colour = torch.randint(0, 4, (B, L), generator=gen)
        batch["image"] = palette[colour][:, :, None, None, :].expand(B, L, 64, 64, 3).clone()
    return batch


def obs_of(batch):
    return {k: batch[k] for k in ("vector", "image") if k in batch}


def make(config: wm.WorldModelConfig, image: bool = False, backbone: str = "s5") -> wm.WorldModel:
    torch.manual_seed(0)
    return wm.make(backbone, OBS_IMAGE if image else OBS, ACT, config)


def grads(model: wm.WorldModel) -> dict[str, torch.Tensor]:
    return {name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for name, p in model.named_parameters()}


# ---------------------------------------------------------------------------- the Barlow loss
@pytest.mark.parametrize("n, d, lam", [(12, 5, 5e-4), (40, 7, 0.3), (3, 9, 1.0)])
def test_barlow_twins_value_and_gradients_equal_the_written_out_reference(n, d, lam):
    gen = torch.Generator().manual_seed(n * d)
    x1 = (
        torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.rand(d, generator=gen, dtype=torch.float64) * 3
        + torch.randn(d, generator=gen, dtype=torch.float64)
    ).requires_grad_()
    x2 = (
        x1.detach() @ torch.randn(d, d, generator=gen, dtype=torch.float64) + torch.randn(n, d, generator=gen, dtype=torch.float64)
    ).requires_grad_()
    got = barlow_twins(x1, x2, lam)
    want = reference_barlow(x1, x2, lam)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    got_grads = torch.autograd.grad(got, (x1, x2))
    want_grads = torch.autograd.grad(want, (x1, x2))
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)


def test_barlow_twins_is_zero_for_one_view_of_decorrelated_dimensions_and_large_for_unrelated_views():
    x = torch.randn(64, 6, dtype=torch.float64)
    x, _ = torch.linalg.qr(x - x.mean(0))  # centred, orthogonal columns: uncorrelated dimensions
    assert barlow_twins(x, x, 1.0).item() == pytest.approx(0.0, abs=1e-3)
    unrelated = barlow_twins(x, torch.randn(64, 6, dtype=torch.float64), 1.0).item()
    assert unrelated > 4.0  # each of the 6 diagonal terms is near (1 - 0)^2


def test_barlow_twins_in_float32_matches_float64():
    gen = torch.Generator().manual_seed(3)
    x1, x2 = torch.randn(256, 48, generator=gen), torch.randn(256, 48, generator=gen)
    torch.testing.assert_close(barlow_twins(x1, x2, 5e-4), reference_barlow(x1.double(), x2.double(), 5e-4).float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("objective", ["barlow", "next_embed"])
@pytest.mark.parametrize("backbone", ["s5", "rssm"])
def test_barlow_term_reads_projected_features_and_a_detached_embedding(backbone, objective):
    """The model's Barlow term and all its parameter gradients equal the reference applied to
    projector(posterior features (h_t, z_t)) (barlow) or projector(h_t) on the steps that do not
    start an episode (next_embed), against encoder(obs).detach(): the embedding is a target only."""
    config = ONLY_BARLOW.replace(objective=objective)
    model = make(config, image=True, backbone=backbone)
    batch = sequence(3, 6, image=True)
    loss, metrics = model.loss(batch, sample=False)
    loss.backward()
    got = grads(model)
    model.zero_grad()

    _, _, feat, _ = model.observe(obs_of(batch), batch["action"], batch["is_first"], sample=False)  # (B, L, F)
    embed = model.encoder(obs_of(batch)).detach()  # (B, L, E)
    if objective == "barlow":
        pred, target = model.projector(feat).flatten(0, 1), embed.flatten(0, 1)
    else:
        keep = ~batch["is_first"]
        pred, target = model.projector(feat[..., : model.h_dim][keep]), embed[keep]
    want_loss = config.barlow_scale * reference_barlow(pred, target, config.barlow_lambda)
    want_loss.backward()
    want = grads(model)
    assert metrics[f"loss/{objective}"] == pytest.approx(want_loss.item() / config.barlow_scale, rel=1e-5)
    assert loss.item() == pytest.approx(want_loss.item(), rel=1e-5)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=name)
    assert model.decoder is None and "loss/image" not in metrics and "loss/probe_image" not in metrics
    for part in ("encoder", "posterior_net", "backbone", "projector"):  # the features learn, through the posterior
        assert any(got[n].abs().sum() > 0 for n in got if n.startswith(part + ".")), part


# ------------------------------------------------------------------------------------ the probe
@pytest.mark.parametrize("objective", ["barlow", "next_embed"])
@pytest.mark.parametrize("image", [False, True], ids=["vector", "image"])
def test_probe_gradients_reach_only_the_decoder(image, objective):
    model = make(ONLY_PROBE.replace(objective=objective), image=image)
    loss, metrics = model.loss(sequence(2, 8, image=image))
    loss.backward()
    for name, g in grads(model).items():
        if name.startswith("decoder."):
            continue
        assert torch.count_nonzero(g) == 0, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    assert ("loss/probe_image" in metrics) == image and "loss/probe_vector" in metrics
    assert {id(p) for p in model.probe_parameters()} == {id(p) for p in model.decoder.parameters()}
    assert make(TINY).probe_parameters() == []  # under reconstruction the decoder is the model's


def test_an_optimiser_step_on_the_probe_loss_leaves_the_world_model_bit_identical():
    model = make(ONLY_PROBE, image=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for seed in range(2):
        loss, _ = model.loss(sequence(2, 8, image=True, seed=seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all(n.startswith("decoder.") for n in moved), sorted(moved)


def test_the_probe_does_not_change_the_world_models_gradients():
    """The whole loss with the probe gives every non-decoder parameter the gradient it gets without it."""
    config = BARLOW.replace(width=48)  # the fitted width counts the probe's parameters: fix it
    with_probe = make(config, image=True)
    without = make(config.replace(probe=False), image=True)
    without.load_state_dict({k: v for k, v in with_probe.state_dict().items() if not k.startswith("decoder.")})
    batch = sequence(2, 8, image=True)
    loss, metrics = with_probe.loss(batch, sample=False)
    loss.backward()
    loss_without, metrics_without = without.loss(batch, sample=False)
    loss_without.backward()
    got, want = grads(with_probe), grads(without)
    assert set(got) - set(want) == {n for n in got if n.startswith("decoder.")}
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7, msg=name)
    probe = metrics["loss/probe_image"] + metrics["loss/probe_vector"]
    assert metrics["loss"] == pytest.approx(metrics_without["loss"] + probe, rel=1e-5)


def test_the_probe_decodes_features_and_no_probe_means_no_decoder():
    model = make(BARLOW, image=True)
    pred = model.decode(torch.randn(4, 2, model.feat_dim))
    assert pred["image"].shape == (4, 2, 64, 64, 3) and pred["vector"].shape == (4, 2, VEC)
    bare = make(BARLOW.replace(probe=False), image=True)
    assert not any(n.startswith("decoder.") for n, _ in bare.named_parameters())
    assert model.can_decode and not bare.can_decode
    with pytest.raises(ValueError, match="no decoder"):
        bare.decode(torch.randn(4, bare.feat_dim))


def test_probe_stride_picks_every_kth_step():
    """The probe's loss is the decoder's loss on steps 0, k, 2k, ... of each sequence."""
    config = ONLY_PROBE.replace(probe_stride=3)
    model = make(config)
    batch = sequence(2, 8, image=False)
    _, metrics = model.loss(batch, sample=False)
    _, _, feat, _ = model.observe(obs_of(batch), batch["action"], batch["is_first"], sample=False)
    pred = model.decoder(feat[:, ::3])["vector"]
    want = (pred - wm.symlog(batch["vector"][:, ::3])).pow(2).sum(-1).mean()
    assert metrics["loss/probe_vector"] == pytest.approx(want.item(), rel=1e-5)


# ------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("objective", ["reconstruction", "barlow", "next_embed"])
@pytest.mark.parametrize("image", [False, True], ids=["vector", "image"])
def test_each_objective_trains_a_tiny_model_end_to_end(objective, image):
    model = make(TINY.replace(objective=objective), image=image)
    batch = sequence(4, 8, image=image)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        loss, metrics = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(metrics)
    term = f"loss/{objective}" if objective != "reconstruction" else ("loss/image" if image else "loss/vector")
    for name in ("loss", term, "loss/reward"):
        first = np.mean([m[name] for m in history[:5]])
        last = np.mean([m[name] for m in history[-5:]])
        assert last < 0.8 * first, (name, first, last)


# ------------------------------------------------------------------------------------ bad input
def test_an_unknown_objective_is_a_value_error_naming_the_known_ones():
    for make_config in (
        lambda: wm.WorldModelConfig(objective="pixels"),
        lambda: wm.WorldModelConfig.preset("tiny", objective="pixels"),
        lambda: TINY.replace(objective="pixels"),
    ):
        with pytest.raises(ValueError, match="unknown world-model objective 'pixels'; known: reconstruction, barlow, next_embed"):
            make_config()
    with pytest.raises(ValueError, match="probe_stride must be >= 1"):
        TINY.replace(probe_stride=0)


# ------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(
    "objective, env, probe", [("barlow", "memory/distracting-8", "probe_image"), ("next_embed", "pomdp/cartpole-positions", "probe_vector")]
)
def test_memwm_train_runs_and_resumes_with_a_decoder_free_objective(tmp_path, objective, env, probe):
    import json

    from agents.cli import main

    run = tmp_path / "run"
    flags = [
        "--env",
        env,
        "--wm.objective",
        objective,
        "--run",
        str(run),
        "--preset",
        "tiny",
        "--num-envs",
        "2",
        "--prefill",
        "60",
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--train-ratio",
        "2",
        "--eval-every",
        "0",
        "--eval-episodes",
        "1",
        "--video-every",
        "0",
        "--log-every",
        "20",
        "--no-tensorboard",
        "--threads",
        "1",
    ]
    main(["train", "--steps", "120", *flags])
    main(["train", "--steps", "160", *flags])  # resumes from the checkpoint: the projector is part of the state
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    names = set().union(*records)
    assert {f"train/loss/{objective}", f"train/loss/{probe}"} <= names and "train/loss/image" not in names
    assert max(r["step"] for r in records) == 160
    if probe == "probe_image":  # the probe draws the imagination pictures
        assert list((run / "videos").glob("imagine*")), sorted(p.name for p in (run / "videos").iterdir())
