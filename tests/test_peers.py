"""benchmarks.peers scores every side alike: memwm's Dreamer played through the peers' evaluation
(benchmarks.peer_eval: the gymnasium id, one Box observation) gets the same returns on the same seeds as through
memwm's own evaluator; and the benchmark's command-line errors and table reading."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from agents.config import TrainConfig
from agents.evaluate import run_episodes
from agents.runs import build_dreamer
from benchmarks import peers
from benchmarks.peer_eval import score, summary
from envs.gymnasium_ids import gym_id


class DreamerAsPeer:
    """memwm's Dreamer behind the peers' policy interface: reset() at an episode's start, act(Box obs) -> env action."""

    def __init__(self, agent, key: str):
        self.agent, self.key = agent, key

    def reset(self) -> None:
        self.state = self.agent.wm.initial_state(1, torch.device("cpu"))
        self.prev = torch.zeros(1, self.agent.codec.dim)
        self.first = True

    def act(self, obs: np.ndarray):
        batch = {self.key: torch.as_tensor(np.asarray(obs)[None])}
        self.prev, self.state = self.agent.policy(self.state, batch, self.prev, torch.tensor([self.first]), explore=False)
        self.first = False
        return self.agent.codec.to_env(self.prev.numpy())[0]


@pytest.mark.parametrize("env_id, key", [("memory/recall-k2", "vector"), ("memory/distracting-8", "image")])
def test_a_memwm_policy_scores_the_same_through_the_peer_evaluation_as_through_memwms_own(env_id, key):
    torch.manual_seed(0)
    config = TrainConfig(env=env_id, preset="tiny", device="cpu", seed=0)
    agent, _ = build_dreamer(config, torch.device("cpu"))
    agent.eval()
    seed, episodes = 1_000_003, 6
    # acting samples the posterior latent from torch's stream: both paths start it alike
    torch.manual_seed(1)
    own = run_episodes(agent, env_id, {}, episodes, seed, torch.device("cpu"))
    torch.manual_seed(1)
    peer = score(DreamerAsPeer(agent, key), env_id, episodes, seed)
    assert peer["returns"] == own.returns and peer["lengths"] == own.lengths
    assert peer["successes"] == ([None] * episodes if not own.successes or np.isnan(own.successes[0]) else own.successes)
    # the episodes differ from one another, so a seed out of step would show
    assert len(set(own.returns)) > 1 or len(set(map(tuple, [own.lengths]))) > 1
    torch.manual_seed(1)
    other = score(DreamerAsPeer(agent, key), env_id, episodes, seed + episodes)
    assert other["returns"] != own.returns
    assert summary(peer)["return"] == pytest.approx(own.mean_return)


def test_the_table_reads_each_curve_at_the_last_evaluation_before_the_mark():
    curve = [(0.0, -0.5), (4.0, 0.1), (6.0, 0.4), (14.9, 0.8)]
    assert peers.curve_at(curve, 5.0) == 0.1
    assert peers.curve_at(curve, 15.0) == 0.8  # within the poll's minute of the mark
    assert peers.curve_at(curve, 30.0) is None  # the run ended long before


@pytest.mark.parametrize("arm, attr", [("sb3-recurrentppo", "sb3_python"), ("sheeprl-dreamerv3", "sheeprl_python")])
def test_a_missing_peer_is_named_in_one_line(arm, attr, tmp_path):
    why = peers.missing(arm, peers.Args(**{attr: str(tmp_path / "nope" / "python")}))
    assert why is not None and arm in why and "\n" not in why
    assert peers.missing("memwm", peers.Args()) is None


@pytest.mark.parametrize("argv, word", [(["--task", "nope"], "unknown task"), (["--arms", "dreamerv9"], "unknown arm")])
def test_bad_arguments_end_with_one_line_and_exit_2(argv, word, capsys):
    import tyro

    with pytest.raises(SystemExit) as exit_:
        peers.main(tyro.cli(peers.Args, args=[*argv, "--plot-only"]))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("env_id, key", [("memory/recall-k8", "state"), ("memory/distracting-100", "rgb")])
