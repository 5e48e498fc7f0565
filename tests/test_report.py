"""The result tables in the READMEs are what `python -m benchmarks.report` writes from the result files."""

import json
import re

import pytest

from benchmarks import report

PAGES = list(report.PAGES.items())


def write_record(results, name, payload, start, commit="abc1234def", dirty=False, gpu=None, cpu=None):
    """A record file as benchmarks.record writes it (without running git); `gpu`: measured on that GPU; `cpu`: the
    machine's CPU model (None: not said)."""
    folder = results / name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = start.replace("-", "").replace(":", "")
    body = {"name": name, "commit": commit, "dirty": dirty, "command": "python -m benchmarks.x", "start": start}
    body |= {"device": "cuda" if gpu else "cpu", "machine": {"gpu": gpu} | ({"cpu": cpu} if cpu else {})}
    body |= {"load": {"before": [1.0, 1.0, 1.0], "after": [2.0, 2.0, 2.0]}, "payload": payload}
    (folder / f"{stamp}-{commit[:7]}.json").write_text(json.dumps(body))


def learning_run(seed, final, best, first=0.5, updates=100, flags=""):
    return {
        "task": "recall-k8",
        "env": "memory/recall-k8",
        "backbone": "s5",
        "flags": flags,
        "seed": seed,
        "metric": "return",
        "bar": 0.9,
        "bar_minutes": 30.0,
        "budget_minutes": 30.0,
        "wall_minutes": 30.2,
        "load_average_during": [1.5, 2.5],
        "updates": updates,
        "final": final,
        "best": best,
        "met": False,
        "evals": [
            {"step": 0, "minutes": 0.2, "return": first, "success": None},
            {"step": 9, "minutes": 30.0, "return": final, "success": None},
        ],
    }


@pytest.mark.parametrize("page,prefix", PAGES, ids=[p for p, _ in PAGES])
def test_committed_tables_equal_what_their_result_files_give(page, prefix):
    text = (report.REPO / page).read_text()
    assert report.BLOCK.search(text), f"{page} has no report table"
    assert report.drifted(text, prefix) == [], f"{page}: tables differ from their files; run python -m benchmarks.report"


def test_an_edited_number_in_a_copy_of_the_page_is_detected_and_rewritten():
    page, prefix = "benchmarks/results/README.md", ""
    text = (report.REPO / page).read_text()
    table = re.search(r"<!-- report:learning -->\n(.*?)<!-- /report:learning -->", text, re.S).group(1)
    number = re.search(r"\| (-?\d+\.\d\d) \|", table).group(1)  # the first score in the table, planted off by 0.01
    edited_table = table.replace(f"| {number} |", f"| {float(number) + 0.01:.2f} |", 1)
    assert edited_table != table
    edited = text.replace(table, edited_table)
    assert report.drifted(edited, prefix) == ["learning"]
    assert report.render(edited, prefix) == text


def test_every_table_kind_is_placed_in_a_page_and_an_unknown_kind_is_refused():
    placed = {m.group(2) for page, _ in PAGES for m in report.BLOCK.finditer((report.REPO / page).read_text())}
    assert placed == set(report.TABLES)
    with pytest.raises(ValueError, match="unknown report table 'nope'"):
        report.render("<!-- report:nope -->\n<!-- /report:nope -->", "")


def test_benchmarks_without_result_files_render_one_line_each(tmp_path):
    for kind, table in report.TABLES.items():
        out = table(tmp_path, "")
        assert "\n" not in out and "|" not in out, kind


def test_learning_rows_group_seeds_with_mean_and_worst_and_keep_commits_and_flags_apart(tmp_path):
    write_record(tmp_path, "learning-recall-k8", learning_run(0, final=-0.2, best=0.1, updates=100), "2026-01-01T00:00:00Z")
    held = {"final_held_out": {"return": 0.25, "success": None, "episodes": 32, "step": 9}}  # seed 0 predates that score
    write_record(tmp_path, "learning-recall-k8", learning_run(1, final=0.4, best=0.5, updates=300) | held, "2026-01-01T00:00:01Z")
    write_record(tmp_path, "learning-recall-k8", learning_run(0, final=0.0, best=0.0, flags="--wm.dt-max 1.0"), "2026-01-01T00:00:02Z")
    write_record(
        tmp_path, "learning-recall-k8", learning_run(0, final=0.3, best=0.3), "2026-01-02T00:00:00Z", commit="fff0000aaa", dirty=True
    )
    rows = report.learning(tmp_path, "").splitlines()[2:]
    assert len(rows) == 3
    both = rows[0].split(" | ")
    assert both[1:5] == ["s5", "defaults", "0,1", "30"]
    assert both[5:11] == ["0.50 (worst 0.50)", "0.10 (worst -0.20)", "0.25 (1 of 2 seeds)", "0.30 (worst 0.10)", "-", "200"]
    assert "`--wm.dt-max 1.0`" in rows[1]
    assert "fff0000 **with uncommitted changes**" in rows[2]


