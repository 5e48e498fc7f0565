"""Imagination figures (world_models/figures.py) and `memwm imagine` on vector runs (agents/commands/imagine.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from agents.imagination import MAX_DIMS, imagine_batch, write_imagination
from world_models.figures import figure_image, imagination_figure, top_variance_dims
from world_models.imagine import episodes_to_batch, open_loop

ACT_SPACE = gym.spaces.Discrete(3)


def vector_episode(rng: np.random.Generator, T: int, K: int, scale: np.ndarray) -> dict[str, np.ndarray]:
    is_first, is_terminal = np.zeros(T, bool), np.zeros(T, bool)
    is_first[0], is_terminal[-1] = True, True
    return {
        "vector": (rng.normal(size=(T, K)) * scale).astype(np.float32),
        "action": rng.integers(0, 3, T),
        "reward": rng.normal(size=T).astype(np.float32),
        "is_first": is_first,
        "is_last": is_terminal.copy(),
        "is_terminal": is_terminal,
    }


def vector_model(K: int, backbone: str = "s5"):
    torch.manual_seed(0)
    space = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (K,), np.float32)})
    return world_models.make(backbone, space, ACT_SPACE, world_models.WorldModelConfig.preset("tiny")).eval()


def lines(ax) -> tuple[np.ndarray, np.ndarray]:
    truth, model = ax.get_lines()
    return np.asarray(truth.get_ydata(), float), np.asarray(model.get_ydata(), float)


@pytest.mark.parametrize("backbone", ["s5", "rssm"])
def test_vector_figure_panels_hold_the_models_outputs(backbone):
    K, B, C, H = 5, 3, 4, 6
    wm = vector_model(K, backbone)
    rng = np.random.default_rng(0)
    batch = episodes_to_batch([vector_episode(rng, C + H, K, np.ones(K)) for _ in range(B)], ACT_SPACE)
    result = imagine_batch(wm, batch, C, H)
    fig = imagination_figure(result.panels, C)
    axes = np.array(fig.axes).reshape(K + 2, B)  # rows: every dimension, reward, continue; a column per episode
    with torch.no_grad():  # the reference: the same rollout, decoded and read by the heads here
        roll = open_loop(wm, batch, C, H)
        features = roll.features
        vector, reward, cont = wm.decode(features)["vector"], wm.reward(features, roll.actions), wm.cont(features)
    for b in range(B):
        for k in range(K):
            truth, model = lines(axes[k, b])
            np.testing.assert_allclose(truth, batch["vector"][b, :, k].numpy())
            np.testing.assert_allclose(model, vector[b, :, k].numpy(), rtol=1e-5, atol=1e-6)
        truth, model = lines(axes[K, b])
        np.testing.assert_allclose(truth, batch["reward"][b].numpy())
        np.testing.assert_allclose(model, reward[b].numpy(), rtol=1e-5, atol=1e-6)
        truth, model = lines(axes[K + 1, b])
        np.testing.assert_allclose(truth, 1.0 - batch["is_terminal"][b].float().numpy())
        np.testing.assert_allclose(model, cont[b].numpy(), rtol=1e-5, atol=1e-6)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == [f"obs[{k}]" for k in range(K)] + ["reward", "continue"]
    shaded = [p for p in axes[0, 0].patches]  # the context span covers steps 0..C-1
    assert len(shaded) == 1 and np.isclose(shaded[0].get_x() + shaded[0].get_width(), C - 0.5)
    image = figure_image(fig)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_many_dimensions_show_the_ones_of_largest_variance():
    K = 40
    scale = np.full(K, 0.01)
    loud = np.array([3, 7, 8, 11, 15, 20, 21, 22, 25, 27, 30, 31, 33, 36, 38, 39])
    scale[loud] = np.linspace(1, 5, len(loud))
    rng = np.random.default_rng(1)
    episodes = [vector_episode(rng, 12, K, scale) for _ in range(2)]
    assert np.array_equal(top_variance_dims(np.stack([e["vector"] for e in episodes]), MAX_DIMS), loud)
    result = imagine_batch(vector_model(K), episodes_to_batch(episodes, ACT_SPACE), 5, 7)
    fig = imagination_figure(result.panels, 5)
    assert len(fig.axes) == (MAX_DIMS + 2) * 2
    assert [p.label for p in result.panels] == [f"obs[{k}]" for k in loud] + ["reward", "continue"]
    np.testing.assert_allclose(lines(fig.axes[2 * 4])[0], episodes[0]["vector"][:, loud[4]])  # row 4, column 0


def test_image_runs_get_the_video_and_a_reward_and_continue_figure(tmp_path):
    from agents.logger import Logger

    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    torch.manual_seed(0)
    wm = world_models.make("s5", space, ACT_SPACE, world_models.WorldModelConfig.preset("tiny")).eval()
    rng = np.random.default_rng(2)
    T = 6
    episodes = [{**vector_episode(rng, T, 1, np.ones(1)), "image": rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8)} for _ in range(2)]
    for ep in episodes:
        del ep["vector"]
    logger = Logger(tmp_path, tensorboard=True)
    try:
        written = write_imagination(wm, episodes_to_batch(episodes, ACT_SPACE), 3, 3, logger, step=12)
    finally:
        logger.close()
    assert sorted(p.name for p in written) == ["imagine-open_loop-000000012.gif", "imagine-open_loop_plot-000000012.png"]
    assert all(p.exists() for p in written)
    result = imagine_batch(wm, episodes_to_batch(episodes, ACT_SPACE), 3, 3)
    assert [p.label for p in result.panels] == ["reward", "continue"] and result.frames.shape[0] == T


def test_imagine_command_on_a_vector_train_run_writes_the_figure_and_tensorboard(tmp_path):
    import imageio.v2 as imageio
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents import checkpoint
    from agents.commands.imagine import imagine
    from agents.config import TrainConfig, save_yaml
    from agents.runs import build_dreamer, identity

    config = TrainConfig(
        env="pomdp/cartpole-positions",
        backbone="s5",
        preset="tiny",
        run=str(tmp_path / "run"),
        wm=world_models.WorldModelConfig.preset("tiny"),
    )
    agent, _ = build_dreamer(config, torch.device("cpu"))
    save_yaml(config, tmp_path / "run" / "config.yaml")
    checkpoint.save(tmp_path / "run" / "checkpoints", 5, {"agent": agent.state_dict(), "identity": identity(config)})
    written = imagine(run=tmp_path / "run", context=4, horizon=5, episodes=2, device="cpu")
    assert written == [tmp_path / "run" / "videos" / "imagine.png"]  # no frames to draw: no video
    assert imageio.imread(written[0]).ndim == 3
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert "imagine/open_loop_plot" in events.Tags()["images"]
    # the trained policy drives imagination past the recorded actions
    written = imagine(run=tmp_path / "run", context=4, horizon=40, episodes=1, policy=True, device="cpu", out=tmp_path / "p.png")
    assert written == [tmp_path / "p.png"]


def test_train_on_a_vector_task_writes_the_imagination_figure_and_names_it(tmp_path, capsys):
    from agents.cli import main

    run = tmp_path / "run"
    main(
        [
            "train",
            "--env",
            "pomdp/cartpole-positions",
            "--backbone",
            "s5",
            "--steps",
            "96",
            "--run",
            str(run),
            "--preset",
            "tiny",
            "--num-envs",
            "2",
            "--prefill",
            "40",
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
            "50",
            "--threads",
            "1",
        ]
    )
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["imagine-open_loop_plot-000000096.png"]
    assert f"videos in {run / 'videos'}" in capsys.readouterr().out


def test_imagine_on_a_ppo_run_says_in_one_line_that_it_learns_no_world_model(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from agents import checkpoint, ppo_agent
    from agents.config import TrainConfig, save_yaml

    config = TrainConfig(
        env="pomdp/cartpole-positions",
        backbone="s5",
        agent="ppo",
        preset="tiny",
        run=str(tmp_path / "run"),
        wm=world_models.WorldModelConfig.preset("tiny"),
    )
    save_yaml(config, tmp_path / "run" / "config.yaml")
    checkpoint.save(
        tmp_path / "run" / "checkpoints",
        4,
        {
            "agent": ppo_agent.build(config, torch.device("cpu")).state_dict(),
            "identity": ppo_agent.identity(config),
            "counters": {"step": 4},
        },
    )
    proc = subprocess.run(
        [sys.executable, "-m", "agents.cli", "imagine", "--run", str(tmp_path / "run"), "--policy"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "learns no world model" in proc.stderr


def test_episode_starts_inside_a_window_are_marked_in_every_panel():
    K, C, H = 3, 4, 6
    rng = np.random.default_rng(3)
    episodes = [vector_episode(rng, C + H, K, np.ones(K)) for _ in range(2)]
    episodes[1]["is_first"][7] = True  # a replayed window that runs into the next episode
    result = imagine_batch(vector_model(K), episodes_to_batch(episodes, ACT_SPACE), C, H)
    fig = imagination_figure(result.panels, C, starts=result.starts)
    axes = np.array(fig.axes).reshape(K + 2, 2)
    for r in range(K + 2):
        assert len(axes[r, 0].get_lines()) == 2  # truth and model only
        marks = axes[r, 1].get_lines()[2:]
        assert [float(m.get_xdata()[0]) for m in marks] == [6.5]