def test_sheeprl_replays_as_many_steps_per_env_step_as_memwm_on_the_tasks_observation(env_id, key, tmp_path):
    from agents.config import layered_defaults
    from benchmarks.peer_sheeprl import overrides

    memwm = layered_defaults(env_id, TrainConfig().preset)
    flags = peers.peer_flags("sheeprl-dreamerv3", env_id, tmp_path)
    parsed = dict(zip(flags[::2], flags[1::2]))
    assert int(parsed["--num-envs"]) == memwm.num_envs and int(parsed["--seq-len"]) == memwm.seq_len
    assert int(parsed["--batch-size"]) == memwm.batch_size and float(parsed["--train-ratio"]) == memwm.train_ratio
    args = argparse.Namespace(
        env=env_id,
        seed=3,
        log_dir=str(tmp_path),
        num_envs=memwm.num_envs,
        batch_size=memwm.batch_size,
        seq_len=memwm.seq_len,
        train_ratio=memwm.train_ratio,
    )
    cfg = dict(o.split("=", 1) for o in overrides(args, image=key == "rgb"))
    ratio = float(cfg["algo.replay_ratio"]) * int(cfg["algo.per_rank_batch_size"]) * int(cfg["algo.per_rank_sequence_length"])
    assert ratio == pytest.approx(memwm.train_ratio)  # replayed steps per env step
    assert int(cfg["env.num_envs"]) == memwm.num_envs and cfg["env.id"] == gym_id(env_id)
    encoder = "algo.cnn_keys.encoder" if key == "rgb" else "algo.mlp_keys.encoder"
    other = "algo.mlp_keys.encoder" if key == "rgb" else "algo.cnn_keys.encoder"
    assert cfg[encoder] == f"[{key}]" and cfg[other] == "[]" and cfg["algo"] == "dreamer_v3_XS"
    assert peers.peer_flags("sb3-recurrentppo", env_id, tmp_path) == []


def test_reuse_lets_the_dreamers_recorded_run_of_this_cpu_budget_seed_and_held_out_episodes_stand_for_its_arm(tmp_path, monkeypatch):
    from benchmarks import ablate, learning, record
    from tests.test_report import learning_run, write_record

    monkeypatch.setattr(ablate, "LEARNER_SINCE", None)  # the records' commits are made up
    monkeypatch.setattr(record, "RESULTS", tmp_path)
    here = record.machine()["cpu"]

    def run(seed, final, episodes=32, budget=30.0):
        held = {"return": final, "success": None, "episodes": episodes, "step": 9}
        p = learning_run(seed, final=final, best=final) | {"budget_minutes": budget, "exit_code": 0, "final_held_out": held}
        return p | {"held_out_seed": learning.held_out_seed(seed, episodes)}

    write_record(tmp_path, "learning-recall-k8", run(0, 0.7), "2026-01-01T00:00:00Z", commit="1111111aaa", cpu=here)
    write_record(tmp_path, "learning-recall-k8", run(1, 0.8, episodes=16), "2026-01-01T00:00:01Z", commit="1111111aaa", cpu=here)
    write_record(tmp_path, "learning-recall-k8", run(2, 0.9), "2026-01-01T00:00:02Z", commit="1111111aaa", cpu="elsewhere")
    write_record(tmp_path, "learning-recall-k8", run(3, 0.6, budget=15.0), "2026-01-01T00:00:03Z", commit="1111111aaa", cpu=here)
    # an earlier peers run of the Dreamer arm counts too (benchmarks.learning wrote it), its PPO arm does not
    write_record(tmp_path, "peers-recall-k8", run(4, 0.5) | {"arm": "memwm"}, "2026-01-01T00:00:04Z", commit="2222222aaa", cpu=here)
    ppo = run(5, 0.4) | {"arm": "memwm-ppo", "flags": "--agent ppo"}
    write_record(tmp_path, "peers-recall-k8", ppo, "2026-01-01T00:00:05Z", commit="2222222aaa", cpu=here)
    queued = []
    monkeypatch.setattr(learning, "schedule", lambda queue, *rest: queued.extend(queue))
    monkeypatch.setattr(peers, "plot", lambda task, results: None)
    peers.main(peers.Args(task="recall-k8", minutes=30.0, seeds=[0, 1, 2, 3, 4, 5], arms=["memwm"], reuse=True))
    # seed 1's held-out episodes are other ones, seed 2 ran on another CPU model, seed 3 for another budget, seed 5 is PPO
    assert queued == [("memwm", 1), ("memwm", 2), ("memwm", 3), ("memwm", 5)]
    got = {r["seed"]: r for r in peers.load("recall-k8") if "reuses" in r}
    assert sorted(got) == [0, 4]
    assert got[0]["reuses"] == "learning-recall-k8/20260101T000000Z-1111111.json" and got[4]["reuses"].startswith("peers-recall-k8/")
    assert got[0]["final_held_out"]["return"] == 0.7 and got[0]["evals"][-1]["return"] == 0.7  # the referenced run's own
    assert got[0]["arm"] == "memwm" and got[0]["run_commit"] == "1111111aaa" and got[0]["train"] == []
    assert got[0]["commit"] != "1111111aaa"  # the reference is this checkout's record
    (line,) = [line for line in peers.table("recall-k8", list(got.values())) if " memwm " in line]
    assert "runs made at 1111111, 2222222" in line and "30 min" in line
    without = []
    monkeypatch.setattr(learning, "schedule", lambda queue, *rest: without.extend(queue))
    peers.main(peers.Args(task="recall-k8", minutes=30.0, seeds=[0], arms=["memwm"]))
    assert without == [("memwm", 0)]  # without --reuse every run runs


