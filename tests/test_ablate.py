"""benchmarks.ablate: which recorded runs --reuse may stand for an arm, and how an ablation reads them back."""

from __future__ import annotations

import subprocess

import pytest

from benchmarks import ablate, learning, record
from tests.test_report import learning_run, write_record


def run(seed, final, flags="", budget=30.0, exit_code=0):
    return learning_run(seed, final=final, best=final, flags=flags) | {"budget_minutes": budget, "exit_code": exit_code}


def test_recorded_run_takes_the_newest_finished_cpu_run_of_the_same_flags_budget_and_seed(tmp_path):
    write_record(tmp_path, "learning-recall-k8", run(0, 0.1), "2026-01-01T00:00:00Z", commit="1111111aaa")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.2), "2026-01-02T00:00:00Z", commit="2222222aaa")  # newer
    write_record(tmp_path, "learning-recall-k8", run(0, 0.3, budget=20.0), "2026-01-03T00:00:00Z", commit="3333333aaa")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.4, exit_code=1), "2026-01-04T00:00:00Z", commit="4444444aaa")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.5, flags="--x 1"), "2026-01-05T00:00:00Z", commit="5555555aaa")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.6), "2026-01-06T00:00:00Z", commit="6666666aaa", gpu="H100")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.7) | {"backbone": "rssm"}, "2026-01-07T00:00:00Z", commit="7777777aaa")
    got = ablate.recorded_run("recall-k8", "", 30.0, 0, tmp_path, since=None)
    assert got == "learning-recall-k8/20260102T000000Z-2222222.json"
    assert ablate.recorded_run("recall-k8", "--x 1", 30.0, 0, tmp_path, since=None) == "learning-recall-k8/20260105T000000Z-5555555.json"
    assert ablate.recorded_run("recall-k8", "", 30.0, 1, tmp_path, since=None) is None  # no run of seed 1
    assert ablate.recorded_run("recall-k8", "", 10.0, 0, tmp_path, since=None) is None  # nor of a 10-minute budget
    # an earlier ablation's own run counts too, a reference to a run does not (it is not a run)
    write_record(tmp_path, "ablate-recall-k8", run(1, 0.8) | {"arm": "b"}, "2026-01-08T00:00:00Z", commit="8888888aaa")
    reference = {"task": "recall-k8", "flags": "", "seed": 2, "reuses": "learning-recall-k8/x.json", "budget_minutes": 30.0}
    write_record(tmp_path, "ablate-recall-k8", reference, "2026-01-09T00:00:00Z", commit="9999999aaa")
    assert ablate.recorded_run("recall-k8", "", 30.0, 1, tmp_path, since=None) == "ablate-recall-k8/20260108T000000Z-8888888.json"
    assert ablate.recorded_run("recall-k8", "", 30.0, 2, tmp_path, since=None) is None


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=record.REPO, capture_output=True, text=True, check=True).stdout.strip()


def test_only_runs_made_since_the_learner_last_changed_stand_in_for_an_arm(tmp_path, monkeypatch):
    monkeypatch.setattr(learning, "DEFAULTS_SINCE", None)  # records without settings, taken as of today's defaults
    since = git("rev-parse", ablate.LEARNER_SINCE)
    before, head = git("rev-parse", f"{since}~1"), git("rev-parse", "HEAD")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.1), "2026-01-01T00:00:00Z", commit=since)
    write_record(tmp_path, "learning-recall-k8", run(0, 0.2), "2026-01-02T00:00:00Z", commit=before)  # newer, older code
    assert record.made_since(head, since) and record.made_since(since, since) and not record.made_since(before, since)
    assert not record.made_since("0" * 40, since) and not record.made_since(None, since) and record.made_since(None, None)
    got = ablate.recorded_run("recall-k8", "", 30.0, 0, tmp_path, since=ablate.LEARNER_SINCE)
    assert got == f"learning-recall-k8/20260101T000000Z-{since[:7]}.json"
    assert ablate.recorded_run("recall-k8", "", 30.0, 0, tmp_path, since=head) is None  # a learner changed since both
    assert ablate.recorded_run("recall-k8", "", 30.0, 0, tmp_path, since=None).endswith(f"-{before[:7]}.json")