def test_learning_rows_give_the_lowest_evaluation_after_each_seed_reached_the_bar(tmp_path):
    def run(seed, curve):  # curve: (step, return); the bar is 0.9
        p = learning_run(seed, final=curve[-1][1], best=max(y for _, y in curve))
        reached = next((step for step, y in curve if y >= 0.9), None)
        p["reached_bar"] = None if reached is None else {"step": reached, "minutes": reached / 10}
        return p | {"evals": [{"step": step, "minutes": step / 10, "return": y, "success": None} for step, y in curve]}

    write_record(tmp_path, "learning-recall-k8", run(0, [(0, -0.5), (10, 0.95), (20, 0.5), (30, 1.0)]), "2026-01-01T00:00:00Z")
    write_record(tmp_path, "learning-recall-k8", run(1, [(0, -0.5), (10, 0.2), (20, 0.92), (30, 0.97)]), "2026-01-01T00:00:01Z")
    write_record(tmp_path, "learning-recall-k8", run(2, [(0, -0.5), (10, 0.2), (20, 0.6), (30, 0.7)]), "2026-01-01T00:00:02Z")
    row = report.learning(tmp_path, "").splitlines()[2].split(" | ")
    # seed 0 fell to 0.5 after reaching the bar at step 10, seed 1 held 0.97; seed 2 never reached it
    assert row[9] == "0.73 (worst 0.50) (2 of 3 seeds)"


def test_learning_rows_of_a_gpu_run_name_the_gpu_and_stay_apart_from_the_cpu_rows(tmp_path):
    write_record(tmp_path, "learning-recall-k8", learning_run(0, final=0.1, best=0.2), "2026-01-01T00:00:00Z")
    write_record(tmp_path, "learning-recall-k8", learning_run(1, final=0.3, best=0.4), "2026-01-01T00:00:01Z", gpu="NVIDIA H200")
    rows = [row.split(" | ") for row in report.learning(tmp_path, "").splitlines()[2:]]
    assert [(row[1], row[3]) for row in rows] == [("s5", "0"), ("s5 on NVIDIA H200", "1")]


def test_learning_rows_name_the_env_options_of_a_task_in_another_reward_unit(tmp_path):
    from benchmarks.learning import TASKS

    for task in ("recall-k8", "recall-k8-reward-x32"):
        options = dict(TASKS[task].options)
        run = {**learning_run(0, final=0.1, best=0.2), "task": task, "env_options": options, "bar": TASKS[task].bar}
        write_record(tmp_path, f"learning-{task}", run, "2026-01-01T00:00:00Z")
    rows = report.learning(tmp_path, "").splitlines()[2:]
    assert rows[0].startswith("| [memory/recall-k8](learning-recall-k8/) (return >= 0.9 in 30 min)")
    assert rows[1].startswith("| [memory/recall-k8 reward_scale=32](learning-recall-k8-reward-x32/) (return >= 28.8 in 30 min)")


def test_ablation_rows_give_each_arm_and_the_paired_difference_over_seeds(tmp_path):
    def arm(name, seed, final, flags):
        curve = [{"step": 0, "minutes": 0.1, "return": 0.0, "updates": 0}]
        return {
            "task": "recall-k8",
            "arm": name,
            "flags": flags,
            "seed": seed,
            "minutes": 20,
            "curve": curve,
            "final": final,
            "best": final,
        }

    # the held-out score is in seed 0's pair and in one arm of seed 1: only seed 0 is paired on it
    held = {("a", 0): 0.2, ("b", 0): 0.7, ("b", 1): 0.9}
    for i, (name, seed, final) in enumerate([("a", 0, 0.1), ("b", 0, 0.4), ("a", 1, 0.3), ("b", 1, 0.4), ("a", 2, 0.0)]):
        payload = arm(name, seed, final, "" if name == "a" else "--wm.dt-max 1.0")
        if (name, seed) in held:
            payload |= {"metric": "return", "final_held_out": {"return": held[name, seed], "success": None, "episodes": 32}}
        write_record(tmp_path, "ablate-recall-k8", payload, f"2026-01-01T00:00:0{i}Z")
    (row,) = report.ablation(tmp_path, "").splitlines()[2:]
    cells = row.strip("| ").split(" | ")
    assert cells[1:5] == ["defaults", "`--wm.dt-max 1.0`", "0,1", "20"]
    assert cells[5:9] == ["0.13 (worst 0.00)", "0.40 (worst 0.40)", "+0.20 (+0.10 to +0.30)", "+0.50 (+0.50 to +0.50)"]


