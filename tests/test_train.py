"""`memwm train` / `memwm eval` end to end at preset tiny: the loop, the run folder, resume, eval and bad inputs."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import envs
from agents import checkpoint
from agents import config as C
from agents.cli import main
from agents.config import TRAIN_WM, TrainConfig, resolve
from agents.logger import read_evals
from agents.train import train
from world_models import WorldModelConfig

# A few hundred env steps, a handful of updates, short evaluations: seconds on a CPU.
FAST = dict(
    preset="tiny",
    num_envs=2,
    prefill=60,
    batch_size=2,
    seq_len=8,
    train_ratio=2.0,
    eval_every=0,
    eval_episodes=1,
    video_every=-1,
    log_every=50,
    checkpoint_every=100,
    tensorboard=False,
    threads=1,
)
FAST_FLAGS = [
    "--preset",
    "tiny",
    "--num-envs",
    "2",
    "--prefill",
    "60",
    "--batch-size",
    "2",
    "--seq-len",
    "8",
    "--train-ratio",
    "2",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--video-every",
    "-1",
    "--log-every",
    "50",
    "--no-tensorboard",
    "--threads",
    "1",
]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    """A finished run on a memory task, with videos and TensorBoard (shared by the tests that read it)."""
    run = tmp_path_factory.mktemp("runs") / "distracting"
    config = TrainConfig(
        env="memory/distracting-100", backbone="rssm", steps=240, run=str(run), **{**FAST, "video_every": 0, "tensorboard": True}
    )
    summary = train(config)
    return run, summary


def test_loop_on_a_memory_env_writes_every_file_of_a_run(memory_run):
    run, summary = memory_run
    # distracting-100 shows its cue at the start of every episode: seen in all, no success rate of unseen ones
    assert set(summary) == {"eval/return", "eval/success", "eval/length", "eval/cue_seen", "eval/success_seen"}
    assert summary["eval/cue_seen"] == 1.0 and summary["eval/success_seen"] == summary["eval/success"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # preset tiny with the training defaults, the same for every task
    assert saved["env"] == "memory/distracting-100" and saved["wm"] == {**WorldModelConfig.preset("tiny").__dict__, **TRAIN_WM}
    records = _records(run)
    names = set().union(*records)
    for name in (
        "episode/return",
        "episode/success",
        "train/loss/image",
        "train/loss/actor",
        "train/actor_entropy",
        "train/return_scale",
        "perf/env_steps_per_s",
        "eval/return",
        "eval/success",
    ):
        assert name in names, name
    assert max(r["step"] for r in records) == 240
    assert [p.name for p in checkpoint.checkpoints(run / "checkpoints")] == ["ckpt-000000200.pt", "ckpt-000000240.pt"]
    episodes = sorted((run / "replay").glob("ep-*.npz"))
    assert len(episodes) >= 2  # 102-step episodes, two envs
    with np.load(episodes[0]) as ep:
        assert ep["image"].shape == (102, 64, 64, 3) and ep["image"].dtype == np.uint8
        assert ep["is_first"][0] and ep["is_last"][-1] and ep["is_terminal"][-1] and ep["is_first"].sum() == 1
        assert ep["action"].shape == (102, 2) and abs(ep["reward"][-1]) == 1.0
    videos = sorted(p.name for p in (run / "videos").iterdir())
    assert videos == ["eval-policy-000000240.gif", "imagine-open_loop-000000240.gif", "imagine-open_loop_plot-000000240.png"]
    assert list(run.glob("events.out.tfevents.*"))


def test_a_fresh_run_evaluates_before_training_and_prints_the_start_and_end(tmp_path, capsys):
    run = tmp_path / "curve"
    main(
        [
            "train",
            "--env",
            "memory/distracting-16",
            "--backbone",
            "s5",
            "--steps",
            "120",
            "--run",
            str(run),
            *FAST_FLAGS,
            "--eval-every",
            "60",
        ]
    )
    evals = read_evals(run)
    assert [e["step"] for e in evals] == [0, 60, 120]
    # one episode each, +1 or -1: it succeeds exactly when it paid +1
    assert all(e["return"] in (-1.0, 1.0) and e["success"] == float(e["return"] > 0) for e in evals)
    out = capsys.readouterr().out
    first, last = evals[0], evals[-1]
    assert (
        f"eval success {first['success']:.2f} -> {last['success']:.2f}, return {first['return']:.2f} -> {last['return']:.2f} (step 0 -> 120"
    ) in out
    assert f"metrics in {run / 'metrics.jsonl'}" in out
    assert not (run / "videos").exists() and "videos" not in out  # --video-every -1: the end names no videos folder


def test_no_flags_or_only_seed_and_folder_is_the_embedded_default_run(monkeypatch):
    import agents.train

    seen = []
    monkeypatch.setattr(agents.train, "train", lambda config, typed=None: seen.append(config))
    main(["train"])
    main(["train", "--seed", "3", "--run", "runs/x", "--threads", "1"])
    main(["train", "--steps", "500"])
    assert [c.minutes for c in seen] == [C.EMBEDDED_RUN["minutes"]] * 2 + [0.0]
    assert seen[1].seed == 3 and seen[1].run == "runs/x" and seen[0].env == "pomdp/cartpole-positions"


def test_distracting_sequences_cover_a_whole_episode_by_default():
    for env_id in [i for i in envs.ids() if i.startswith("memory/distracting-")]:
        length = int(env_id.rsplit("-", 1)[1])
        config = resolve(TrainConfig(env=env_id))
        assert config.seq_len >= length + 2, env_id  # the cue (step 0) and the decision (step L) in one window
        assert config.replay_whole_episodes  # ... and a window that can hold the episode starts at its first step


def test_eval_of_a_finished_run_reports_return_and_success(memory_run, capsys):
    run, _ = memory_run
    main(["eval", "--run", str(run), "--episodes", "1", "--video"])
    out = capsys.readouterr().out
    assert "mean return" in out and "success rate" in out and "over 1 episodes" in out
    assert list((run / "videos").glob("eval-cli-*.gif"))


def test_loop_on_a_continuous_action_env(tmp_path, capsys):
    run = tmp_path / "pendulum"
    main(
        [
            "train",
            "--env",
            "gym:Pendulum-v1",
            "--backbone",
            "s5",
            "--steps",
            "260",
            "--run",
            str(run),
            *FAST_FLAGS,
            "--num-envs",
            "1",
            "--eval-every",
            "130",
        ]
    )
    final = [r for r in _records(run) if "eval/return" in r][-1]
    summary = {k: v for k, v in final.items() if k.startswith("eval/")}
    assert np.isfinite(summary["eval/return"]) and summary["eval/length"] == 200
    with np.load(sorted((run / "replay").glob("ep-*.npz"))[0]) as ep:
        assert ep["action"].shape == (201, 1) and np.abs(ep["action"]).max() <= 1.0
    names = set().union(*_records(run))
    assert "train/loss/actor" in names
    # a control task has no goal: no success rate is logged or printed, only returns
    assert "eval/success" not in summary and not {"eval/success", "episode/success"} & names
    evals = read_evals(run)
    assert [e["step"] for e in evals] == [0, 130, 260] and all(e["success"] is None for e in evals)
    out = capsys.readouterr().out
    assert f"memwm: eval return {evals[0]['return']:.2f} -> {evals[-1]['return']:.2f} (step 0 -> 260" in out
    assert "success" not in out


def test_resume_after_sigkill_continues_steps_and_replay(tmp_path):
    run = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "agents.cli",
        "train",
        "--env",
        "memory/distracting-100",
        "--backbone",
        "rssm",
        "--run",
        str(run),
        "--checkpoint-every",
        "250",
        *FAST_FLAGS,
    ]
    proc = subprocess.Popen([*cmd, "--steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not len(checkpoint.checkpoints(run / "checkpoints")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (kept,) = checkpoint.checkpoints(run / "checkpoints")[-1:]
    killed_at = checkpoint.load(run / "checkpoints")[0]["counters"]["step"]
    episodes_before = len(list((run / "replay").glob("ep-*.npz")))
    assert killed_at >= 250 and episodes_before >= 2
    resumed = time.time()
    done = subprocess.run([*cmd, "--steps", str(killed_at + 220)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run} from {kept.name} at step {killed_at}" in done.stderr
    payload, _ = checkpoint.load(run / "checkpoints")
    assert payload["counters"]["step"] == killed_at + 220
    # the resumed run replays what was kept and writes on: episodes the killed run wrote past its last checkpoint
    # are dropped and written again under the same names (agents/replay.py), so the count need not grow
    replay = list((run / "replay").glob("ep-*.npz"))
    assert len(replay) >= episodes_before and any(f.stat().st_mtime >= resumed for f in replay)
    steps = [r["step"] for r in _records(run) if "perf/env_steps_per_s" in r]
    assert steps and max(steps) > killed_at


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    run = tmp_path / "corrupt"
    base = dict(env="memory/distracting-100", backbone="rssm", run=str(run), **{**FAST, "checkpoint_every": 50, "prefill": 200})
    train(TrainConfig(steps=150, **base))
    newest = checkpoint.checkpoints(run / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    train(TrainConfig(steps=200, **base))
    err = capsys.readouterr().err
    assert f"checkpoint {newest} is corrupt" in err and "falling back to ckpt-000000100.pt" in err
    assert "resuming" in err and "at step 100" in err
    assert checkpoint.load(run / "checkpoints")[0]["counters"]["step"] == 200


def _cli_error(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1] if "error:" in err else err  # the error line comes after any progress bar


def test_unknown_env_backbone_or_field_is_a_short_error_and_writes_nothing(tmp_path, capsys):
    run = str(tmp_path / "bad")
    err = _cli_error(["train", "--env", "memory/rooms-3", "--run", run], capsys)
    assert len(err.splitlines()) == 1 and "memory/rooms-3" in err and "memory/rooms-2" in err
    err = _cli_error(["train", "--env", "memory/rooms-2", "--backbone", "lstm", "--run", run], capsys)
    assert len(err.splitlines()) == 1 and "unknown backbone 'lstm'" in err and "s5" in err
    err = _cli_error(["train", "--no-such-field", "3", "--run", run], capsys)
    assert "--no-such-field" in err
    assert not Path(run).exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--stepz", "5"], "unknown option --stepz (closest: --steps)"),
        (["train", "--wm.hiden", "3"], "unknown option --wm.hiden (closest: --wm.hidden)"),
        (["train", "--dreamer.entropie", "0.1", "--seq-len", "8"], "unknown option --dreamer.entropie (closest: --dreamer.entropy)"),
        (["train", "--steps", "many"], "Error parsing --steps"),
        (["eval"], "--run"),
        (["trian"], "unknown command trian (closest: train)"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_the_closest_valid_one(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("memwm") and expected in err, err
    assert "╭" not in err and captured.out == ""


def test_all_actions_typed_on_a_continuous_action_space_is_a_one_line_error_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "box"
    err = _cli_error(["train", "--env", "gym:Pendulum-v1", "--dreamer.all-actions", "1.0", "--run", str(run)], capsys)
    assert len(err.splitlines()) == 1 and "needs a Discrete action space" in err and "Pendulum" in err
    assert not run.exists()


def test_resume_with_another_env_or_model_is_a_one_line_error(memory_run, capsys):
    run, _ = memory_run
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    err = _cli_error(["train", "--run", str(run), "--env", "memory/rooms-2"], capsys)
    assert len(err.splitlines()) == 1 and "env='memory/distracting-100'" in err and "env='memory/rooms-2'" in err
    err = _cli_error(["train", "--run", str(run), "--wm.hidden", "32"], capsys)
    assert len(err.splitlines()) == 1 and "wm.hidden=64" in err and "wm.hidden=32" in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_nan_loss_stops_with_the_term_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    import agents.replay

    run = tmp_path / "nan"
    base = dict(env="memory/distracting-100", backbone="rssm", run=str(run), **{**FAST, "checkpoint_every": 50})
    train(TrainConfig(steps=100, **base))
    sample = agents.replay.Replay.sample

    def poisoned(self, *args, **kwargs):
        batch = sample(self, *args, **kwargs)
        batch["reward"] = np.full_like(batch["reward"], np.nan)
        return batch

    monkeypatch.setattr(agents.replay.Replay, "sample", poisoned)
    err = _cli_error(["train", "--run", str(run), "--steps", "400", *FAST_FLAGS, "--checkpoint-every", "50"], capsys)
    assert len(err.splitlines()) == 1 and "loss/reward" in err and "not finite" in err
    payload, _ = checkpoint.load(run / "checkpoints")
    assert payload["counters"]["updates"] == 0  # the checkpoints on disk predate the first (poisoned) update
    assert all(torch.isfinite(v).all() for v in payload["agent"].values() if v.is_floating_point())