def test_a_run_stands_in_only_on_a_cpu_of_the_model_asked_for(tmp_path):
    write_record(tmp_path, "learning-recall-k8", run(0, 0.1), "2026-01-01T00:00:00Z", commit="1111111aaa", cpu="AMD EPYC")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.2), "2026-01-02T00:00:00Z", commit="2222222aaa", cpu="Intel Xeon")
    write_record(tmp_path, "learning-recall-k8", run(0, 0.3), "2026-01-03T00:00:00Z", commit="3333333aaa")  # CPU unsaid
    on = lambda cpu: ablate.recorded_run("recall-k8", "", 30.0, 0, tmp_path, since=None, cpu=cpu)  # noqa: E731
    assert on("AMD EPYC") == "learning-recall-k8/20260101T000000Z-1111111.json"  # not the newer Intel run
    assert on("Intel Xeon") == "learning-recall-k8/20260102T000000Z-2222222.json"
    assert on("Apple M2") is None
    assert on(None) == "learning-recall-k8/20260103T000000Z-3333333.json"  # any CPU: the newest


def test_reuse_writes_references_for_recorded_runs_and_runs_only_the_missing_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(ablate, "LEARNER_SINCE", None)  # the records' commits are made up
    here = record.machine()["cpu"]
    for seed, final in ((0, 0.1), (1, 0.3)):
        start = f"2026-01-0{seed + 1}T00:00:00Z"
        write_record(tmp_path, "learning-recall-k8", run(seed, final), start, commit="1111111aaa", cpu=here)
    write_record(tmp_path, "learning-recall-k8", run(0, 0.9, flags="--x 1"), "2026-01-03T00:00:00Z", commit="2222222aaa", cpu=here)
    # seed 1's arm b, recorded on another CPU model: it runs again here
    write_record(tmp_path, "learning-recall-k8", run(1, 0.7, flags="--x 1"), "2026-01-04T00:00:00Z", commit="2222222aaa", cpu="elsewhere")
    started = []

    class Finished:  # a run that has ended; `learning.write` is replaced below, so only its facts matter
        def __init__(self, seed, flags):
            self.memwm = {"seed": seed, "flags": flags}

        def poll(self):
            return 0

    def run_one(task, backbone, seed, minutes, runs, flags):
        started.append((seed, flags))
        return Finished(seed, flags)

    monkeypatch.setattr(learning, "run_one", run_one)
    monkeypatch.setattr(learning, "watch", lambda p: None)

    def write(proc, name, extra):  # the record benchmarks.learning writes for a finished run
        payload = run(proc.memwm["seed"], 0.5, flags=proc.memwm["flags"]) | extra
        return record.write_result(name, payload, results=tmp_path)

    monkeypatch.setattr(learning, "write", write)
    args = ablate.Args(task="recall-k8", a="", b="--x 1", seeds=[0, 1], minutes=30.0, reuse=True)
    written = ablate.run_pairs(args, tmp_path)
    assert started == [(1, "--x 1")]  # seed 0's arms and seed 1's arm a are recorded: only seed 1's arm b runs
    assert len(written) == 4
    runs = {(r["arm"], r["seed"]): r for r in ablate.newest_ablation("recall-k8", tmp_path)}
    assert sorted(runs) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert [runs[k]["final"] for k in sorted(runs)] == [0.1, 0.3, 0.9, 0.5]  # the referenced runs' own scores
    assert runs["a", 0]["run_commit"] == "1111111aaa" and runs["b", 0]["run_commit"] == "2222222aaa"
    assert runs["a", 0]["reuses"] == "learning-recall-k8/20260101T000000Z-1111111.json"
    assert runs["b", 1]["run_commit"] == runs["b", 1]["commit"] and "reuses" not in runs["b", 1]
    assert runs["a", 1]["pair"] == {"a": "", "b": "--x 1"} and runs["a", 1]["minutes"] == 30.0
    table = ablate.table("recall-k8", list(runs.values()))
    assert "final: seed 0: +0.100 -> +0.900, seed 1: +0.300 -> +0.500; b - a mean +0.500 (range +0.200 to +0.800)" in table
    made = next(line for line in table.splitlines() if "runs made at" in line)
    assert made.startswith("  runs made at: a 1111111; b ")  # and b's at 2222222 and at this checkout's commit
    assert set(made.split("; b ")[1].split(" (")[0].split(", ")) == {"2222222", runs["b", 1]["commit"][:7]}
    assert "lowest after the bar" not in table  # no run reached the bar: nothing to say of holding it


