"""benchmarks/scaling.py: a `memwm train` run per processes x threads, timed by the run loop's own pace scalars."""

import json

import pytest

from benchmarks import scaling


def test_the_pace_is_the_median_after_the_first_updates_and_a_warm_up_point_over_every_rank():
    # no updates before step 150 (the prefill, then a replay too short to sample): the point at 150 saw the first
    # updates (warm-up), so the medians run over the points at 200, 250, 300, 350
    rows = [
        {"step": s, "perf/env_steps_per_s": 1000.0 + s, "perf/train_steps_per_s": s / 100 if s >= 150 else 0.0} for s in range(50, 400, 50)
    ]
    rows.insert(3, {"step": 180, "eval/return": 1.0})  # other scalars are not log points
    out = scaling.pace(rows, processes=2, batch=8, seq_len=32)
    assert out["log_points"] == 4
    assert out["env_steps_per_s"] == pytest.approx(2 * 1275.0)  # median of 1200, 1250, 1300, 1350, both ranks
    assert out["grad_steps_per_s"] == pytest.approx(2.75)
    assert out["replayed_steps_per_s"] == pytest.approx(2.75 * 2 * 8 * 32)


def test_a_run_too_short_to_train_past_its_warm_up_is_an_error_not_a_number():
    rows = [{"step": s, "perf/env_steps_per_s": 1.0, "perf/train_steps_per_s": 0.0} for s in (50, 100, 150)]
    with pytest.raises(RuntimeError, match="after the first updates"):
        scaling.pace(rows, processes=1, batch=8, seq_len=32)
    rows[-1]["perf/train_steps_per_s"] = 1.0  # the first updates, but no point after them
    with pytest.raises(RuntimeError, match="after the first updates"):
        scaling.pace(rows, processes=1, batch=8, seq_len=32)


@pytest.mark.parametrize("text", ["2", "0x1", "1x0", "ax1", "2x1x1"])
def test_a_config_that_is_not_processes_x_threads_is_a_one_line_error(text, capsys):
    assert scaling.main(scaling.Args(configs=[text])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PROCESSESxTHREADS" in err


def test_each_config_is_the_train_command_a_user_types():
    args = scaling.Args(env="memory/recall-k4", minutes=0.5, flags="--batch-size 16")
    one = scaling.train_command(args, 1, 2, scaling.Path("r"))
    two = scaling.train_command(args, 2, 1, scaling.Path("r"))
    assert one[2:5] == ["agents.cli", "train", "--env"] and "--nproc-per-node" not in one
    assert one[one.index("--threads") + 1] == "2" and one[-2:] == ["--batch-size", "16"]
    assert two[two.index("--nproc-per-node") + 1] == "2" and two[two.index("--threads") + 1] == "1"


def test_a_short_run_writes_a_record_with_its_pace(tmp_path):
    args = scaling.Args(
        env="memory/recall-k4",
        configs=["1x1"],
        minutes=0.5,
        flags="--prefill 32 --log-every 16 --checkpoint-every 100000",  # log points early enough to pass on a busy machine
        results=tmp_path,
    )
    assert scaling.main(args) == 0
    (path,) = (tmp_path / "scaling").glob("*.json")
    (row,) = json.loads(path.read_text())["payload"]["runs"]
    assert row["processes"] == 1 and row["threads"] == 1 and row["log_points"] >= 1
    assert row["env_steps_per_s"] > 0 and row["grad_steps_per_s"] > 0
    assert row["command"].startswith("memwm train --env memory/recall-k4") and "RUN" in row["command"]
