"""The run loop (agents/loop.py) and the shared helpers (agents/common.py), with a stand-in agent."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from agents import checkpoint
from agents.common import SEEDS_PER_RUN, atomic_write, evaluation_seed, pick_device, preserved_rng, training_seed
from agents.loop import Acted, Loop, LoopConfig


class Stub:
    """An agent whose every step draws from torch's global generator (as sampling actions and latents does)
    and whose evaluations draw from it too; it records what the loop asked of it."""

    def __init__(self, fail_at_evaluation: int | None = None):
        self.module = torch.nn.Linear(2, 1)
        self.draws: list[float] = []
        self.evaluations: list[tuple[int, int, int]] = []  # (first seed, episodes, step)
        self.fail_at_evaluation = fail_at_evaluation

    def begin(self, counters):
        pass

    def act(self, counters):
        self.draws.append(float(torch.rand(())))
        return Acted(1, [{"return": 1.0, "length": 3.0}] if counters["step"] % 5 == 4 else [])

    def update(self, counters):
        with torch.no_grad():
            self.module.weight.add_(self.draws[-1])
        return 1, {"train/draw": self.draws[-1]}

    def evaluate(self, episodes, seed, step, logger):
        if self.fail_at_evaluation == len(self.evaluations):
            raise RuntimeError("the evaluation failed")
        self.evaluations.append((seed, episodes, step))
        torch.rand(100)  # an evaluation consumes random numbers
        np.random.rand(100)
        return {"eval/return": float(step)}

    def pictures(self, seed, step, logger):
        torch.rand(10)

    def state_dict(self):
        return {"agent": self.module.state_dict(), "draws": list(self.draws)}

    def load_state_dict(self, state):
        self.module.load_state_dict(state["agent"])
        self.draws = list(state["draws"])

    def close(self):
        pass


def config(**overrides) -> LoopConfig:
    base = dict(steps=40, checkpoint_every=10, log_every=5, eval_every=10, eval_episodes=32, video_every=20, seed=3, tensorboard=False)
    return LoopConfig(**{**base, **overrides})


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_each_evaluation_takes_fresh_seeds_that_no_training_env_ever_takes(tmp_path):
    agent = Stub()
    Loop(agent, tmp_path / "run", config(), {"agent": "stub"}).run()
    assert [step for _, _, step in agent.evaluations] == [0, 10, 20, 30, 40]
    played = [set(range(seed, seed + n)) for seed, n, _ in agent.evaluations]
    assert all(len(s) == 32 for s in played)
    assert all(a.isdisjoint(b) for i, a in enumerate(played) for b in played[i + 1 :])  # fresh at every evaluation
    # every seed a training environment of this run can get (any offset: rank, step, env index) lies below them
    training = [training_seed(3, offset) + env for offset in (0, 1, 7, 12_345, SEEDS_PER_RUN, 10**9) for env in range(1000)]
    assert max(training) < min(min(s) for s in played) and max(max(s) for s in played) < 4 * SEEDS_PER_RUN
    assert min(training) >= 3 * SEEDS_PER_RUN  # and other run seeds own other blocks


def test_evaluation_seeds_stay_apart_from_training_seeds_for_any_index():
    rng = np.random.default_rng(0)
    for seed, index, episodes in zip(rng.integers(0, 4000, 200), rng.integers(0, 10**7, 200), rng.integers(1, 500, 200)):
        first = evaluation_seed(int(seed), int(index), int(episodes))
        base = int(seed) * SEEDS_PER_RUN
        assert base + SEEDS_PER_RUN // 2 <= first and first + episodes <= base + SEEDS_PER_RUN
        assert base <= training_seed(int(seed), int(index)) < base + SEEDS_PER_RUN // 2
    assert evaluation_seed(0, 1, 32) == evaluation_seed(0, 0, 32) + 32
    with pytest.raises(ValueError, match="seed must be >= 0"):
        evaluation_seed(-1, 0, 8)


def test_a_resumed_run_continues_the_evaluation_seeds_and_equals_the_run_that_never_stopped(tmp_path):
    torch.manual_seed(0)
    straight = Stub()
    Loop(straight, tmp_path / "straight", config(), {"agent": "stub"}).run()

    torch.manual_seed(0)
    first = Stub()
    Loop(first, tmp_path / "stopped", config(steps=20), {"agent": "stub"}).run()
    torch.manual_seed(123)  # whatever happens between the two processes
    second = Stub()
    loop = Loop(second, tmp_path / "stopped", config(), {"agent": "stub"})
    assert loop.resume() is not None and loop.counters["step"] == 20
    loop.run()
    assert second.draws == straight.draws  # the random stream went on as if never stopped
    torch.testing.assert_close(second.module.weight, straight.module.weight, rtol=0, atol=0)
    seeds = [s for s, _, _ in first.evaluations + second.evaluations]
    assert len(set(seeds)) == len(seeds)  # the resumed run's evaluations meet new episodes too


def test_evaluations_and_pictures_leave_the_training_random_stream_alone(tmp_path):
    torch.manual_seed(0)
    evaluated = Stub()
    Loop(evaluated, tmp_path / "a", config(), {"agent": "stub"}).run()
    torch.manual_seed(0)
    plain = Stub()
    Loop(plain, tmp_path / "b", config(eval_every=0, video_every=-1), {"agent": "stub"}).run()
    assert evaluated.draws == plain.draws and len(plain.draws) == 40


def test_the_checkpoint_is_written_before_an_evaluation_that_fails(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="the evaluation failed"):
        Loop(Stub(fail_at_evaluation=2), run, config(checkpoint_every=1000), {"agent": "stub"}).run()
    payload, path = checkpoint.load(run / "checkpoints")
    assert path.name == "ckpt-000000020.pt" and payload["counters"]["step"] == 20 and len(payload["draws"]) == 20
    assert payload["identity"] == {"agent": "stub"} and "rng" in payload


def test_the_loop_logs_episodes_updates_and_evaluations_under_their_names(tmp_path):
    run = tmp_path / "run"
    summary = Loop(Stub(), run, config(eval_every=0, video_every=-1), {"agent": "stub"}).run()
    assert summary == {"eval/return": 40.0}
    rows = records(run)
    assert sum("episode/return" in r for r in rows) == 8  # an episode ends every fifth step
    logged = [r["step"] for r in rows if "train/draw" in r]
    assert logged == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [r["step"] for r in rows if "perf/env_steps_per_s" in r] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [r["step"] for r in rows if "eval/return" in r] == [40]


def test_a_loop_over_batches_names_its_pace_and_its_count_by_batches(tmp_path, capsys):
    run = tmp_path / "run"
    Loop(Stub(), run, config(eval_every=0, video_every=-1, unit="batches", desc="wm"), {"agent": "stub"}).run()
    rows = records(run)
    assert [r["step"] for r in rows if "perf/batches_per_s" in r] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert not any("perf/env_steps_per_s" in r for r in rows)
    assert "batch" in capsys.readouterr().err


def test_a_checkpoint_of_another_identity_is_refused(tmp_path):
    Loop(Stub(), tmp_path / "run", config(steps=10), {"agent": "stub", "env": "a"}).run()
    with pytest.raises(checkpoint.CheckpointMismatch, match="env='a'.*env='b'"):
        Loop(Stub(), tmp_path / "run", config(steps=20), {"agent": "stub", "env": "b"}).resume()


def test_preserved_rng_puts_back_python_numpy_and_torch_states():
    import random

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with preserved_rng():
        random.random(), np.random.rand(3), torch.rand(3)
    after = random.random(), np.random.rand(3), torch.rand(3)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = random.random(), np.random.rand(3), torch.rand(3)
    assert after[0] == expected[0] and np.array_equal(after[1], expected[1]) and torch.equal(after[2], expected[2])


def test_atomic_write_replaces_whole_files_and_leaves_nothing_when_the_writer_fails(tmp_path):
    path = tmp_path / "sub" / "file.bin"
    atomic_write(path, b"old")
    atomic_write(path, lambda f: f.write(b"new content"))
    assert path.read_bytes() == b"new content"
    atomic_write(path, "text")
    assert path.read_text() == "text"

    def failing(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, failing)
    assert path.read_text() == "text" and sorted(os.listdir(path.parent)) == ["file.bin"]


def test_pick_device_names_what_it_accepts():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected auto, cpu or cuda"):
        pick_device("tpu")


def test_keep_freed_memory_raises_glibc_thresholds_so_a_freed_buffer_is_reused():
    """After keep_freed_memory a large buffer freed and allocated again comes back from the heap,
    not from a fresh mmap: the process's minor page faults do not grow with each round."""
    import resource
    import subprocess
    import sys

    script = (
        "import resource, torch, sys\n"
        "from agents.common import keep_freed_memory\n"
        "ok = keep_freed_memory() if sys.argv[1] == 'keep' else True\n"
        "torch.empty(8 << 20).fill_(1)\n"  # 32 MiB, touched once
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20):\n"
        "    torch.empty(8 << 20).fill_(1)\n"
        "print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for mode in ("keep", "plain"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == "True"
        faults[mode] = int(out[1])
    pages = (32 << 20) // resource.getpagesize()
    assert faults["plain"] > 10 * pages  # each round maps and faults in the buffer again
    assert faults["keep"] < faults["plain"] / 3  # the freed buffer is reused (a few rounds of heap growth at most)
