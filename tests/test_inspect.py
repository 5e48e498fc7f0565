"""What a backbone remembers (world_models/retention.py) and `memwm inspect` (agents/commands/inspect.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from world_models.retention import Episode, fit_linear_probe, probe_predict, retention_curve, state_half_lives

VECTOR = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)})


def tiny(backbone: str, **overrides):
    torch.manual_seed(0)
    config = world_models.WorldModelConfig.preset("tiny")
    for k, v in overrides.items():
        setattr(config, k, v)
    return world_models.make(backbone, VECTOR, gym.spaces.Discrete(3), config)


def reference_half_lives(backbone: str, wm) -> list[np.ndarray]:
    """Half-lives ln 2 / (dt * -Re(lambda)) straight from each layer's parameters, in float64."""
    out = []
    for block in wm.backbone.blocks:
        for layer in block.layers:
            p = {k: v.detach().double().numpy() for k, v in layer.named_parameters()}
            if backbone == "s4":  # dt (H,), Re(A) = -exp(log_A_real) (H, N)
                rate = np.exp(p["log_dt"])[:, None] * np.exp(p["log_A_real"])
            elif backbone == "s5":  # dt (P,), Re(Lambda) = -exp(Lambda_re_log) (P,)
                rate = np.exp(p["log_dt"]) * np.exp(p["Lambda_re_log"])
            else:  # mamba at a zero input: dt = softplus(dt_proj.bias) (E,), A = -exp(A_log) (E, N)
                rate = np.log1p(np.exp(p["dt_proj.bias"]))[:, None] * np.exp(p["A_log"])
            out.append(np.log(2) / rate.reshape(-1))
    return out


@pytest.mark.parametrize("backbone", ["s4", "s5", "mamba"])
def test_half_lives_agree_with_the_layers_parameters(backbone):
    wm = tiny(backbone)
    with torch.no_grad():  # trained parameters are not the initial ones: move them
        for name, p in wm.backbone.named_parameters():
            if name.endswith(("log_dt", "log_A_real", "Lambda_re_log", "A_log", "dt_proj.bias")):
                p.add_(torch.randn_like(p) * 0.3)
    got = state_half_lives(wm.backbone)
    expected = reference_half_lives(backbone, wm)
    assert len(got) == len(expected) == len(wm.backbone.ssm_layers)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-9)
    if backbone != "mamba":  # the layer's own float32 transition decays at that rate
        a = wm.backbone.ssm_layers[0].discretize()[0].detach().abs().double().reshape(-1).numpy()
        np.testing.assert_allclose(a ** got[0].numpy(), 0.5, rtol=1e-2)


def test_mamba_half_lives_at_the_median_step_size_it_took_on_real_inputs():
    from world_models.retention import recorded_step_sizes

    wm = tiny("mamba").eval()
    rng = np.random.default_rng(5)
    obs = {"vector": torch.as_tensor(rng.normal(size=(3, 9, 4)), dtype=torch.float32)}
    action = torch.nn.functional.one_hot(torch.as_tensor(rng.integers(0, 3, (3, 9))), 3).float()
    is_first = torch.zeros(3, 9, dtype=torch.bool)
    is_first[:, 0] = True
    seen = {}  # the reference: dt_proj's raw outputs, kept by the test's own hooks
    layers = list(wm.backbone.ssm_layers)
    hooks = [
        layer.dt_proj.register_forward_hook(lambda m, i, o, k=k: seen.setdefault(k, []).append(o.detach()))
        for k, layer in enumerate(layers)
    ]
    with torch.no_grad(), recorded_step_sizes(wm.backbone) as step_sizes:
        wm.observe(obs, action, is_first)
    for hook in hooks:
        hook.remove()
    got = state_half_lives(wm.backbone, step_sizes)
    for k, layer in enumerate(layers):
        raw = torch.cat([o.reshape(-1, o.shape[-1]) for o in seen[k]]).double().numpy()  # (steps, E)
        dt = np.median(np.log1p(np.exp(raw)), axis=0)  # softplus, each channel's median (an odd count of steps)
        expected = np.log(2) / (dt[:, None] * np.exp(layer.A_log.detach().double().numpy())).reshape(-1)
        np.testing.assert_allclose(got[k].numpy(), expected, rtol=1e-9)
    assert not any(h.numpy().tolist() == e.numpy().tolist() for h, e in zip(got, state_half_lives(wm.backbone)))


@pytest.mark.parametrize("backbone", ["rssm", "transformer"])
def test_backbones_without_ssm_states_have_no_timescales(backbone):
    assert state_half_lives(tiny(backbone).backbone) == []


def toy_episodes(rng, n: int, T: int, F: int, planted: bool, classes: int = 2) -> list[Episode]:
    """Random features; with `planted`, dimension 0 holds the cue from its step on."""
    out = []
    for _ in range(n):
        cue, step = int(rng.integers(classes)), int(rng.integers(0, 3))
        x = rng.normal(size=(T, F))
        if planted:
            x[step:, 0] += 12.0 * cue  # 6 noise std apart: no overlap between classes
        out.append(Episode(torch.as_tensor(x, dtype=torch.float32), cue, step))
    return out