def test_files_written_before_records_are_read_as_payloads_without_a_commit(tmp_path):
    (tmp_path / "scaling").mkdir()
    run = {"processes": 1, "threads": 1, "env_steps_per_s": 100.0, "grad_steps_per_s": 0.5, "replayed_steps_per_s": 50.0}
    (tmp_path / "scaling" / "scaling.json").write_text(json.dumps({"runs": [run, {**run, "processes": 2, "env_steps_per_s": 150.0}]}))
    out = report.scaling(tmp_path, "")
    assert "commit before records" in out and "| 2 x 1 | 150 | 1.50x |" in out


def test_throughput_tables_read_the_update_and_the_pooled_sheeprl_records(tmp_path):
    update = {b: {"seconds_per_update": s, "updates_per_s": 1 / s, "wm_params": 4_000_000} for b, s in (("rssm", 12.0), ("s5", 7.5))}
    write_record(tmp_path, "throughput-cpu", {"threads": 1, "preset": "small", "batch": [16, 64], "update": update}, "2026-01-01T00:00:00Z")
    agent = {"seconds_per_update": 5.0, "ratio_vs_sheeprl": 1.2, "ratio_vs_sheeprl_paired": 1.25}
    pooled = {"32": {"runs": 2, "rounds": 22, "memwm_code": "x", "sheeprl_seconds_per_update": 6.3, "memwm-s5": agent}}
    write_record(tmp_path, "throughput-vs-sheeprl", {"run": {}, "pooled": pooled}, "2026-01-01T00:00:00Z")
    assert report.throughput(tmp_path, "").splitlines()[-2:] == ["| s5 | 7.50 | 4,000,000 |", "| rssm | 12.00 | 4,000,000 |"]
    assert report.vs_sheeprl(tmp_path, "").splitlines()[-1] == "| 32 | 2 | 22 | 6.3 | memwm-s5 1.25x |"
    # a run with the roofline: each agent's counted FLOPs, their rate, its share of the matrix product's, the ceiling
    agents = {
        "memwm-s5": {"flops_per_update": 2e11, "gflops": 80.0, "ceiling_ratio_vs_sheeprl": 2.4},
        "sheeprl": {"flops_per_update": 2.2e11, "gflops": 60.0},
    }
    run = {"threads": 1, "matmul_gflops": 160.0, "agents": agents}
    write_record(tmp_path, "throughput-vs-sheeprl", {"run": run, "pooled": pooled}, "2026-01-02T00:00:00Z")
    lines = report.vs_sheeprl(tmp_path, "").splitlines()
    assert lines[-2:] == ["| memwm-s5 | 200.0 | 80.0 | 0.50 | 2.40x |", "| sheeprl | 220.0 | 60.0 | 0.38 | - |"]
    assert "160.0 GFLOP/s on 1 thread(s)" in report.vs_sheeprl(tmp_path, "")


def test_peer_rows_score_each_agent_by_its_held_out_final_and_read_its_curve_at_the_marks(tmp_path):
    def run(arm, seed, final, curve):
        evals = [{"step": 100 * i, "minutes": m, "return": y, "success": None} for i, (m, y) in enumerate(curve)]
        head = {"task": "recall-k8", "env": "memory/recall-k8", "arm": arm, "seed": seed, "metric": "return", "budget_minutes": 15.0}
        return head | {"load_average_during": [1.0, 2.0], "evals": evals, "final_held_out": None if final is None else {"return": final}}

    write_record(
        tmp_path, "peers-recall-k8", run("sb3-recurrentppo", 0, 0.2, [(0.1, -0.5), (4.0, 0.0), (14.8, 0.3)]), "2026-01-01T00:00:00Z"
    )
    write_record(tmp_path, "peers-recall-k8", run("memwm-ppo", 0, 0.9, [(0.1, -0.5), (5.0, 0.6), (14.9, 0.9)]), "2026-01-01T00:00:01Z")
    write_record(tmp_path, "peers-recall-k8", run("memwm-ppo", 1, 0.5, [(0.1, -0.5), (4.5, 0.2), (14.5, 0.7)]), "2026-01-01T00:00:02Z")
    write_record(tmp_path, "peers-recall-k8", run("sb3-recurrentppo", 1, None, [(0.1, -0.5)]), "2026-01-01T00:00:03Z")
    ppo, sb3 = (row.strip("| ").split(" | ") for row in report.peers(tmp_path, "").splitlines()[2:])
    assert ppo[1:5] == ["memwm-ppo", "0,1", "15", "0.70 (worst 0.50)"]
    assert ppo[5] == "0.40 / 0.80 / -" and ppo[6] == "200"  # 5 min: (0.6 + 0.2) / 2; 15 min: (0.9 + 0.7) / 2; the last evaluation's step
    assert sb3[1:5] == ["sb3-recurrentppo", "0,1", "15", "0.20 (1 failed)"]
    assert sb3[5] == "- / - / -"  # seed 1's curve ends long before the marks; 30 min is past the budget


