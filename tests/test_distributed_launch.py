"""`memwm train --nproc-per-node N` (agents/cli.py, agents/launch.py): torch's elastic launcher
started from the memwm process, with memwm's flags kept away from torchrun's parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FLAGS = [
    "--env",
    "gym:CartPole-v1",
    "--backbone",
    "s5",
    "--preset",
    "tiny",
    "--num-envs",
    "1",
    "--prefill",
    "8",
    "--batch-size",
    "2",
    "--seq-len",
    "8",
    "--train-ratio",
    "8",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--video-every",
    "-1",
    "--log-every",
    "8",
    "--checkpoint-every",
    "1000",
    "--no-tensorboard",
    "--threads",
    "1",
    "--dreamer.horizon",
    "3",
]


def memwm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        cwd=REPO,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_nproc_per_node_2_trains_two_ranks_and_writes_one_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = memwm("train", "--nproc-per-node", "2", *FLAGS, "--steps", "64", "--run", str(run))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000064.pt"]  # rank 0 alone writes
    assert list(run.glob("replay/ep-*.npz")) and list(run.glob("replay/rank-1/ep-*.npz"))  # but both ranks acted
    assert proc.stdout.count("memwm: finished") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--nproc-per-node", "two"], "--nproc-per-node takes a number of processes >= 1, got 'two'"),
        (["train", "--nproc-per-node=0"], "got '0'"),
        (["eval", "--run", "x", "--nproc-per-node", "2"], "applies to memwm train and memwm compare"),
    ],
)
def test_bad_nproc_per_node_is_one_line(args, message):
    proc = memwm(*args, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_a_failing_worker_is_its_one_line_error_and_the_rank_that_failed_first(tmp_path):
    proc = memwm("train", "--nproc-per-node", "2", *FLAGS, "--env", "memory/no-such-task", "--run", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "unknown env 'memory/no-such-task'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "exited with code 2" in proc.stderr