def test_probe_reads_a_planted_cue_perfectly_and_a_shuffled_one_at_chance():
    rng = np.random.default_rng(0)
    train, test = toy_episodes(rng, 200, 8, 6, True), toy_episodes(rng, 400, 8, 6, True)
    curve = retention_curve(train, test, classes=2, max_delay=4)
    assert curve["delay"] == [0, 1, 2, 3, 4] and curve["accuracy"] == [1.0] * 5
    assert curve["test_episodes"][0] == 400

    def shuffled(episodes):  # the labels no longer belong to the features that hold a planted cue
        return [Episode(e.features, int(c), e.cue_step) for e, c in zip(episodes, rng.permutation([e.cue for e in episodes]))]

    curve = retention_curve(shuffled(train), shuffled(test), classes=2, max_delay=4)
    assert all(abs(a - 0.5) < 0.1 for a in curve["accuracy"]), curve["accuracy"]
    assert abs(curve["chance"] - 0.5) < 0.1


def test_linear_probe_is_least_squares_on_one_hot_targets():
    rng = np.random.default_rng(1)
    x, y = torch.randn(50, 3, dtype=torch.float64), torch.as_tensor(rng.integers(0, 3, 50))
    W, mean, std = fit_linear_probe(x, y, 3, ridge=0.0)
    z = np.concatenate([((x - mean) / std).numpy(), np.ones((50, 1))], 1)
    expected = np.linalg.lstsq(z, np.eye(3)[y.numpy()], rcond=None)[0]
    np.testing.assert_allclose(W.numpy(), expected, rtol=1e-6, atol=1e-8)
    assert torch.equal(probe_predict((W, mean, std), x), torch.as_tensor((z @ expected).argmax(-1)))


def save_train_run(tmp_path, env: str, backbone: str, agent: str = "dreamer"):
    from agents import checkpoint, ppo_agent
    from agents.config import TrainConfig, save_yaml
    from agents.runs import build_dreamer, identity

    config = TrainConfig(
        env=env, backbone=backbone, preset="tiny", run=str(tmp_path / "run"), agent=agent, wm=world_models.WorldModelConfig.preset("tiny")
    )
    if agent == "ppo":
        state, ident = {"agent": ppo_agent.build(config, torch.device("cpu")).state_dict()}, ppo_agent.identity(config)
    else:
        state, ident = {"agent": build_dreamer(config, torch.device("cpu"))[0].state_dict()}, identity(config)
    save_yaml(config, tmp_path / "run" / "config.yaml")
    checkpoint.save(tmp_path / "run" / "checkpoints", 3, {**state, "identity": ident, "counters": {"step": 3}})
    return tmp_path / "run"


def test_inspect_writes_timescales_and_retention_of_a_dreamer_run(tmp_path):
    from agents.commands.inspect import inspect, load_memory

    run = save_train_run(tmp_path, "memory/distracting-8", "s5")
    written = inspect(run=run, episodes=8, device="cpu")
    assert sorted(p.name for p in written) == ["retention.json", "retention.png", "timescales.json", "timescales.png"]
    record = json.loads((run / "inspect" / "timescales.json").read_text())
    memory = load_memory(run, torch.device("cpu"))
    for layer, lives in zip(record["layers"], state_half_lives(memory.backbone)):
        assert layer["counts"] == np.histogram(lives.numpy(), record["edges"])[0].tolist()
        assert math.isclose(layer["quantiles"]["median"], float(np.median(lives.numpy())), rel_tol=1e-9)
    curve = json.loads((run / "inspect" / "retention.json").read_text())
    assert curve["delay"][0] == 0 and curve["train_episodes"][0] == 4 and curve["test_episodes"][0] == 4
    assert all(a is None or 0 <= a <= 1 for a in curve["accuracy"])


def test_inspect_reads_a_ppo_agents_memory(tmp_path):
    from agents.commands.inspect import inspect

    run = save_train_run(tmp_path, "memory/distracting-8", "s4", agent="ppo")
    written = inspect(run=run, episodes=4, max_delay=3, device="cpu", out=tmp_path / "out")
    assert {p.name for p in written} >= {"timescales.json", "retention.json"}
    assert len(json.loads((tmp_path / "out" / "retention.json").read_text())["delay"]) == 4


def test_inspect_records_mambas_step_sizes_on_a_task_without_a_cue(tmp_path):
    from agents.commands.inspect import inspect

    run = save_train_run(tmp_path, "pomdp/cartpole-positions", "mamba")
    written = inspect(run=run, episodes=4, device="cpu")
    assert sorted(p.name for p in written) == ["timescales.json", "timescales.png"]  # no cue: no retention
    record = json.loads((run / "inspect" / "timescales.json").read_text())
    assert record["step_size"].startswith("median") and record["episodes"] == 4


def test_inspect_bad_input_is_one_line(tmp_path):
    run = save_train_run(tmp_path, "pomdp/cartpole-positions", "rssm")  # no SSM state, no cue
    (tmp_path / "empty").mkdir()
    for target, message in ((run, "nothing to inspect"), (tmp_path / "empty", "no world model")):
        proc = subprocess.run(
            [sys.executable, "-m", "agents.cli", "inspect", "--run", str(target), "--device", "cpu"], capture_output=True, text=True
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