def test_a_peers_row_reads_a_reused_run_and_names_the_commit_it_was_made_at(tmp_path):
    evals = [{"step": 0, "minutes": 0.1, "return": -0.5, "success": None}, {"step": 900, "minutes": 29.9, "return": 0.9, "success": None}]
    run = learning_run(0, final=0.9, best=0.9) | {"evals": evals, "final_held_out": {"return": 0.95}}
    write_record(tmp_path, "learning-recall-k8", run, "2026-01-01T00:00:00Z", commit="1111111aaa")
    reference = {"task": "recall-k8", "env": "memory/recall-k8", "arm": "memwm", "peer": None, "seed": 0, "metric": "return"}
    reference |= {"budget_minutes": 30.0, "reuses": "learning-recall-k8/20260101T000000Z-1111111.json"}
    write_record(tmp_path, "peers-recall-k8", reference, "2026-01-02T00:00:00Z", commit="2222222aaa")
    (row,) = (row.strip("| ").split(" | ") for row in report.peers(tmp_path, "").splitlines()[2:])
    assert row[1:6] == ["memwm", "0", "30", "0.95", "-0.50 / -0.50 / 0.90"]  # the referenced run's curve and held-out score
    assert row[7] == "2222222 (runs made at 1111111)"
    assert "memwm 0.95 over seeds 0 at 2222222 (runs made at 1111111)" in report.headline(tmp_path, "")


def test_reward_units_put_each_units_newest_runs_in_units_of_the_best_return_and_stay_out_of_the_headline(tmp_path):
    def run(task, scale, seed, curve, budget=10.0):
        p = learning_run(seed, final=curve[-1][1], best=max(y for _, y in curve))
        p |= {"task": task, "budget_minutes": budget, "env_options": {"reward_scale": scale} if scale != 1 else {}}
        evals = [{"step": 7500 * i, "minutes": m, "return": y * scale, "success": None} for i, (m, y) in enumerate(curve)]
        return p | {"evals": evals}

    curves = {0: [(0.2, -0.5), (5.0, 0.2), (7.5, 0.6), (10.0, 0.8)], 1: [(0.2, -0.5), (4.9, 0.0), (8.0, 0.4), (10.1, 0.6)]}
    for seed, curve in curves.items():
        write_record(
            tmp_path, "learning-recall-k8-reward-x32", run("recall-k8-reward-x32", 32.0, seed, curve), f"2026-01-02T00:00:0{seed}Z"
        )
        write_record(
            tmp_path, "learning-recall-k8-reward-x1-32", run("recall-k8-reward-x1-32", 1 / 32, seed, curve), f"2026-01-02T00:01:0{seed}Z"
        )
    write_record(
        tmp_path, "learning-recall-k8", run("recall-k8", 1.0, 0, [(0.2, -0.5), (6.0, 0.9), (12.0, 1.0)], 15.0), "2026-01-02T00:02:00Z"
    )
    old = run("recall-k8-reward-x32", 32.0, 0, [(5.0, -9.0)])
    write_record(tmp_path, "learning-recall-k8-reward-x32", old, "2026-01-01T00:00:00Z", commit="0dd0000aaa")  # an older commit
    text = report.reward_units(tmp_path, "").splitlines()
    small, plain, large = (row.strip("| ").split(" | ") for row in text[2:5])
    # the plain task's one seed lies above both scaled units' ranges at every column
    assert text[6] == "Each unit's mean within every other unit's range over seeds: at 5 min no; mean over 5-10 min no; at 10 min no."
    # at 5 min: 0.2 and (seed 1's last evaluation by then) 0.0; over 5-10 min: (0.2 + 0.6 + 0.8) / 3 and 0.4; at 10 min:
    # 0.8 and 0.4 (seed 1's evaluation at 10.1 min comes after the mark)
    for row, unit in ((small, "x1/32"), (large, "x32")):
        assert row[1:4] == [unit, "0,1", "10"] and row[4] == "0.10 (worst 0.00)"
        assert row[5] == "0.47 (worst 0.40)" and row[6] == "0.60 (worst 0.40)" and row[7:] == ["abc1234", "1.5-2.5"]
    assert plain[1:3] == ["x1", "0"] and plain[4:7] == ["-0.50", "0.90", "0.90"]
    # by env steps (evaluation i at step 7,500 i): at 15,000 the third evaluation, over 15,000-30,000 the third and
    # fourth, at 30,000 none (every curve ends before it)
    assert text[8].startswith("| task |") and "| at 15,000 env steps | mean over 15,000-30,000 env steps |" in text[8]
    small, plain, large = (row.strip("| ").split(" | ") for row in text[10:13])
    for row in (small, large):
        assert row[4:7] == ["0.50 (worst 0.40)", "0.60 (worst 0.50)", "-"]
    assert plain[4:7] == ["1.00", "1.00", "-"]
    assert text[14].endswith("at 15,000 env steps no; mean over 15,000-30,000 env steps no; at 30,000 env steps -.")
    # seed 0 at steps 0, 7,500 and 15,000 is what all three units evaluated; they agree at step 0 only
    assert text[-1] == "Evaluations at the same env step and seed (seeds 0) that agree across the units within 0.01: 1 of 3."
    assert [r for r in report.headline(tmp_path, "").splitlines()[2:] if "reward" in r] == []
    assert len(report.headline(tmp_path, "").splitlines()[2:]) == 1  # the plain task only


