"""The open-loop rollout (world_models/imagine.py), world-model files (world_models/saving.py), run folders
(agents/runs.py) and `memwm imagine` (agents/commands/imagine.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from agents.runs import load_run_world_model
from world_models.imagine import action_vectors, decode_frames, episodes_to_batch, open_loop
from world_models.saving import load_world_model, save_world_model

IMAGE_SPACE = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
ACT_SPACE = gym.spaces.Discrete(3)


def random_episode(rng: np.random.Generator, T: int, query: int) -> dict[str, np.ndarray]:
    is_first = np.zeros(T, bool)
    is_first[0] = True
    phase = np.zeros(T, np.int8)
    phase[query:] = 1
    return {
        "image": rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8),
        "action": rng.integers(0, 3, T),
        "reward": rng.normal(size=T).astype(np.float32),
        "is_first": is_first,
        "is_last": np.zeros(T, bool),
        "is_terminal": np.zeros(T, bool),
        "phase": phase,
    }


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    config = world_models.WorldModelConfig.preset("tiny")
    return {name: world_models.make(name, IMAGE_SPACE, ACT_SPACE, config).eval() for name in world_models.BACKBONES}


def test_action_vectors_one_hot_discrete_and_pass_box_through():
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 5, 13)
    assert np.array_equal(action_vectors(ints, gym.spaces.Discrete(5)), np.eye(5, dtype=np.float32)[ints])
    multi = rng.integers(0, 3, (7, 2))
    got = action_vectors(multi, gym.spaces.MultiDiscrete([3, 3]))
    assert np.array_equal(got, np.concatenate([np.eye(3)[multi[:, 0]], np.eye(3)[multi[:, 1]]], -1))
    box = rng.normal(size=(6, 2)).astype(np.float32)
    assert np.array_equal(action_vectors(box, gym.spaces.Box(-1, 1, (2,))), box)
    with pytest.raises(ValueError, match=r"discrete actions must lie in \[0, 5\)"):
        action_vectors(np.array([0, 5]), gym.spaces.Discrete(5))


def test_episodes_to_batch_stacks_and_flags_starts():
    rng = np.random.default_rng(1)
    eps = [random_episode(rng, 9, 4), random_episode(rng, 7, 3)]
    batch = episodes_to_batch(eps, ACT_SPACE)
    assert batch["image"].shape == (2, 7, 64, 64, 3) and batch["image"].dtype == torch.uint8
    assert torch.equal(batch["image"][1], torch.as_tensor(eps[1]["image"]))
    assert batch["action"].shape == (2, 7, 3) and torch.equal(batch["action"][0].argmax(-1), torch.as_tensor(eps[0]["action"][:7]))
    assert batch["is_first"][:, 0].all() and not batch["is_first"][:, 1:].any()
    with pytest.raises(ValueError, match="at least 8 steps"):
        episodes_to_batch(eps, ACT_SPACE, length=8)


@pytest.mark.parametrize("backbone", world_models.BACKBONES)
def test_open_loop_equals_observing_the_context_then_stepping_the_prior_with_the_episode_actions(tiny_models, backbone):
    wm = tiny_models[backbone]
    rng = np.random.default_rng(2)
    batch = episodes_to_batch([random_episode(rng, 12, 5) for _ in range(2)], ACT_SPACE)
    C, H = 5, 6
    roll = open_loop(wm, batch, C, H)
    assert roll.features.shape == (2, C + H, wm.feat_dim)
    with torch.no_grad():  # the reference: observe, then one img_step per action, modes throughout
        _, _, feat, state = wm.observe({"image": batch["image"][:, :C]}, batch["action"][:, :C], batch["is_first"][:, :C], sample=False)
        expected = [feat]
        for i in range(H):
            state, f, _ = wm.img_step(state, batch["action"][:, C - 1 + i], sample=False)
            expected.append(f[:, None])
    torch.testing.assert_close(roll.features, torch.cat(expected, 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(roll.actions[:, : C + H - 1], batch["action"][:, : C + H - 1])  # the driving actions, aligned with the steps
    assert roll.actions.shape[1] == roll.features.shape[1] and not roll.actions[:, -1].any()


def test_open_loop_rejects_a_horizon_past_the_recorded_actions(tiny_models):
    rng = np.random.default_rng(3)
    batch = episodes_to_batch([random_episode(rng, 10, 5)], ACT_SPACE)
    with pytest.raises(ValueError, match=r"horizon must be in \[0, 4\]"):
        open_loop(tiny_models["s5"], batch, 6, 5)
    with pytest.raises(ValueError, match=r"context must be in \[1, 10\]"):
        open_loop(tiny_models["s5"], batch, 0, 5)


@pytest.mark.parametrize("backbone", ["rssm", "s5"])
def test_saved_world_model_loads_with_the_same_outputs(tmp_path, tiny_models, backbone):
    wm = tiny_models[backbone]
    config = world_models.WorldModelConfig.preset("tiny")
    save_world_model(
        tmp_path / backbone / "model.pt", wm, backbone=backbone, config=config, env="memory/x", obs_space=IMAGE_SPACE, act_space=ACT_SPACE
    )
    loaded = load_world_model(tmp_path / backbone / "model.pt")
    assert load_run_world_model(tmp_path / backbone).path == loaded.path  # a compare backbone's folder
    assert (loaded.backbone, loaded.env, loaded.act_space) == (backbone, "memory/x", ACT_SPACE)
    rng = np.random.default_rng(4)
    batch = episodes_to_batch([random_episode(rng, 8, 4)], ACT_SPACE)
    a, b = open_loop(wm, batch, 4, 4), open_loop(loaded.wm, batch, 4, 4)
    torch.testing.assert_close(decode_frames(wm, a.features), decode_frames(loaded.wm, b.features))


def test_load_world_model_names_what_a_run_folder_lacks(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_run_world_model(tmp_path / "nothing")
    (tmp_path / "cmp" / "s5").mkdir(parents=True)
    (tmp_path / "cmp" / "s5" / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"compare backbones \['s5'\]"):
        load_run_world_model(tmp_path / "cmp")


def test_imagine_on_a_compare_backbone_writes_the_video_and_a_tensorboard_event(tmp_path):
    import imageio.v2 as imageio

    import envs
    from agents.commands.imagine import imagine
    from world_models.video import BORDER, GAP, GREEN, RED

    # a compare run's layout: RUN/data/eval episodes beside RUN/<backbone>/model.pt
    envs.collect_episodes("memory/doors-keys-3", 3, "scripted", tmp_path / "data" / "eval", seed=5)
    config, act_space = world_models.WorldModelConfig.preset("tiny"), gym.spaces.Discrete(4)
    wm = world_models.make("s5", IMAGE_SPACE, act_space, config)
    save_world_model(
        tmp_path / "s5" / "model.pt",
        wm,
        backbone="s5",
        config=config,
        env="memory/doors-keys-3",
        obs_space=IMAGE_SPACE,
        act_space=act_space,
    )
    path, png = imagine(run=tmp_path / "s5", context=5, horizon=7, episodes=2, out=tmp_path / "v.gif", device="cpu")
    assert png == tmp_path / "v.png" and png.exists()  # reward and continue over time, beside the video
    frames = np.stack(imageio.mimread(path))[..., :3]
    cell = 64 + 2 * BORDER
    assert frames.shape == (5 + 7, 3 * cell + 2 * GAP, 2 * cell + GAP, 3)  # rows truth/model/error, 2 columns
    assert tuple(frames[4, 0, 0]) == GREEN and tuple(frames[5, 0, 0]) == RED  # context, then imagination
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "s5").iterdir())
    with pytest.raises(ValueError, match=r"--episodes must be in \[1, 6\]"):
        imagine(run=tmp_path / "s5", episodes=7)
    with pytest.raises(ValueError, match="holds no policy"):
        imagine(run=tmp_path / "s5", episodes=2, policy=True, device="cpu")


def test_imagine_on_a_train_checkpoint_reads_its_world_model(tmp_path):
    """A `memwm train` run's checkpoint (agents/checkpoint.py format) loads without world_models importing agents."""
    import imageio.v2 as imageio

    from agents import checkpoint
    from agents.config import TrainConfig
    from agents.commands.imagine import imagine
    from agents.runs import build_dreamer, identity

    config = TrainConfig(
        env="memory/doors-keys-3",
        backbone="rssm",
        preset="tiny",
        run=str(tmp_path / "run"),
        wm=world_models.WorldModelConfig.preset("tiny"),
    )
    agent, _ = build_dreamer(config, torch.device("cpu"))
    checkpoint.save(tmp_path / "run" / "checkpoints", 7, {"agent": agent.state_dict(), "identity": identity(config)})
    loaded = load_run_world_model(tmp_path / "run")
    assert loaded.backbone == "rssm" and loaded.env == "memory/doors-keys-3"
    for key, value in agent.wm.state_dict().items():
        assert torch.equal(loaded.wm.state_dict()[key], value), key
    path, png = imagine(run=tmp_path / "run", context=4, horizon=3, episodes=1, device="cpu")
    assert (path, png) == (tmp_path / "run" / "videos" / "imagine.gif", tmp_path / "run" / "videos" / "imagine.png")
    assert len(imageio.mimread(path)) == 4 + 3