def test_without_reuse_every_arm_runs_and_a_seeds_two_arms_run_together(tmp_path, monkeypatch):
    write_record(tmp_path, "learning-recall-k8", run(0, 0.1), "2026-01-01T00:00:00Z")
    batches, current = [], []

    class Finished:
        def __init__(self, seed, flags):
            self.memwm = {"seed": seed, "flags": flags}
            current.append((seed, flags))

        def poll(self):  # the first poll closes the batch: every process of it has started by then
            if current:
                batches.append(list(current))
                current.clear()
            return 0

    monkeypatch.setattr(learning, "run_one", lambda task, backbone, seed, minutes, runs, flags: Finished(seed, flags))
    monkeypatch.setattr(learning, "watch", lambda p: None)
    monkeypatch.setattr(learning, "write", lambda proc, name, extra: tmp_path / f"{proc.memwm['seed']}{extra['arm']}")
    ablate.run_pairs(ablate.Args(task="recall-k8", a="", b="--x 1", seeds=[0, 1], minutes=30.0), tmp_path)  # seed 0's a is recorded
    assert batches == [[(0, ""), (0, "--x 1")], [(1, ""), (1, "--x 1")]]


def test_a_reference_to_a_missing_record_fails_loudly(tmp_path):
    pair = {"a": "", "b": "--x 1"}
    reference = {"task": "recall-k8", "arm": "a", "pair": pair, "minutes": 30.0, "reuses": "learning-recall-k8/gone.json"}
    write_record(tmp_path, "ablate-recall-k8", reference, "2026-01-01T00:00:00Z")
    with pytest.raises(FileNotFoundError):
        ablate.newest_ablation("recall-k8", tmp_path)


def test_the_results_pages_ablation_row_reads_referenced_runs_and_names_the_commits_they_were_made_at(tmp_path):
    from benchmarks import report

    pair = {"a": "", "b": "--x 1"}
    for i, (arm, flags, final, code) in enumerate([("a", "", 0.2, "1111111aaa"), ("b", "--x 1", 0.9, "2222222aaa")]):
        reached = {"reached_bar": {"step": 0, "minutes": 0.2}}  # at the first evaluation: the lowest after it is the final
        write_record(tmp_path, "learning-recall-k8", run(0, final, flags=flags) | reached, f"2026-01-0{i + 1}T00:00:00Z", commit=code)
        source = f"learning-recall-k8/2026010{i + 1}T000000Z-{code[:7]}.json"
        reference = {"task": "recall-k8", "flags": flags, "seed": 0, "arm": arm, "pair": pair, "minutes": 30.0, "reuses": source}
        write_record(tmp_path, "ablate-recall-k8", reference, f"2026-01-03T00:00:0{i}Z", commit="3333333aaa")
    (row,) = report.ablation(tmp_path, "").splitlines()[2:]
    cells = row.strip("| ").split(" | ")
    assert cells[1:8] == ["defaults", "`--x 1`", "0", "30", "0.20", "0.90", "+0.70 (+0.70 to +0.70)"]
    assert cells[-3:] == ["+0.70 (+0.70 to +0.70)", "a 1111111; b 2222222", "3333333"]


def test_holding_the_bar_is_read_from_the_evaluations_after_it_was_first_reached():
    evals = [{"step": s, "return": x} for s, x in [(0, -0.5), (10, 0.95), (20, 0.5), (30, 0.0), (40, 0.92), (50, 0.97)]]
    payload = {"metric": "return", "bar": 0.9, "evals": evals, "reached_bar": {"step": 10, "minutes": 1.0}}
    assert learning.lowest_after_bar(payload) == 0.0
    assert learning.share_below_after_bar(payload) == 2 / 4  # 0.5 and 0.0 of the four after step 10
    never = payload | {"reached_bar": None}
    assert learning.lowest_after_bar(never) is None and learning.share_below_after_bar(never) is None