def test_within_spread_asks_every_units_mean_to_lie_in_every_other_units_range():
    assert report.within_spread([[0.1, 0.3], [0.19, 0.25], [0.24, None, 0.18]]) == "yes"  # means 0.2, 0.22, 0.21
    assert report.within_spread([[0.1, 0.3], [0.5, 0.6]]) == "no"  # 0.2 is below [0.5, 0.6]
    assert report.within_spread([[0.1, 0.3], [0.15, 0.16]]) == "no"  # 0.2 is above the narrow [0.15, 0.16]
    assert report.within_spread([[0.1, 0.3], [None]]) == "-"  # one unit with values: nothing to compare


def test_the_headline_sets_every_arm_of_a_peers_tasks_newest_budget_side_by_side(tmp_path):
    def run(arm, seed, final, budget):
        head = {"task": "recall-k8", "env": "memory/recall-k8", "arm": arm, "seed": seed, "metric": "return", "budget_minutes": budget}
        return head | {"load_average_during": [1.0], "evals": [], "final_held_out": None if final is None else {"return": final}}

    write_record(tmp_path, "peers-recall-k8", run("memwm", 0, 0.1, 8.0), "2026-01-01T00:00:00Z", commit="0dd0000aaa")
    write_record(tmp_path, "peers-recall-k8", run("sheeprl-dreamerv3", 0, -0.5, 15.0), "2026-01-02T00:00:00Z", commit="1110000aaa")
    write_record(tmp_path, "peers-recall-k8", run("memwm-ppo", 0, 0.8, 15.0), "2026-01-02T00:00:01Z", commit="1110000aaa")
    write_record(tmp_path, "peers-recall-k8", run("memwm-ppo", 0, 0.6, 15.0), "2026-01-03T00:00:00Z")  # newer commit, same seed
    write_record(tmp_path, "peers-recall-k8", run("memwm-ppo", 1, None, 15.0), "2026-01-03T00:00:01Z")
    write_record(tmp_path, "peers-recall-k8", run("sb3-recurrentppo", 0, None, 15.0), "2026-01-03T00:00:02Z")  # failed: left out
    write_record(tmp_path, "peers-recall-k8", run("memwm", 0, 0.5, 15.0), "2026-01-02T00:00:02Z", commit="1110000aaa")
    write_record(tmp_path, "peers-recall-k8", run("memwm", 1, 0.9, 15.0), "2026-01-03T00:00:03Z")  # another seed, newer code
    (row,) = report.headline(tmp_path, "").splitlines()[2:]
    assert "| memwm 0.70 (worst 0.50) over seeds 0,1 at 1110000, abc1234; memwm-ppo" in row  # seeds of two commits together
    assert "(memwm and the agents people use instead), 15 min on one CPU core each: held-out final return" in row
    # each arm with its own seeds; no 8-min memwm, no sb3
    assert "; memwm-ppo 0.60 (1 failed) over seeds 0,1 at abc1234; sheeprl-dreamerv3 -0.50 over seeds 0 at 1110000 |" in row


