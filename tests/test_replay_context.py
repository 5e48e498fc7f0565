"""Train as you act: a replayed window sees the state the actor acted from (DreamerV3's replay context).

The contract, for every backbone under fixed weights and deterministic latents (modes): the features the
actor computes step by step over an episode equal the features the world-model loss computes on a replayed
window, one that starts mid-episode from its stored carry (recurrent backbones) or at the episode's start
(the Transformer, which stores no carry). The same window started from a reset state differs.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models as wm
from agents import train as T
from agents.config import TrainConfig
from agents.replay import Replay
from world_models.state import State

OBS = gym.spaces.Dict({"vector": gym.spaces.Box(-1, 1, (6,), np.float32)})
ACT = gym.spaces.Discrete(3)
EPISODE, WINDOW = 24, 10
RECURRENT = [b for b in wm.BACKBONES if b != "transformer"]


def _act(model: wm.WorldModel, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One episode acted step by step as DreamerAgent.act does, with the carry before each step stored:
    (episode of (T, ...) arrays, features (T, F)). `reward` holds the time index, to find a window's start."""
    g = torch.Generator().manual_seed(seed)
    vector = torch.rand(EPISODE, 6, generator=g) * 2 - 1  # (T, 6)
    action = torch.eye(3)[torch.randint(0, 3, (EPISODE,), generator=g)]  # (T, 3) taken after seeing step t
    is_first = torch.arange(EPISODE) == 0
    state, prev_action, carries, feats = model.initial_state(1), torch.zeros(1, 3), [], []
    with torch.no_grad():
        for t in range(EPISODE):
            carries.append(State(state.h, state.z, prev_action, state.mem).to_arrays())
            state, feat = model.step(state, prev_action, {"vector": vector[t : t + 1]}, is_first[t : t + 1], sample=False)
            feats.append(feat[0])
            prev_action = action[t : t + 1]
    episode = {
        "vector": vector.numpy(),
        "action": action.numpy(),
        "reward": np.arange(EPISODE, dtype=np.float32),
        "is_first": is_first.numpy(),
        "is_last": (torch.arange(EPISODE) == EPISODE - 1).numpy(),
        "is_terminal": np.zeros(EPISODE, bool),
    }
    if model.backbone_name != "transformer":
        episode.update({"carry/" + k: torch.cat([c[k] for c in carries]).numpy() for k in carries[0]})
    return episode, torch.stack(feats).numpy()


def _replayed_features(model: wm.WorldModel, batch: dict[str, np.ndarray]) -> np.ndarray:
    """Features (B, L, F) of the states the world-model loss reaches on a replayed batch (its imagination starts)."""
    with torch.no_grad():
        _, _, starts = model.loss(T.to_torch(batch, torch.device("cpu")), return_starts=True, sample=False)
    B, L = batch["reward"].shape
    return torch.cat([starts.h, starts.z], -1).reshape(B, L, -1).numpy()


@pytest.mark.parametrize("backbone", wm.BACKBONES)
def test_replayed_features_equal_the_features_acted_from(backbone, tmp_path):
    torch.manual_seed(0)
    model = wm.make(backbone, OBS, ACT, wm.WorldModelConfig.preset("tiny")).eval()
    episode, acted = _act(model, seed=1)
    Replay(capacity=10_000, directory=tmp_path).add_episode(episode)
    replay = Replay(capacity=10_000, directory=tmp_path, seed=2)  # the carry as read back from disk
    if backbone == "transformer":  # no carry: a window holds its episode from the start
        batch = replay.sample(4, WINDOW, from_starts=1.0, context=True)
    else:
        batch = replay.sample(16, WINDOW, context=True)
    offsets = batch["reward"][:, 0].astype(int)  # where each window starts in the episode
    if backbone == "transformer":
        assert (offsets == 0).all() and not any(k.startswith("context/") for k in batch)
    else:
        assert (offsets > 0).sum() >= 8 and (batch["is_first"][:, 0] == (offsets == 0)).all()
        assert all(v.dtype == np.float32 for k, v in batch.items() if k.startswith("context/"))
    expected = np.stack([acted[o : o + WINDOW] for o in offsets])  # (B, L, F)
    np.testing.assert_allclose(_replayed_features(model, batch), expected, atol=1e-4, rtol=1e-4)

    # planted failure: windows that start mid-episode from a reset state are not what the actor computed
    reset = _from_reset(batch) if backbone != "transformer" else replay.sample(16, WINDOW)
    offsets = reset["reward"][:, 0].astype(int)
    expected = np.stack([acted[o : o + WINDOW] for o in offsets])
    gap = np.abs(_replayed_features(model, reset) - expected).max(axis=(1, 2))  # (B,)
    assert (offsets > 0).any() and (gap[offsets > 0] > 1e-2).all()


def _from_reset(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same windows without their context: each starts from a reset state."""
    out = {k: v for k, v in batch.items() if not k.startswith("context/")}
    out["is_first"] = out["is_first"].copy()
    out["is_first"][:, 0] = True
    return out


def test_windows_without_a_carry_start_from_a_reset_beside_those_with_one():
    """An older replay file (no carry) still samples: its windows get zeros and is_first set."""
    torch.manual_seed(0)
    model = wm.make("s5", OBS, ACT, wm.WorldModelConfig.preset("tiny")).eval()
    with_carry, _ = _act(model, seed=1)
    old = {k: v for k, v in _act(model, seed=2)[0].items() if not k.startswith("carry/")}
    replay = Replay(capacity=10_000, seed=3)
    replay.add_episode(old)
    replay.add_episode(with_carry)
    batch = replay.sample(32, WINDOW, context=True)
    in_old = batch["vector"][:, 0, 0] == old["vector"][batch["reward"][:, 0].astype(int), 0]
    assert in_old.any() and (~in_old).any()
    assert batch["is_first"][in_old, 0].all() and (batch["context/h"][in_old] == 0).all()
    assert batch["context/cmem/s0"].shape == (32, *with_carry["carry/cmem/s0"].shape[1:])
    assert np.isfinite(_replayed_features(model, batch)).all()


def test_a_tiny_dreamer_run_stores_carries_and_trains_from_them(tmp_path, monkeypatch):
    seen = []  # per update: windows that start mid-episode from a stored carry
    loss = wm.WorldModel.loss

    def spy(self, batch, *args, **kwargs):
        if "context/h" in batch:
            seen.append(int((~batch["is_first"][:, 0]).sum()))
        return loss(self, batch, *args, **kwargs)

    monkeypatch.setattr(wm.WorldModel, "loss", spy)
    fast = dict(preset="tiny", num_envs=2, prefill=60, batch_size=4, seq_len=8, train_ratio=4.0, eval_every=0, eval_episodes=1)
    fast.update(video_every=-1, log_every=50, checkpoint_every=1000, tensorboard=False, threads=1)
    run = tmp_path / "s5"
    T.train(TrainConfig(env="memory/recall-k8", backbone="s5", steps=300, run=str(run), **fast))
    episode = np.load(sorted((run / "replay").glob("ep-*.npz"))[0])
    carry = {k: episode[k] for k in episode.files if k.startswith("carry/")}
    assert {"carry/h", "carry/z", "carry/action", "carry/cmem/s0"} <= set(carry)
    assert all(v.dtype == np.float32 and len(v) == len(episode["reward"]) for v in carry.values())
    assert np.abs(carry["carry/h"][1:]).max() > 0  # the state the actor held, not a blank one
    assert seen and sum(seen) > 0
