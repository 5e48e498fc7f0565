"""benchmarks.learning's record of a finished run: its in-run curve, and its final checkpoint scored on held-out
episodes by memwm's evaluator (a failed run gets no such score)."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import time
from types import SimpleNamespace

import pytest
import torch

import world_models
from agents import checkpoint
from agents.common import evaluation_seed
from agents.config import TrainConfig, save_yaml
from agents.evaluate import evaluate_run
from agents.runs import build_dreamer, identity
from benchmarks import learning, record

EPISODES = 6


def finished_run(tmp_path, seed: int, returncode: int) -> SimpleNamespace:
    """A `memwm train` run folder of recall-k8 as a run leaves it (config, a checkpoint, two evaluations in
    metrics.jsonl), behind the process handle the benchmark keeps."""
    run = tmp_path / f"run{seed}"
    config = TrainConfig(env="memory/recall-k8", preset="tiny", run=str(run), seed=seed, wm=world_models.WorldModelConfig.preset("tiny"))
    save_yaml(config, run / "config.yaml")
    torch.manual_seed(seed)
    agent, _ = build_dreamer(config, torch.device("cpu"))
    checkpoint.save(run / "checkpoints", 100, {"agent": agent.state_dict(), "identity": identity(config), "counters": {"step": 100}})
    rows = [{"step": 0, "eval/return": -0.5}, {"step": 100, "eval/return": 0.25, "train/updates": 7}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"task": "recall-k8", "backbone": "s5", "flags": "", "seed": seed, "minutes": 1.0, "run_dir": run}
    info |= {"cmd": ["python", "-m", "agents.cli", "train"], "start": time.time(), "started": record.start(), "loads": [], "stamps": {}}
    info["log"] = open(tmp_path / f"run{seed}.log", "w")
    return SimpleNamespace(returncode=returncode, memwm=info)


@pytest.fixture
def written(monkeypatch):
    payloads = []
    monkeypatch.setattr(learning.record, "write_result", lambda name, payload, **kw: payloads.append(payload))
    return payloads


def test_a_finished_run_is_scored_on_the_held_out_episodes_memwm_eval_plays(tmp_path, written):
    learning.write(finished_run(tmp_path, seed=3, returncode=0), episodes=EPISODES)
    (payload,) = written
    assert payload["final"] == 0.25 and payload["updates"] == 7  # the in-run curve as the run logged it
    first = evaluation_seed(3, 0, EPISODES)
    assert payload["held_out_seed"] == first
    held = payload["final_held_out"]
    assert held["episodes"] == EPISODES and held["step"] == 100
    run = tmp_path / "run3"
    assert held["return"] == evaluate_run(run, EPISODES, device="cpu", seed=first).scalars["eval/return"]
    # the score depends on which episodes are played: another first seed would give another one
    assert held["return"] != evaluate_run(run, EPISODES, device="cpu", seed=first + EPISODES).scalars["eval/return"]


def test_a_failed_run_gets_no_held_out_score(tmp_path, written):
    learning.write(finished_run(tmp_path, seed=1, returncode=1), episodes=EPISODES)
    (payload,) = written
    assert payload["stopped_by"] == "failure" and payload["final_held_out"] is None and payload["final"] == 0.25


def test_the_record_keeps_the_learning_chain_and_what_the_evaluations_say_of_the_cue(tmp_path, written):
    proc = finished_run(tmp_path, seed=2, returncode=1)
    rows = [
        {"step": 0, "eval/return": -0.5, "eval/cue_seen": 0.25, "eval/success_seen": 1.0},
        {"step": 50, "chain/z_seen": 0.9, "chain/h_probe": 0.6, "train/loss": 1.0},
        {"step": 100, "eval/return": 0.25, "train/updates": 7},
        {"step": 150, "chain/z_seen": 1.0},
    ]
    (proc.memwm["run_dir"] / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc.memwm["stamps"] = {0: 0.1, 50: 0.6}
    learning.write(proc, episodes=EPISODES)
    (payload,) = written
    assert [e.get("cue_seen") for e in payload["evals"]] == [0.25, None]
    assert payload["evals"][0]["success_seen"] == 1.0 and "success_unseen" not in payload["evals"][0]
    first, last = payload["chain"]
    assert first == {"step": 50, "minutes": 0.6, "chain/z_seen": 0.9, "chain/h_probe": 0.6}
    assert last["step"] == 150 and last["chain/z_seen"] == 1.0 and last["minutes"] >= 0  # stamped by the last poll


def test_the_record_keeps_the_learner_s_settings_without_what_names_the_run(tmp_path, written):
    for seed in (0, 1):
        learning.write(finished_run(tmp_path, seed=seed, returncode=1), episodes=EPISODES)
    first, second = (p["config"] for p in written)
    assert first == second  # two seeds of one learner: the same settings
    saved = TrainConfig(env="memory/recall-k8", preset="tiny", wm=world_models.WorldModelConfig.preset("tiny")).to_dict()
    assert first == {k: v for k, v in saved.items() if k not in learning.RUN_LOCAL}
    assert first["dreamer"]["all_actions"] == saved["dreamer"]["all_actions"] and "run" not in first and "seed" not in first
    run = tmp_path / "other"  # a run with one setting changed is another learner
    changed = TrainConfig(env="memory/recall-k8", preset="tiny", run=str(run), wm=world_models.WorldModelConfig.preset("tiny"))
    changed = dataclasses.replace(changed, dreamer=dataclasses.replace(changed.dreamer, all_actions=0.3))
    save_yaml(changed, run / "config.yaml", sources={"dreamer.all_actions": "flag"})
    assert learning.run_config(run) != first and learning.run_config(run)["dreamer"]["all_actions"] == 0.3
    assert "sources" not in learning.run_config(run) and learning.run_config(tmp_path / "none") is None


def test_learner_config_is_what_memwm_train_writes_for_the_benchmark_s_command(tmp_path, monkeypatch):
    """The settings benchmarks.learning expects of a run equal the config.yaml `memwm train` writes for the command
    run_one types (without what names the run), for the defaults and for a variant, and tell the two apart."""
    import agents.train
    from agents.cli import main

    def build_only(config, typed):  # resolve and write config.yaml, train nothing
        loop = agents.train.build(config, typed)
        loop.agent.close()
        loop.lock.release()

    monkeypatch.setattr(agents.train, "train", build_only)
    for flags in ("", "--dreamer.all-actions 0.5 --seq-len 16"):
        run = tmp_path / f"run{len(flags)}"
        named = ["--seed", "3", "--minutes", "1", "--threads", "1", "--run", str(run)]  # what names the run
        main(["train", *learning.train_args("recall-k8", "s5", flags), *named])
        assert learning.run_config(run) == learning.learner_config("recall-k8", "s5", flags)
    defaults, variant = (learning.learner_config("recall-k8", "s5", f) for f in ("", "--dreamer.all-actions 0.5 --seq-len 16"))
    assert (variant["dreamer"]["all_actions"], variant["seq_len"]) == (0.5, 16) and defaults != variant
    assert learning.learner_config("recall-k8", "rssm", "")["backbone"] == "rssm"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=record.REPO, capture_output=True, text=True, check=True).stdout.strip()


def test_same_learner_compares_resolved_settings_not_the_flags_typed(monkeypatch):
    """A record with its settings stands for the flags that give those settings now, whatever it was typed with (after
    a default changes, the runs that chose it by a flag stand for the defaults); one without, by its flags."""
    variant = "--dreamer.all-actions 0.5"
    now = {"": learning.learner_config("recall-k8", "s5", ""), variant: learning.learner_config("recall-k8", "s5", variant)}

    def rec(flags, config, commit="abc1234def"):
        return {"commit": commit, "payload": {"task": "recall-k8", "backbone": "s5", "flags": flags, "config": config}}

    assert learning.same_learner(rec(variant, now[variant]), variant) and not learning.same_learner(rec(variant, now[variant]), "")
    # typed with a flag whose value is now the default: the defaults' run
    assert learning.same_learner(rec(variant, now[""]), "") and not learning.same_learner(rec(variant, now[""]), variant)
    # typed with no flag under defaults since changed: not the defaults' run
    assert not learning.same_learner(rec("", now[variant]), "") and learning.same_learner(rec("", now[variant]), variant)
    # a record without settings: by its flags, and the defaults' only if made at DEFAULTS_SINCE or later
    assert learning.same_learner(rec(variant, None), variant) and not learning.same_learner(rec(variant, None), "")
    since = git("rev-parse", learning.DEFAULTS_SINCE)
    before = git("rev-parse", f"{since}~1")
    assert learning.same_learner(rec("", None, commit=since), "") and not learning.same_learner(rec("", None, commit=before), "")
    assert learning.same_learner(rec("", None, commit="0" * 40), "")  # a commit git does not know: as typed


def test_a_record_made_before_a_setting_existed_learned_with_the_value_that_keeps_the_code_it_ran():
    """A setting added since a record was made (learning.ADDED_SETTINGS) is missing from its settings: it stands for
    the settings that have the setting at its earlier behaviour, and for no others."""
    off, gated = "--dreamer.all-actions-below 0", "--dreamer.all-actions-below 0.1"
    assert learning.ADDED_SETTINGS["dreamer.all_actions_below"] == 0.0
    older = copy.deepcopy(learning.learner_config("recall-k8", "s5", off))
    del older["dreamer"]["all_actions_below"]
    rec = {"commit": "abc1234def", "payload": {"task": "recall-k8", "backbone": "s5", "flags": "", "config": older}}
    assert learning.same_learner(rec, off) and not learning.same_learner(rec, gated)
    assert "all_actions_below" not in older["dreamer"]  # read, not changed
    # a top-level setting (no group) the same way
    assert learning.ADDED_SETTINGS["replay_terminal_share"] == 0.0
    top = copy.deepcopy(learning.learner_config("cartpole-positions", "s5", ""))
    del top["replay_terminal_share"]
    rec_top = {"commit": "abc1234def", "payload": {"task": "cartpole-positions", "backbone": "s5", "flags": "", "config": top}}
    assert learning.same_learner(rec_top, "--replay-terminal-share 0")
    assert not learning.same_learner(rec_top, "--replay-terminal-share 0.5")
    assert learning.ADDED_SETTINGS["compile"] is False  # a record made before --compile existed learned eagerly
    del top["compile"]
    assert learning.same_learner(rec_top, "--no-compile") and not learning.same_learner(rec_top, "--compile")
    other = copy.deepcopy(older)
    other["dreamer"]["all_actions"] = 0.5  # another setting differs too
    assert not learning.same_learner(rec | {"payload": rec["payload"] | {"config": other}}, off)