def test_icrl_rows_give_each_memwm_train_env_and_commit_its_held_out_ratio_over_seeds_and_keep_the_own_loop_apart(tmp_path):
    def run(seed, value, steps=600_000):
        target = "return >= 0.9 x Thompson sampling's"
        head = {"part": "bandit", "env": "icrl/bandit-10", "seed": seed, "budget_minutes": 20.0, "steps_cap": None, "backbone": "s5"}
        head |= {"run_command": f"memwm train --agent ppo --env icrl/bandit-10 --seed {seed} --minutes 20 --threads 1 --run x"}
        head |= {"metric": "icrl/return_over_thompson", "target": target, "bar": 0.9, "eval_trials": 200, "load_average_during": [1.0, 2.0]}
        if value is None:
            return head | {"stopped_by": "failure", "train_steps": None, "updates": None, "metrics": None, "value": None, "met": False}
        return head | {"train_steps": steps, "updates": 1000, "value": value, "met": value >= 0.9}

    write_record(tmp_path, "icrl-bandit-10", run(0, 0.95), "2026-01-01T00:00:00Z")
    write_record(tmp_path, "icrl-bandit-10", run(1, 0.86), "2026-01-01T00:00:01Z")
    write_record(tmp_path, "icrl-bandit-10", run(2, 0.92), "2026-01-01T00:00:02Z")
    write_record(tmp_path, "icrl-bandit-10", run(0, None), "2026-01-02T00:00:00Z", commit="fff0000aaa")
    (tmp_path / "icrl").mkdir()  # written by the benchmark's own loop, before records
    own = {"env": "icrl/bandit-10", "backbone": "s5", "train_minutes": 20.0, "updates": 2023, "target": "t", "value": 0.93, "met": True}
    (tmp_path / "icrl" / "icrl-bandit-20min.json").write_text(json.dumps({"bandit": own}))

    out = report.icrl(tmp_path, "")
    blocks = out.split("\n\n")
    rows = [row.strip("| ").split(" | ") for row in blocks[1].splitlines()[2:]]
    assert len(rows) == 2
    assert rows[0][:6] == [
        "[icrl/bandit-10](icrl-bandit-10/)",
        "s5",
        "icrl/return_over_thompson: return >= 0.9 x Thompson sampling's",
        "0,1,2",
        "20",
        "600,000",
    ]
    assert rows[0][7:10] == ["200", "0.91 (worst 0.86)", "2/3"] and rows[0][10] == "abc1234"
    assert rows[1][3] == "0" and rows[1][8:10] == ["- (1 failed)", "0/1"] and rows[1][10].startswith("fff0000")
    assert "own training loop" in blocks[2] and "not by `memwm train --agent ppo`" in blocks[2]
    assert (
        "| [icrl-bandit-20min.json](icrl/icrl-bandit-20min.json) | icrl/bandit-10 | s5 | 20 | 2,023 | t | 0.93 | met | before records |"
        in blocks[3]
    )


def test_the_headline_names_the_cpu_models_its_runs_were_made_on_where_their_records_say(tmp_path):
    write_record(tmp_path, "learning-recall-k8", learning_run(0, 0.2, 0.2), "2026-01-01T00:00:00Z")
    assert "30 min on one CPU core, seeds 0 |" in report.headline(tmp_path, "").splitlines()[2]  # not said: not named
    for seed, cpu in ((0, "Intel Xeon"), (1, "AMD EPYC"), (2, "Intel Xeon")):
        write_record(tmp_path, "learning-recall-k8", learning_run(seed, 0.2, 0.2), f"2026-01-02T00:00:0{seed}Z", cpu=cpu)
    assert "30 min on one CPU core (AMD EPYC, Intel Xeon), seeds 0,1,2 |" in report.headline(tmp_path, "").splitlines()[2]


