"""One writer per run folder: a second process is refused by name and touches nothing; a killed holder's lock is taken over."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from agents import runlock

HOLDER = textwrap.dedent("""
    import sys, time
    from agents import runlock
    lock = runlock.acquire(sys.argv[1])
    print("held", flush=True)
    time.sleep(120)
""")


def _start_holder(run):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _snapshot(run):
    return sorted((p.relative_to(run).as_posix(), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"") for p in run.rglob("*"))


def test_a_second_process_is_refused_naming_the_holder_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    proc = _start_holder(run)
    try:
        before = _snapshot(run)
        with pytest.raises(runlock.RunLocked) as refused:
            runlock.acquire(run)
        message = str(refused.value)
        assert f"pid {proc.pid} on " in message and str(run) in message and "\n" not in message
        assert _snapshot(run) == before
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_process_is_taken_over_with_a_message(tmp_path):
    run = tmp_path / "run"
    proc = _start_holder(run)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    messages = []
    lock = runlock.acquire(run, log=messages.append)
    try:
        assert len(messages) == 1 and f"pid {proc.pid}" in messages[0] and "has ended" in messages[0], messages
        assert (run / runlock.NAME).read_text().startswith(f"pid {os.getpid()} on ")
    finally:
        lock.release()


def test_a_released_lock_is_taken_silently_and_holds_against_this_process_too(tmp_path):
    run = tmp_path / "run"
    messages = []
    with runlock.acquire(run, log=messages.append):
        with pytest.raises(runlock.RunLocked, match=f"pid {os.getpid()} on "):
            runlock.acquire(run)  # a second open file description is a second writer, even in one process
    with runlock.acquire(run, log=messages.append):
        pass
    assert messages == [] and (run / runlock.NAME).read_text() == ""


def test_memwm_train_on_a_run_in_use_exits_2_with_one_line_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    proc = _start_holder(run)
    try:
        before = _snapshot(run)
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "agents.cli",
                "train",
                "--env",
                "memory/distracting-8",
                "--run",
                str(run),
                "--preset",
                "tiny",
                "--steps",
                "50",
                "--device",
                "cpu",
                "--no-tensorboard",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"memwm train: error: run {run} is in use by pid {proc.pid} on "), lines
        assert _snapshot(run) == before
    finally:
        proc.kill()
        proc.wait()


def test_an_unreadable_lock_text_is_taken_over_without_echoing_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runlock.NAME).write_bytes(bytes(range(1, 200)))
    messages = []
    with runlock.acquire(run, log=messages.append):
        pass
    assert messages == [f"memwm: taking over the lock of {run}: its holder (an unreadable lock text) no longer holds it"]


def test_under_torchrun_rank_0_holds_the_lock_and_a_loop_removes_killed_writes(tmp_path, monkeypatch):
    from agents import distributed
    from agents.loop import Loop, LoopConfig
    from tests.test_agents_loop import Stub

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "replay" / "rank-1").mkdir(parents=True)
    torn = [
        run / "checkpoints" / ".ckpt-000000010.pt.k2j3.tmp",
        run / "replay" / ".ep-0000003-len9.npz.x8a.tmp",
        run / "replay" / "rank-1" / "ep-0000001-len4.npz.tmp",
        run / ".config.yaml.q1.tmp",
    ]
    for path in torn:
        path.write_bytes(b"half")
    keep = run / "replay" / "ep-0000000-len9.npz"
    keep.write_bytes(b"whole")
    config = LoopConfig(steps=1, checkpoint_every=1, log_every=1, tensorboard=False)
    monkeypatch.setattr(distributed, "is_main", lambda: False)  # a rank > 0 of a data-parallel run
    loop = Loop(Stub(), run, config, {"agent": "stub"})
    assert loop.lock is None and not (run / runlock.NAME).exists() and all(p.exists() for p in torn)
    compare_rank = Loop(Stub(), tmp_path / "backbone", dataclasses.replace(config, data_parallel=False), {"agent": "stub"})
    assert compare_rank.lock is not None  # compare's ranks each train their own folder, each under its own lock
    monkeypatch.setattr(distributed, "is_main", lambda: True)
    loop = Loop(Stub(), run, config, {"agent": "stub"})
    assert (run / runlock.NAME).read_text().startswith(f"pid {os.getpid()} on ")
    assert not any(p.exists() for p in torn) and keep.read_bytes() == b"whole"
    with pytest.raises(runlock.RunLocked):
        Loop(Stub(), run, config, {"agent": "stub"})
    loop.lock.release()
    compare_rank.lock.release()
