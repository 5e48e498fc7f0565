"""benchmarks.cue_link: its replay-like windows and its refusal of tasks it cannot score."""

import subprocess
import sys

import numpy as np
import pytest

from benchmarks.cue_link import stream, windows


def _episode(length: int, start: int) -> dict:
    return {
        "image": np.full((length, 2, 2, 3), start, np.uint8),
        "action": np.eye(3, dtype=np.float32)[np.arange(length) % 3],
        "reward": np.arange(start, start + length, dtype=np.float32),
        "is_first": np.arange(length) == 0,
        "is_terminal": np.arange(length) == length - 1,
    }


def test_windows_are_slices_of_the_episodes_laid_end_to_end_each_from_the_initial_state():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 9, size=20)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    data = stream([_episode(int(n), int(s)) for n, s in zip(lengths, starts)])
    assert len(data["reward"]) == lengths.sum()
    np.testing.assert_array_equal(np.flatnonzero(data["is_first"]), starts)  # each episode begins where it was laid
    np.testing.assert_array_equal(data["reward"], np.arange(lengths.sum()))  # rewards in the order played
    batch = windows(data, 16, 10, rng)
    offsets = batch["reward"][:, 0].long().numpy()  # the reward names the step: the window's offset
    for row, offset in enumerate(offsets):
        np.testing.assert_array_equal(batch["reward"][row].numpy(), np.arange(offset, offset + 10))
        np.testing.assert_array_equal(batch["is_first"][row, 1:].numpy(), data["is_first"][offset + 1 : offset + 10])
        np.testing.assert_array_equal(batch["image"][row].numpy(), data["image"][offset : offset + 10])
    assert bool(batch["is_first"][:, 0].all())


@pytest.mark.parametrize("task", ["memory/recall-k2", "no/such-task"])
def test_a_task_it_cannot_score_is_a_one_line_error(task):
    out = subprocess.run([sys.executable, "-m", "benchmarks.cue_link", "--task", task], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "benchmarks.cue_link: error:" in out.stderr and "Traceback" not in out.stderr