def test_an_ablation_arms_own_run_with_the_defaults_is_a_default_run_and_a_reference_is_not(tmp_path):
    write_record(tmp_path, "learning-recall-k8", learning_run(0, 0.2, 0.2), "2026-01-01T00:00:00Z")
    arm = {"arm": "b", "pair": {"a": "--x 1", "b": ""}, "minutes": 30.0}
    write_record(tmp_path, "ablate-recall-k8", learning_run(1, 0.6, 0.6) | arm, "2026-01-02T00:00:00Z")
    write_record(tmp_path, "ablate-recall-k8", learning_run(2, 0.9, 0.9, flags="--x 1") | arm | {"arm": "a"}, "2026-01-02T00:00:01Z")
    reference = {"task": "recall-k8", "flags": "", "seed": 0, "reuses": "learning-recall-k8/x.json"} | arm
    write_record(tmp_path, "ablate-recall-k8", reference, "2026-01-03T00:00:00Z")
    write_record(tmp_path, "learning-recall-k8", learning_run(1, 0.4, 0.4), "2026-01-01T00:00:01Z")  # older than the arm's
    groups = report.newest_default_groups(tmp_path)
    assert [(r["payload"]["seed"], r["payload"]["final"]) for r in groups["recall-k8"]] == [(0, 0.2), (1, 0.6)]
    row = report.headline(tmp_path, "").splitlines()[2]
    assert "seeds 0,1 |" in row and row.endswith("| [ablate-recall-k8/](ablate-recall-k8/), [learning-recall-k8/](learning-recall-k8/) |")
    write_record(tmp_path, "learning-recall-k8", learning_run(1, 0.8, 0.8), "2026-01-04T00:00:00Z")  # newer: it wins
    assert [r["payload"]["final"] for r in report.newest_default_groups(tmp_path)["recall-k8"]] == [0.2, 0.8]


def test_the_headline_gives_every_seed_of_a_tasks_newest_default_runs_and_the_products_bandit(tmp_path):
    write_record(tmp_path, "learning-recall-k8", learning_run(0, final=0.9, best=0.9), "2026-01-01T00:00:00Z", commit="0dd0000aaa")
    for seed, final in ((0, 0.2), (1, 0.6)):
        write_record(tmp_path, "learning-recall-k8", learning_run(seed, final=final, best=final), f"2026-01-02T00:00:0{seed}Z")
    write_record(tmp_path, "learning-recall-k8", learning_run(2, final=1.0, best=1.0, flags="--x 1"), "2026-01-03T00:00:00Z")
    write_record(tmp_path, "learning-recall-k8", learning_run(3, final=1.0, best=1.0), "2026-01-03T00:00:01Z", gpu="NVIDIA H200")
    rssm = learning_run(0, final=-0.5, best=-0.5) | {"backbone": "rssm"}  # another backbone: not the defaults
    write_record(tmp_path, "learning-recall-k8", rssm, "2026-01-03T00:00:02Z")
    for seed, value in ((0, 0.95), (1, 0.85)):
        run = {"env": "icrl/bandit-10", "seed": seed, "budget_minutes": 20.0, "value": value, "met": value >= 0.9}
        write_record(tmp_path, "icrl-bandit-10", run, f"2026-01-02T00:00:0{seed}Z")
    rows = report.headline(tmp_path, "").splitlines()[2:]
    assert "seeds 0,1 | return 0.50 (worst 0.50) -> 0.40 (worst 0.20), best 0.40 (worst 0.20); bar 0.9 in 30 min met by 0/2" in rows[0]
    assert "`memwm train --agent ppo --env icrl/bandit-10`, 20 min on one CPU core, seeds 0,1 | 0.90 (worst 0.85)" in rows[1]
    assert "met by 1/2" in rows[1] and len(rows) == 2
    held = {"final_held_out": {"return": 0.3, "success": None, "episodes": 32, "step": 9}}  # a newer default run with that score
    write_record(tmp_path, "learning-recall-k8", learning_run(0, final=0.2, best=0.2) | held, "2026-01-04T00:00:00Z", commit="eee0000aaa")
    assert "-> 0.20, best 0.20, held-out end 0.30; bar 0.9" in report.headline(tmp_path, "").splitlines()[2]
    (tmp_path / "learning-recall-k8" / "20260104T000000Z-eee0000.json").unlink()
    probe = learning_run(0, final=-0.9, best=-0.9) | {"budget_minutes": 12.0}  # newer, shorter than the bar: a probe
    write_record(tmp_path, "learning-recall-k8", probe, "2026-01-05T00:00:00Z", commit="ddd0000aaa")
    assert "seeds 0,1 | return 0.50 (worst 0.50) -> 0.40 (worst 0.20)" in report.headline(tmp_path, "").splitlines()[2]
    (tmp_path / "learning-recall-k8" / "20260105T000000Z-ddd0000.json").unlink()
    for seed, minutes in ((0, 11.5), (1, 12.4)):  # newer runs that the step count ended before their minutes
        run = {"env": "icrl/bandit-10", "seed": seed, "budget_minutes": 20.0, "value": 0.7, "met": False}
        run |= {"stopped_by": "steps", "train_steps": 1_000_448, "wall_minutes": minutes}
        write_record(tmp_path, "icrl-bandit-10", run, f"2026-01-03T00:00:0{seed}Z", commit="fff0000aaa")
    product = report.headline(tmp_path, "").splitlines()[3]
    assert "`memwm train --agent ppo --env icrl/bandit-10`, 1,000,448 env steps (its default; 12 of the 20 min) on one CPU core" in product


