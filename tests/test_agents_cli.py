"""Every `memwm` subcommand ends a user error with one line on stderr and exit status 2, never a
traceback; help texts carry no development history."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import _commands, main

REPO = Path(__file__).resolve().parent.parent


def memwm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["compare", "--task", "nope"], "unknown compare task 'nope'; known: "),
        (["compare", "--task", "distracting-100", "--backbones", "s5,gru"], "unknown backbones ['gru']"),
        (["imagine", "--run", "runs/none"], "does not exist"),
        (["imagine", "--run", "runs/none", "--episodes", "9"], "--episodes must be in [1, 6]"),
        (["collect", "--env", "memory/rooms-3", "--episodes", "1"], "memory/rooms-3"),
        (["eval", "--run", "runs/none"], "is not a memwm run (no config.yaml)"),
        (["envs", "--env", "memory/rooms-3"], "memory/rooms-3"),
        (["train", "--env", "memory/distracting-16", "--seq-len", "0"], "seq_len must be positive"),
        (["train", "--wm.hidden", "-3"], "wm.hidden must be positive, got -3"),
        (["train", "--train-ratio", "0"], "train_ratio must be positive (replayed steps trained on per environment step; 0 would"),
        (["train", "--dreamer.gamma=1.5"], "dreamer.gamma is a share in [0, 1], got 1.5"),
        (["train", "--ppo.rollout", "0"], "memwm train: error: ppo.rollout must be >= 1, got 0;"),  # the config's own check, as it says it
    ],
)
def test_a_user_error_is_one_line_and_exit_2(tmp_path, args, expected):
    done = memwm(*args, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"memwm {args[0]}: error: ") and expected in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()  # nothing written


def test_help_texts_name_no_issues_or_history(capsys):
    for name in _commands():
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code in (0, None)
        text = capsys.readouterr()
        help_text = text.out + text.err
        assert help_text.strip(), name
        assert not re.search(r"\bissue\b", help_text, re.IGNORECASE), (name, help_text)


@pytest.mark.parametrize(
    "args, expected",
    [
        # a message tyro wraps over two lines is joined: the known choices must be named
        (
            ["train", "--wm.objective", "pixels"],
            "memwm train: error: invalid choice 'pixels' for argument '--wm.objective'. "
            "Expected one of ('reconstruction', 'barlow', 'next_embed'); see memwm train --help",
        ),
        (["train", "--stepz", "4"], "memwm train: error: unknown option --stepz (closest: --steps); see memwm train --help"),
        (["eval"], "memwm eval: error: Missing from memwm eval: --run STR; see memwm eval --help"),
    ],
)
def test_parse_errors_are_the_whole_message_on_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == expected


def test_a_minutes_budget_shows_a_bar_over_the_budget_that_ends_the_run(monkeypatch):
    """With --minutes the bar counts seconds of the budget (or up to when the steps run out, if sooner), not 1,000,000 steps."""
    import time

    from agents import loop

    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])

    def progress(steps, minutes):
        config = loop.LoopConfig(steps=steps, checkpoint_every=10, log_every=10, minutes=minutes)
        return loop._Progress(config, 0, "run", disable=False)

    timed = progress(1_000_000, 2.0)  # the minutes end it first
    assert (timed.bar.total, timed.bar.unit) == (120.0, "s")
    clock[0] += 30
    timed.update(100)
    assert (timed.bar.n, timed.bar.total) == (30, 120.0)
    assert "step 100/1,000,000" in str(timed.bar) and "30/120 s" in str(timed.bar)
    timed.bar.close()

    stepped = progress(200, 2.0)  # the steps run out first: at 100 steps in 30 s, 200 take 60 s
    clock[0] += 30
    stepped.update(100)
    assert stepped.bar.total == 60.0 and "30/60 s" in str(stepped.bar)
    stepped.bar.close()

    plain = progress(500, 0.0)  # no time budget: the steps
    plain.update(100)
    assert (plain.bar.total, plain.bar.n, plain.bar.unit) == (500, 100, "step")
    plain.bar.close()
