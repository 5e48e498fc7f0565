"""benchmarks/icrl.py measures the product: each learning run is `memwm train --agent ppo` with its defaults,
scored on held-out trials by `memwm eval`'s evaluation, one record per run."""

import dataclasses
import math
import time

import pytest

from agents.common import SEEDS_PER_RUN
from agents.config import layered_defaults
from agents.ppo import PPOConfig
from benchmarks import icrl, learning, record


@pytest.mark.slow
def test_bandit_part_trains_with_memwm_train_defaults_and_records_held_out_metrics(tmp_path, monkeypatch):
    sleep = time.sleep
    monkeypatch.setattr(learning.time, "sleep", lambda s: sleep(min(s, 0.5)))  # the scheduler's 10 s polls
    args = icrl.Args(parts=("bandit",), seeds=[3], minutes=1.0, steps=512, eval_trials=4, runs=tmp_path / "runs", results=tmp_path)

    icrl.main(args)

    (rec,) = record.all_runs("icrl-bandit-10", tmp_path)
    p = rec["payload"]
    cmd = p["run_command"].split()
    assert cmd[:2] == ["memwm", "train"] and cmd[cmd.index("--agent") + 1] == "ppo"
    assert cmd[cmd.index("--env") + 1] == "icrl/bandit-10" and cmd[cmd.index("--seed") + 1] == "3"
    assert not [c for c in cmd if c.startswith("--ppo.")], "the benchmark sets no PPO setting of its own"
    assert p["ppo"] == dataclasses.asdict(PPOConfig()) and p["num_envs"] == layered_defaults("icrl/bandit-10", "tiny").num_envs
    assert p["exit_code"] == 0 and p["stopped_by"] == "steps" and p["train_steps"] >= 512 and p["updates"] >= 1
    assert p["eval_trials"] == 4 and p["eval_seed"] >= 3 * SEEDS_PER_RUN + SEEDS_PER_RUN // 2  # run 3's evaluation range
    assert p["value"] == p["metrics"]["icrl/return_over_thompson"]
    for name in ("icrl/return_over_thompson", "icrl/trial_return", "icrl/return_thompson", "icrl/later_over_first"):
        assert math.isfinite(p["metrics"][name]), name
    assert p["met"] == (p["value"] >= 0.9)
