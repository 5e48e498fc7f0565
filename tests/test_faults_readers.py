"""Readers that survive bad files: unreadable replay files are skipped and counted, a torn metrics line is
ignored, a corrupt checkpoint falls back, and nothing loadable is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents import checkpoint
from agents.logger import Logger, read_evals, read_metrics
from agents.replay import Replay


def _episode(length, ep_id):
    t = np.arange(length)
    return {
        "vector": np.stack([np.full(length, ep_id, np.float32), t.astype(np.float32)], 1),
        "action": np.eye(2, dtype=np.float32)[t % 2],
        "reward": np.float32(ep_id) + np.zeros(length, np.float32),
        "is_first": t == 0,
        "is_last": t == length - 1,
        "is_terminal": t == length - 1,
    }


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_an_episode"])
def test_replay_skips_an_unreadable_episode_file_says_which_counts_it_and_goes_on(tmp_path, damage):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 9, size=5)
    writer = Replay(1000, tmp_path)
    for i, n in enumerate(lengths):
        writer.add_episode(_episode(int(n), i))
    files = sorted(tmp_path.glob("ep-*.npz"))
    bad = files[2]
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        np.savez(bad, reward=np.zeros(3), action=np.zeros((4, 2)))  # a readable .npz that is not an episode
    messages = []
    reader = Replay(1000, tmp_path, log=messages.append)
    assert reader.skipped_files == 1
    assert len(messages) == 1 and str(bad) in messages[0] and "\n" not in messages[0]
    assert [int(e["vector"][0, 0]) for e in reader.episodes] == [0, 1, 3, 4]
    assert len(reader) == int(lengths.sum() - lengths[2])
    assert reader.num_episodes == 5  # the next file is written past every file on disk, the unreadable one too
    reader.add_episode(_episode(2, 5))
    assert bad.exists() and len(list(tmp_path.glob("ep-*.npz"))) == 6


def test_replay_fills_capacity_from_earlier_files_when_a_newest_one_is_unreadable(tmp_path):
    writer = Replay(1000, tmp_path)
    for i in range(4):
        writer.add_episode(_episode(5, i))
    newest = sorted(tmp_path.glob("ep-*.npz"))[-1]
    newest.write_bytes(newest.read_bytes()[:40])
    reader = Replay(10, tmp_path, log=lambda m: None)
    assert reader.skipped_files == 1 and [int(e["vector"][0, 0]) for e in reader.episodes] == [1, 2]


def test_a_torn_last_metrics_line_is_ignored_by_readers_and_ended_before_the_next_write(tmp_path):
    logger = Logger(tmp_path, tensorboard=False)
    for step, value in ((10, 1.5), (20, 2.5)):
        logger.scalars({"eval/return": value, "eval/success": value / 4})
        logger.write(step)
    logger.close()
    path = tmp_path / "metrics.jsonl"
    whole = path.read_text()
    path.write_text(whole + '{"step": 30, "eval/ret')  # killed mid-line
    assert [e["return"] for e in read_evals(tmp_path)] == [1.5, 2.5]
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20]
    logger = Logger(tmp_path, tensorboard=False)  # a resume appends after the last whole line
    logger.scalar("eval/return", 3.5)
    logger.write(40)
    logger.close()
    assert path.read_text() == whole + json.dumps({"step": 40, "eval/return": 3.5}) + "\n"
    assert [e["step"] for e in read_evals(tmp_path)] == [10, 20, 40]


def test_a_corrupt_newest_checkpoint_falls_back_and_nothing_loadable_is_one_line(tmp_path):
    weights = torch.randn(5)
    checkpoint.save(tmp_path, 1, {"w": weights})
    newest = checkpoint.save(tmp_path, 2, {"w": weights + 1})
    newest.write_bytes(newest.read_bytes()[:50])
    payload, path = checkpoint.load(tmp_path, log=lambda m: None)
    assert path.name == "ckpt-000000001.pt" and torch.equal(payload["w"], weights)
    path.write_bytes(b"")
    with pytest.raises(RuntimeError) as nothing:
        checkpoint.load(tmp_path, log=lambda m: None)
    assert "\n" not in str(nothing.value) and "ckpt-000000001.pt" in str(nothing.value)


def test_a_resume_drops_the_episodes_written_after_its_checkpoint(tmp_path):
    """The process that was stopped may have stored episodes after the checkpoint a resume starts from: the replay is
    the checkpoint's (they are deleted, and their indices are written again)."""
    writer = Replay(1000, tmp_path)
    for i in range(5):
        writer.add_episode(_episode(4 + i, i))
    resumed = Replay(1000, tmp_path, resume_at=3)
    assert [int(e["vector"][0, 0]) for e in resumed.episodes] == [0, 1, 2] and resumed.num_episodes == 3
    assert sorted(p.name for p in tmp_path.glob("ep-*.npz")) == [f"ep-{i:07d}-len{4 + i}.npz" for i in range(3)]
    resumed.add_episode(_episode(9, 7))
    assert (tmp_path / "ep-0000003-len9.npz").exists()


@pytest.mark.parametrize("text", [b"env: [unclosed\n", bytes(range(256))])
def test_a_damaged_config_yaml_is_one_line_naming_it(tmp_path, text):
    from agents.config import load_yaml

    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    with pytest.raises(ValueError) as damaged:
        load_yaml(path)
    assert "\n" not in str(damaged.value) and str(path) in str(damaged.value) and "cannot be read" in str(damaged.value)


def test_the_episode_reader_of_imagine_and_probes_skips_an_unreadable_file(tmp_path, capsys):
    from envs.dataset import load_episodes

    writer = Replay(1000, tmp_path)
    for i in range(3):
        writer.add_episode(_episode(4, i))
    bad = sorted(tmp_path.glob("ep-*.npz"))[1]
    bad.write_bytes(bad.read_bytes()[:30])
    assert [int(e["vector"][0, 0]) for e in load_episodes(tmp_path)] == [0, 2]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0]
