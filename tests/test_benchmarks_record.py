"""benchmarks.record: each benchmark run is a new file holding the commit, command, machine and load."""

import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from benchmarks import record


def test_write_result_holds_commit_command_machine_load_and_payload(tmp_path):
    started = record.start()
    payload = {"rows": [{"backend": "torch", "ms": 1.5}], "quick": True}
    path = record.write_result("scan-cpu", payload, started=started, device="cpu", results=tmp_path)
    assert path.parent == tmp_path / "scan-cpu" and path.is_file()
    assert record.RECORD_NAME.match(path.name), path.name
    data = json.loads(path.read_text())
    assert data["payload"] == payload and data["name"] == "scan-cpu" and data["device"] == "cpu"
    head = subprocess.run(["git", "-C", str(record.REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert data["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert path.name.split("-")[1].startswith((data["commit"] or "nogit")[:7])
    assert data["dirty"] in (True, False, None)
    assert data["argv"] == sys.argv and data["command"] == shlex.join(sys.orig_argv)  # as typed: python -m ...
    m = data["machine"]
    assert m["cores"] == os.cpu_count() and m["cpu"] and m["platform"] and m["torch"]
    assert len(data["load"]["before"]) == 3 and len(data["load"]["after"]) == 3
    assert data["start"] <= data["end"] and data["seconds"] >= 0
    assert time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started.time)) == path.name[:16]


def test_two_runs_give_two_files_and_readers_order_them(tmp_path):
    first = record.write_result("envs", {"n": 1}, started=record.Start(time=1_000_000_000.0), results=tmp_path)
    second = record.write_result("envs", {"n": 2}, started=record.Start(time=1_000_000_000.0), results=tmp_path)
    third = record.write_result("envs", {"n": 3}, results=tmp_path)  # default start: when the module was imported
    assert len({first, second, third}) == 3 and all(p.is_file() for p in (first, second, third))
    assert json.loads(first.read_text())["payload"] == {"n": 1}  # the first file is not touched by the second run
    assert second.name.endswith("-2.json")  # same second, same commit: a counter, never an overwrite
    (tmp_path / "envs" / "envs.json").write_text('{"written before records": 1}')  # history is ignored by the readers
    runs = record.all_runs("envs", results=tmp_path)
    assert [r["payload"]["n"] for r in runs] == [1, 2, 3]
    assert record.latest("envs", results=tmp_path)["payload"] == {"n": 3}
    assert runs[0]["path"] == str(first)


def test_readers_of_an_unknown_name_and_bad_names(tmp_path):
    assert record.all_runs("nothing", results=tmp_path) == [] and record.latest("nothing", results=tmp_path) is None
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="plain folder name"):
            record.write_result(bad, {}, results=tmp_path)


def test_envs_benchmark_writes_a_new_record_per_run(tmp_path):
    from benchmarks import envs as bench_envs

    args = bench_envs.Args(only="memory/rooms-2", rounds=1, seconds=0.05, max_steps=50, results=tmp_path)
    first = bench_envs.main(args)
    bench_envs.main(args)
    runs = record.all_runs("envs", results=tmp_path)
    assert len(runs) == 2 and runs[0]["path"] != runs[1]["path"]
    assert runs[0]["payload"] == first and list(first["envs"]) == ["memory/rooms-2"]
    assert 0 < first["envs"]["memory/rooms-2"]["steps_per_s"] and runs[0]["device"] == "cpu"
    assert not (tmp_path / "envs.json").exists()  # nothing merged into a shared file


def test_a_tree_without_git_takes_its_commit_from_memwm_commit(tmp_path, monkeypatch):
    assert record.git_state(record.REPO)[0] is not None  # this checkout: HEAD
    monkeypatch.delenv("MEMWM_COMMIT", raising=False)
    assert record.git_state(tmp_path) == (None, None)
    monkeypatch.setenv("MEMWM_COMMIT", "a" * 40)
    assert record.git_state(tmp_path) == ("a" * 40, None)
    head = subprocess.run(["git", "-C", str(record.REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record.git_state(record.REPO)[0] == head  # a checkout's own HEAD wins over the variable


def test_a_tree_is_dirty_when_its_code_differs_from_its_commit_not_when_a_result_file_does(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "benchmarks" / "results" / "x").mkdir(parents=True)
    (tmp_path / "code.py").write_text("A = 1\n")
    (tmp_path / "benchmarks" / "results" / "x" / "curves.png").write_bytes(b"one")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    assert record.git_state(tmp_path)[1] is False
    (tmp_path / "benchmarks" / "results" / "x" / "curves.png").write_bytes(b"two")  # a benchmark redrew its curves
    (tmp_path / "notes.txt").write_text("untracked")
    assert record.git_state(tmp_path)[1] is False
    (tmp_path / "code.py").write_text("A = 2\n")
    assert record.git_state(tmp_path)[1] is True