def test_a_peer_arms_runs_since_its_code_last_changed_are_one_group_and_memwms_arms_are_grouped_by_commit(tmp_path, monkeypatch):
    """Calls that add seeds at later commits read with the earlier seeds for a peer arm whose code has not changed since
    (peers.PEERS_SINCE), in benchmarks.peers and in the results page; not across that commit, nor a dirty tree's run,
    nor memwm's own arms."""
    from benchmarks import record, report
    from tests.test_report import write_record

    order = ["0000000aaa", "1111111aaa", "2222222aaa"]  # made-up history: each commit the child of the one before
    monkeypatch.setattr(peers, "PEERS_SINCE", order[1])
    at = lambda commit: next((i for i, c in enumerate(order) if c.startswith(commit)), None)  # noqa: E731  (git takes a prefix)
    monkeypatch.setattr(record, "made_since", lambda commit, since: at(commit) is not None and at(commit) >= at(since))
    monkeypatch.setattr(record, "RESULTS", tmp_path)

    def run(arm, seed, final):
        evals = [{"step": 100, "minutes": 4.0, "return": final, "success": None}]
        return {"task": "recall-k8", "env": "memory/recall-k8", "arm": arm, "peer": arm, "seed": seed, "metric": "return"} | {
            "budget_minutes": 30.0, "exit_code": 0, "wall_minutes": 30.1, "load_average_during": [1.0, 2.0], "evals": evals,
            "train": [], "final_held_out": {"return": final, "episodes": 32}, "held_out_seed": 7,
        }  # fmt: skip

    made = [  # (arm, seed, final, commit, dirty)
        ("sheeprl-dreamerv3", 0, -0.9, order[0], False),  # before the peers' code last changed
        ("sheeprl-dreamerv3", 0, -0.5, order[1], False),
        ("sheeprl-dreamerv3", 1, -0.3, order[2], False),
        ("sheeprl-dreamerv3", 2, 0.7, order[2], True),  # a dirty tree: its own row
        ("memwm", 0, 0.2, order[1], False),
        ("memwm", 1, 0.4, order[2], False),
    ]
    for i, (arm, seed, final, commit, dirty) in enumerate(made):
        write_record(tmp_path, "peers-recall-k8", run(arm, seed, final), f"2026-01-01T00:00:0{i}Z", commit=commit, dirty=dirty)

    loaded = {(r["arm"], r["seed"]): r["final_held_out"]["return"] for r in peers.load("recall-k8", tmp_path)}
    # the newest group of each arm: the dirty run alone for sheeprl (the newest), memwm's newest commit alone
    assert loaded == {("sheeprl-dreamerv3", 2): 0.7, ("memwm", 1): 0.4}
    (tmp_path / "peers-recall-k8" / "20260101T000003Z-2222222.json").unlink()
    loaded = {(r["arm"], r["seed"]): r["final_held_out"]["return"] for r in peers.load("recall-k8", tmp_path)}
    assert loaded == {("sheeprl-dreamerv3", 0): -0.5, ("sheeprl-dreamerv3", 1): -0.3, ("memwm", 1): 0.4}
    (line,) = [line for line in peers.table("recall-k8", peers.load("recall-k8", tmp_path)) if "sheeprl" in line]
    assert "seeds 0,1" in line and "-0.40" in line and "commit 1111111aaa, 2222222aaa" in line

    groups = {key[1:3]: sorted(by_seed) for key, by_seed in report.peer_groups(tmp_path).items()}
    assert groups == {
        ("sheeprl-dreamerv3", "0000000"): [0],
        ("sheeprl-dreamerv3", f"since {order[1]}"): [0, 1],
        ("memwm", "1111111"): [0],
        ("memwm", "2222222"): [1],
    }
    (row,) = [row for row in report.peers(tmp_path, "").splitlines() if "sheeprl" in row and "0,1" in row]
    assert "| 1111111, 2222222 |" in row and "-0.40 (worst -0.50)" in row
