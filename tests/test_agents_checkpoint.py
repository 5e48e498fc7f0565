"""Checkpoints: atomic, last two kept, corrupt falls back, identity mismatch is one clear error."""

import random

import numpy as np
import pytest
import torch

from agents import checkpoint


def _payload(step):
    return {"step": step, "weights": torch.full((3,), float(step)), "identity": {"env": "a", "wm": {"hidden": 8}}}


def test_last_two_are_kept_and_newest_is_loaded(tmp_path):
    for step in (10, 20, 30):
        checkpoint.save(tmp_path, step, _payload(step))
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["ckpt-000000020.pt", "ckpt-000000030.pt"]
    payload, path = checkpoint.load(tmp_path)
    assert payload["step"] == 30 and torch.equal(payload["weights"], torch.full((3,), 30.0))


def test_corrupt_newest_falls_back_to_previous_and_says_so(tmp_path):
    checkpoint.save(tmp_path, 1, _payload(1))
    newest = checkpoint.save(tmp_path, 2, _payload(2))
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated file
    messages = []
    payload, path = checkpoint.load(tmp_path, log=messages.append)
    assert payload["step"] == 1
    assert len(messages) == 1 and "corrupt" in messages[0] and "ckpt-000000001.pt" in messages[0]


def test_all_corrupt_is_an_error_and_empty_is_none(tmp_path):
    assert checkpoint.load(tmp_path) is None
    checkpoint.save(tmp_path, 1, _payload(1)).write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="every checkpoint"):
        checkpoint.load(tmp_path, log=lambda m: None)


def test_rng_states_round_trip(tmp_path):
    checkpoint.save(tmp_path, 1, _payload(1))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    payload, _ = checkpoint.load(tmp_path)
    checkpoint.set_rng_state(payload["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_identity_mismatch_names_the_field(tmp_path):
    path = checkpoint.save(tmp_path / "checkpoints", 1, _payload(1))
    saved = _payload(1)["identity"]
    checkpoint.check_identity(saved, {"env": "a", "wm": {"hidden": 8}}, path)
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"wm.hidden=8.*wm.hidden=16"):
        checkpoint.check_identity(saved, {"env": "a", "wm": {"hidden": 16}}, path)
    with pytest.raises(checkpoint.CheckpointMismatch, match="env='a'.*env='b'"):
        checkpoint.check_identity(saved, {"env": "b"}, path)