def test_the_default_backbone_of_the_report_is_memwm_trains():
    from agents.config import TrainConfig

    assert report.DEFAULT_BACKBONE == TrainConfig().backbone


def test_chain_rows_give_each_link_at_the_runs_last_measurement_and_what_it_made_of_the_cue(tmp_path):
    run = learning_run(2, final=0.5, best=0.6) | {"task": "minigrid-s7", "env": "minigrid/memory-s7", "metric": "success"}
    run["chain"] = [
        {"step": 10, "minutes": 1.0, "chain/z_seen": 0.1},
        {"step": 20, "minutes": 2.5, "chain/z_seen": 0.9, "chain/seen_majority": 0.5, "chain/h_probe": 0.55, "chain/actor_entropy": 0.3}
        | {"chain/actor_right": 0.75, "chain/actor_right_chance": 0.25},
    ]
    run["evals"][-1] |= {"cue_seen": 0.25, "success_seen": 1.0, "success_unseen": 0.5}
    write_record(tmp_path, "learning-minigrid-s7", run, "2026-01-01T00:00:00Z")
    write_record(tmp_path, "learning-recall-k8", learning_run(0, final=0.1, best=0.2), "2026-01-01T00:00:01Z")  # no chain: no row
    held = run | {"seed": 3, "final_held_out": {"return": 0.6, "success": 0.6, "cue_seen": 0.75, "success_seen": 0.7}}
    write_record(tmp_path, "learning-minigrid-s7", held, "2026-01-01T00:00:02Z")
    write_record(tmp_path, "ablate-minigrid-s7", run | {"flags": "--wm.no-obs-norm"}, "2026-01-01T00:00:03Z")  # an ablation arm
    rows = [row.split(" | ") for row in report.chain(tmp_path, "").splitlines()[2:]]
    assert len(rows) == 3 and rows[2][0] == "| [minigrid/memory-s7](ablate-minigrid-s7/)" and rows[2][2] == "`--wm.no-obs-norm`"
    rows = rows[:2]
    assert rows[0][1:5] == ["s5", "defaults", "2", "2.5"]
    assert rows[0][5:11] == ["0.90 (0.50)", "0.55", "-", "-", "0.75 (0.25)", "0.30"]  # the last measurement; a chance it lacks is left out
    assert rows[0][11:14] == ["0.25", "1.00", "0.50"]  # the last evaluation's
    assert rows[1][11:14] == ["0.75", "0.70", "-"]  # the held-out evaluation's, where there is one


def test_runs_that_recorded_the_defaults_settings_are_the_defaults_whatever_they_were_typed_with(tmp_path):
    """A run typed with flags whose settings are this commit's defaults is labelled so and stands in the headline for
    the defaults, with the same settings' runs of other commits (one per seed, the newest); a run typed without flags
    whose settings are no longer the defaults is an earlier default's."""
    from benchmarks import learning

    defaults, other = learning.learner_config("recall-k8", "s5", ""), learning.learner_config("recall-k8", "s5", "--seq-len 16")
    typed = "--dreamer.entropy 0.0003"  # as if this value had been chosen by a flag before it became the default
    for seed, final, start, code in ((0, 0.7, "01", "abc1234def"), (1, 0.9, "02", "fff0000aaa"), (0, 0.8, "03", "eee0000aaa")):
        run = learning_run(seed, final, final, flags=typed) | {"config": defaults}
        write_record(tmp_path, "learning-recall-k8", run, f"2026-01-{start}T00:00:00Z", commit=code)
    write_record(tmp_path, "learning-recall-k8", learning_run(2, -0.5, -0.5) | {"config": other}, "2026-01-04T00:00:00Z")
    rows = report.learning(tmp_path, "").splitlines()[2:]
    assert [r.split(" | ")[2] for r in rows] == [f"`{typed}` (the defaults now)"] * 3 + ["earlier defaults"]
    head = report.headline(tmp_path, "").splitlines()[2:]
    assert "seeds 0,1 | return 0.50 (worst 0.50) -> 0.85 (worst 0.80)" in head[0] and len(head) == 1  # not seed 2
    count = learning_run(0, 0.5, 0.5) | {"task": "count-16", "env": "memory/count-16", "config": other}  # earlier defaults only
    write_record(tmp_path, "learning-count-16", count, "2026-01-05T00:00:00Z")
    head = report.headline(tmp_path, "").splitlines()[2:]
    assert head[1].startswith("| `memwm train --env memory/count-16 --backbone s5` | no run with this commit's defaults yet")
