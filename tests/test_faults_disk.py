"""A full disk: a write that fails for lack of space is one line naming the file, leaves no partial file under a
final name, and the last complete checkpoint (and every whole replay file) stays loadable.

The real case needs a small filesystem to fill: a tmpfs, which only root can mount; elsewhere those
tests are skipped with the reason, and the same paths are driven by a writer that fails with ENOSPC.
"""

from __future__ import annotations

import errno
import subprocess

import numpy as np
import pytest
import torch

from agents import checkpoint
from agents.common import DiskFull, atomic_write
from agents.replay import Replay


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk, unmounted afterwards; skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({(mounted.stderr or 'mount failed').strip().splitlines()[0]}); "
            "the ENOSPC writer tests cover the same paths"
        )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _episode(length, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return {
        "image": rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8),
        "action": rng.random((length, 2), np.float32),
        "reward": rng.random(length, np.float32),
        "is_first": t == 0,
        "is_last": t == length - 1,
        "is_terminal": t < 0,
    }


def _assert_one_line_disk_full(error, path):
    message = str(error.value)
    assert "\n" not in message and "disk is full" in message and str(path) in message and error.value.errno == errno.ENOSPC


def test_a_full_disk_keeps_the_last_checkpoint_loadable_and_leaves_no_partial_file(small_disk):
    weights = torch.randn(1000)
    for step in (1, 2):
        checkpoint.save(small_disk / "checkpoints", step, {"w": weights + step})
    with pytest.raises(DiskFull) as full:
        checkpoint.save(small_disk / "checkpoints", 3, {"w": torch.randn(1_000_000)})  # 4 MB on a 1 MiB disk
    _assert_one_line_disk_full(full, small_disk / "checkpoints" / "ckpt-000000003.pt")
    assert sorted(p.name for p in (small_disk / "checkpoints").iterdir()) == ["ckpt-000000001.pt", "ckpt-000000002.pt"]
    payload, path = checkpoint.load(small_disk / "checkpoints")
    assert path.name == "ckpt-000000002.pt" and torch.equal(payload["w"], weights + 2)


def test_a_full_disk_during_a_replay_write_leaves_every_whole_episode_readable(small_disk):
    replay = Replay(10_000, small_disk / "replay")
    replay.add_episode(_episode(5, 0))  # 60 KB of noise images
    with pytest.raises(DiskFull) as full:
        replay.add_episode(_episode(200, 1))  # 2.4 MB
    _assert_one_line_disk_full(full, small_disk / "replay" / "ep-0000001-len200.npz")
    assert [p.name for p in (small_disk / "replay").iterdir()] == ["ep-0000000-len5.npz"]
    messages = []
    reloaded = Replay(10_000, small_disk / "replay", log=messages.append)
    assert reloaded.skipped_files == 0 and messages == [] and len(reloaded) == 5
    np.testing.assert_array_equal(reloaded.episodes[0]["image"], replay.episodes[0]["image"])


class _FullDisk:
    """A writer that fills the file with `room` bytes, then fails as a full disk does."""

    def __init__(self, room):
        self.room = room

    def __call__(self, f):
        f.write(b"x" * self.room)
        raise OSError(errno.ENOSPC, "No space left on device")


def test_enospc_from_any_writer_is_disk_full_and_the_old_file_stays(tmp_path):
    target = tmp_path / "state.bin"
    atomic_write(target, b"old content")
    with pytest.raises(DiskFull) as full:
        atomic_write(target, _FullDisk(100))
    _assert_one_line_disk_full(full, target)
    assert target.read_bytes() == b"old content" and [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_torch_save_hiding_enospc_in_a_runtime_error_is_still_disk_full(tmp_path, monkeypatch):
    """torch.save reports a failed write as a RuntimeError about stream positions; the cause is found anyway."""
    checkpoint.save(tmp_path, 1, {"w": torch.zeros(3)})
    import agents.common as common

    class FillingFile:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real_fdopen = common.os.fdopen
    monkeypatch.setattr(common.os, "fdopen", lambda fd, mode: FillingFile(real_fdopen(fd, mode)))
    with pytest.raises(RuntimeError):
        torch.save({"w": torch.randn(10_000)}, FillingFile(open(tmp_path / "plain", "wb")))  # what torch.save alone says
    (tmp_path / "plain").unlink()
    with pytest.raises(DiskFull) as full:
        checkpoint.save(tmp_path, 2, {"w": torch.randn(10_000)})
    monkeypatch.undo()
    _assert_one_line_disk_full(full, tmp_path / "ckpt-000000002.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-000000001.pt"] and checkpoint.load(tmp_path)[1].name == "ckpt-000000001.pt"


def test_other_write_errors_pass_through_unchanged(tmp_path):
    def broken(f):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError) as error:
        atomic_write(tmp_path / "x", broken)
    assert not isinstance(error.value, DiskFull) and error.value.errno == errno.EIO and not list(tmp_path.iterdir())
