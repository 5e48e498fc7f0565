"""The result tables of README.md and benchmarks/results/README.md, written from the result files.

    python -m benchmarks.report            # rewrite the tables in both pages
    python -m benchmarks.report --check    # exit 1 (and name the tables) when a page differs from its files

A table sits between `<!-- report:KIND -->` and `<!-- /report:KIND -->`; everything between the two
markers is replaced, everything outside them is hand-written prose and holds no result numbers. Each
KIND is one function below that reads the files of its benchmark under benchmarks/results/: the
records (benchmarks/record.py: commit, dirty, command, machine, load, payload) and the files named
after their folder that were written before records existed (their commit is in `git log`). A
benchmark with no file yet renders as one line saying so.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

from benchmarks import record
from benchmarks.ablate import resolved
from benchmarks.learning import held_out_score, lowest_after_bar, same_learner

REPO = record.REPO
PAGES = {"README.md": "benchmarks/results/", "benchmarks/results/README.md": ""}  # page -> prefix of its links into results/
BLOCK = re.compile(r"(<!-- report:([\w-]+) -->\n)(.*?)(<!-- /report:\2 -->)", re.S)


# ---------------------------------------------------------------- reading the files


def runs(name: str, results: Path) -> list[dict]:
    """Every result file of benchmark `name`, oldest first: files written before records (their JSON as the
    payload, no commit), then the records. Each has `payload`, `commit`, `dirty`, `load` and `path`."""
    folder = results / name
    early = sorted(p for p in folder.glob("*.json") if not record.RECORD_NAME.match(p.name)) if folder.is_dir() else []
    old = [{"payload": json.loads(p.read_text()), "commit": None, "dirty": None, "load": None, "path": str(p)} for p in early]
    return old + record.all_runs(name, results)


def folders(prefix: str, results: Path) -> list[str]:
    return sorted(p.name for p in results.glob(prefix + "*") if p.is_dir())


# ---------------------------------------------------------------- cells


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def num(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def spread(xs: list[float], digits: int = 2) -> str:
    """The mean over seeds, and the worst (lowest) when there is more than one."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return num(mean(xs), digits) if len(xs) == 1 else f"{num(mean(xs), digits)} (worst {num(min(xs), digits)})"


def some(show, xs: list) -> str:
    """`show(xs)`, saying how many seeds it covers when some have no value (None) and some do."""
    have = sum(x is not None for x in xs)
    return show(xs) + (f" ({have} of {len(xs)} seeds)" if 0 < have < len(xs) else "")


def commit(r: dict) -> str:
    if r["commit"] is None:
        return "before records"
    return r["commit"][:7] + (
        " **with uncommitted changes** (dirty tree: the code measured is not exactly this commit's)" if r["dirty"] else ""
    )


def load(r: dict) -> str:
    """The 1-minute load average before and after a record's run."""
    if not r.get("load"):
        return "not recorded"
    a, b = r["load"]["before"][0], r["load"]["after"][0]
    return f"{min(a, b):.1f}-{max(a, b):.1f}"


def link(r: dict, results: Path, prefix: str) -> str:
    rel = Path(r["path"]).relative_to(results)
    return f"[{rel.name}]({prefix}{rel.as_posix()})"


def source(r: dict, results: Path, prefix: str, load_text: str = "") -> str:
    """One line naming a table's file, its commit and load (1-minute load average before and after)."""
    return f"From {link(r, results, prefix)}; commit {commit(r)}; load {load_text or load(r)}."


NONE = "No result file yet."


# ---------------------------------------------------------------- one function per table kind


def options(payload: dict) -> str:
    """The env options of a learning record, as `memwm train --env-options` takes them (none: "")."""
    return "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in payload.get("env_options", {}).items())


def on_device(r: dict) -> str:
    """ "" for a run on the CPU, else " on <the GPU's name>" (the device a learning record trained on)."""
    if r.get("device", "cpu") == "cpu":
        return ""
    return f" on {(r.get('machine') or {}).get('gpu') or r['device']}"


def settings(rs: list[dict]) -> str:
    """The flags a group of learning records' runs were typed with, and whether they learned with the defaults of this
    commit (benchmarks.learning.same_learner): "defaults", "`FLAGS` (the defaults now)", or "earlier defaults" for
    runs typed without flags under defaults that have changed since."""
    flags = rs[0]["payload"]["flags"]
    now = all(same_learner(r, "") for r in rs)
    if flags:
        return f"`{flags}`" + (" (the defaults now)" if now else "")
    return "defaults" if now else "earlier defaults"


def learning(results: Path, prefix: str) -> str:
    """Per task, backbone, flags, commit and budget: the seeds' first, final (in-run and held-out) and best evaluation,
    the lowest evaluation after reaching the bar, updates and minutes."""
    groups = defaultdict(list)
    for name in folders("learning-", results):
        for r in runs(name, results):
            p = r["payload"]
            groups[(p["task"], p["backbone"], p["flags"], commit(r), p["budget_minutes"], on_device(r))].append(r)
    rows = []
    for (task, backbone, _, code, budget, device), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[1][0]["start"])):
        ps = [r["payload"] for r in rs]
        p = ps[0]
        loads = [x for q in ps for x in q["load_average_during"]] or [0.0]
        rows.append(
            [
                f"[{p['env']}{options(p)}]({prefix}learning-{task}/) ({p['metric']} >= {p['bar']:g} in {p['bar_minutes']:g} min)",
                backbone + device,
                settings(rs),
                ",".join(str(q["seed"]) for q in sorted(ps, key=lambda q: q["seed"])),
                f"{budget:g}",
                spread([q["evals"][0][q["metric"]] for q in ps if q["evals"]]),
                spread([q["final"] for q in ps]),
                some(spread, [held_out_score(q) for q in ps]),
                spread([q["best"] for q in ps]),
                some(spread, [lowest_after_bar(q) for q in ps]),
                f"{round(mean(q['updates'] for q in ps)):,}",
                num(mean(q["wall_minutes"] for q in ps), 1),
                f"{sum(q['met'] for q in ps)}/{len(ps)}",
                code,
                f"{min(loads):.1f}-{max(loads):.1f}",
            ]
        )
    header = [
        "task (bar)",
        "backbone",
        "flags",
        "seeds",
        "budget min",
        "start",
        "end",
        "held-out end",
        "best",
        "lowest after the bar",
        "updates",
        "minutes",
        "met",
        "commit",
        "load",
    ]
    return table(header, rows) if rows else NONE


# the learning chain's links (agents/chain.py) as the chain table shows them: (scalar, what it is measured against)
CHAIN_LINKS = (
    ("chain/z_seen", "chain/seen_majority"),
    ("chain/h_probe", "chain/probe_majority"),
    ("chain/reward_sign", "chain/reward_sign_majority"),
    ("chain/imagined_rank", "chain/imagined_rank_chance"),
    ("chain/actor_right", "chain/actor_right_chance"),
    ("chain/actor_entropy", None),
)


def chain(results: Path, prefix: str) -> str:
    """Per learning or ablation run that measured its learning chain (agents/chain.py): each link at the run's last measurement
    against what knowing nothing scores, and what its held-out evaluation (else its last one) says of the task's
    cue: where a memory task's learning breaks."""
    rows = []
    for name in [*folders("learning-", results), *folders("ablate-", results)]:
        for r in runs(name, results):
            p = r["payload"]
            if not p.get("chain"):
                continue
            last = p["chain"][-1]
            cells = [num(last[k]) + (f" ({num(last[c])})" if c and c in last else "") if k in last else "-" for k, c in CHAIN_LINKS]
            cue = p.get("final_held_out") or (p["evals"][-1] if p["evals"] else {})
            rows.append(
                [
                    f"[{p['env']}{options(p)}]({prefix}{name}/)",
                    p["backbone"] + on_device(r),
                    settings([r]),
                    str(p["seed"]),
                    num(last["minutes"], 1) if last.get("minutes") is not None else "-",
                    *cells,
                    *(num(cue[k]) if cue.get(k) is not None else "-" for k in ("cue_seen", "success_seen", "success_unseen")),
                    commit(r),
                ]
            )
    header = [
        "task",
        "backbone",
        "flags",
        "seed",
        "at min",
        "z_t: seen symbol (majority)",
        "h_t: needed symbol (majority)",
        "reward side (majority)",
        "imagined rank (chance)",
        "actor's mode right (chance)",
        "actor entropy",
        "cue seen",
        "success seen",
        "success unseen",
        "commit",
    ]
    return table(header, rows) if rows else NONE


DEFAULT_BACKBONE = "s5"  # memwm train's (agents.config.TrainConfig.backbone; tests/test_report.py checks it)


def newest_default_groups(results: Path) -> dict[str, list[dict]]:
    """Per learning task, the records of its newest group of CPU runs with this commit's defaults and the default
    backbone, benchmarks.learning's and ablation arms' (benchmarks.learning.same_learner: runs that recorded their
    settings form one group across commits,
    older runs one per commit; one budget) run for the bar's minutes, else its newest group at any budget; the newest
    run per seed, sorted by seed. A shorter or longer run (a probe) does not stand for the defaults where runs of the
    bar's minutes exist."""
    groups = defaultdict(dict)  # (task, commit or "settings", budget) -> seed -> the newest record
    # an ablation's arm is a learning run too; across both folders oldest first, so that the newest run of a seed wins
    every = [r for name in folders("learning-", results) + folders("ablate-", results) for r in runs(name, results)]
    for r in sorted(every, key=lambda r: r.get("start") or ""):
        p = r["payload"]
        if "reuses" in p or "task" not in p or "backbone" not in p:  # a reference to a run, not a run
            continue
        if p["backbone"] == DEFAULT_BACKBONE and not on_device(r) and same_learner(r, ""):
            code = "settings" if p.get("config") is not None else commit(r)
            groups[(p["task"], code, p["budget_minutes"])][p["seed"]] = r

    def rank(rs: list[dict]) -> tuple[bool, str]:  # at the bar's minutes first, then the newest
        p = rs[0]["payload"]
        return p["budget_minutes"] == p["bar_minutes"], max(r["start"] for r in rs)

    newest: dict[str, list[dict]] = {}
    for (task, _, _), by_seed in groups.items():
        rs = list(by_seed.values())
        if task not in newest or rank(rs) > rank(newest[task]):
            newest[task] = rs
    return {task: sorted(rs, key=lambda r: r["payload"]["seed"]) for task, rs in newest.items()}


REWARD_UNITS = ("recall-k8-reward-x1-32", "recall-k8", "recall-k8-reward-x32")  # one task, its rewards x1/32, x1, x32
UNIT_WINDOW = (5.0, 10.0)  # minutes of training over which the reward-unit table averages the evaluations
UNIT_STEPS = (15_000, 30_000)  # the same window in env steps, which the machine's load does not move


def reward_units(results: Path, prefix: str) -> str:
    """recall-k8 in three reward units (the newest default runs of each): the evaluation return in units of the
    task's best return (the return over its reward scale), at a window's ends and averaged over it, over seeds; the
    window in minutes of training, then in env steps; then how many evaluations at one env step and seed agree across
    the units."""
    newest = newest_default_groups(results)
    units = []  # (task, records, scale)
    for task in REWARD_UNITS:
        if task in newest:
            ps = [r["payload"] for r in newest[task]]
            units.append((task, newest[task], float((ps[0].get("env_options") or {}).get("reward_scale", 1.0))))
    if not units:
        return NONE
    by_minutes = _unit_table(units, prefix, "minutes", UNIT_WINDOW, lambda x: f"{x:g}", "min")
    by_steps = _unit_table(units, prefix, "step", UNIT_STEPS, lambda x: f"{x:,}", "env steps")
    return by_minutes + "\n\n" + by_steps + "\n\n" + _unit_agreement(units)


def _unit_table(units: list[tuple[str, list[dict], float]], prefix: str, x_key: str, window: tuple, num, unit: str) -> str:
    """The reward-unit table over `window` of the evaluations' `x_key` (minutes or step), its marks written `num(x) unit`."""
    from benchmarks.peers import curve_at

    lo, hi = window
    rows, measured = [], []  # measured: per unit, the per-seed values of each column
    for task, records, scale in units:
        ps = [r["payload"] for r in records]
        curves = [[(e[x_key], e["return"] / scale) for e in p["evals"] if e[x_key] is not None] for p in ps]
        windows = [[y for x, y in c if lo <= x <= hi + 1e-9] for c in curves]
        loads = [x for p in ps for x in p["load_average_during"]] or [0.0]
        columns = ([curve_at(c, lo) for c in curves], [mean(w) if w else None for w in windows], [curve_at(c, hi) for c in curves])
        measured.append(columns)
        rows.append(
            [
                f"[{ps[0]['env']}{options(ps[0])}]({prefix}learning-{task}/)",
                f"x{scale:g}" if scale >= 1 else f"x1/{1 / scale:g}",
                ",".join(str(p["seed"]) for p in ps),
                f"{ps[0]['budget_minutes']:g}",
                *(spread(c) for c in columns),
                commit(records[0]),
                f"{min(loads):.1f}-{max(loads):.1f}",
            ]
        )
    columns = [f"at {num(lo)} {unit}", f"mean over {num(lo)}-{num(hi)} {unit}", f"at {num(hi)} {unit}"]
    header = ["task", "rewards", "seeds", "budget min", *columns, "commit", "load"]
    verdicts = [f"{name} {within_spread([unit[i] for unit in measured])}" for i, name in enumerate(columns)]
    return table(header, rows) + "\n\nEach unit's mean within every other unit's range over seeds: " + "; ".join(verdicts) + "."


def _unit_agreement(units: list[tuple[str, list[dict], float]]) -> str:
    """How many (seed, env step) evaluations that every unit made agree across the units within 0.01 of the best return."""
    per_unit = [
        {(r["payload"]["seed"], e["step"]): e["return"] / scale for r in records for e in r["payload"]["evals"]}
        for _, records, scale in units
    ]
    common = sorted(set.intersection(*(set(u) for u in per_unit)))
    if len(units) < 2 or not common:
        return "No evaluation at an env step and seed that every unit made."
    agree = sum(max(u[k] for u in per_unit) - min(u[k] for u in per_unit) <= 0.01 for k in common)
    seeds = ",".join(str(s) for s in sorted({s for s, _ in common}))
    return f"Evaluations at the same env step and seed (seeds {seeds}) that agree across the units within 0.01: {agree} of {len(common)}."


def within_spread(units: list[list[float | None]]) -> str:
    """'yes' when every unit's mean over its seeds lies within every other unit's range over seeds, else 'no'
    and the pairs that do not; '-' when fewer than two units have values."""
    got = [[v for v in u if v is not None] for u in units]
    got = [u for u in got if u]
    if len(got) < 2:
        return "-"
    outside = [(i, j) for i, u in enumerate(got) for j, v in enumerate(got) if i != j and not min(v) <= mean(u) <= max(v)]
    return "yes" if not outside else "no"


def ablation(results: Path, prefix: str) -> str:
    """Per ablation (task, commit, budget): each arm's final score over seeds, the paired difference b - a, and the
    commits each arm's runs were made at (an ablation run with --reuse references runs recorded before)."""
    groups = defaultdict(list)
    for name in folders("ablate-", results):
        for r in runs(name, results):
            groups[(r["payload"]["task"], commit(r), r["payload"]["minutes"])].append(resolved(r, results))
    rows = []
    for (task, code, minutes), ps in sorted(groups.items()):
        arm = {k: {p["seed"]: p for p in ps if p["arm"] == k} for k in ("a", "b")}
        flags = {k: "; ".join(sorted({f"`{p['flags']}`" if p["flags"] else "defaults" for p in arm[k].values()})) for k in arm}
        paired = sorted(set(arm["a"]) & set(arm["b"]))
        diff = [arm["b"][s]["final"] - arm["a"][s]["final"] for s in paired]
        held = [(held_out_score(arm["a"][s]), held_out_score(arm["b"][s])) for s in paired]
        held_diff = [b - a for a, b in held if a is not None and b is not None]
        low = [(lowest_after_bar(arm["a"][s]), lowest_after_bar(arm["b"][s])) for s in paired]
        low_diff = [b - a for a, b in low if a is not None and b is not None]
        rows.append(
            [
                f"[{task}]({prefix}ablate-{task}/)",
                flags["a"] or "-",
                flags["b"] or "-",
                ",".join(map(str, paired)) or "-",
                f"{minutes:g}",
                spread([p["final"] for p in arm["a"].values()]),
                spread([p["final"] for p in arm["b"].values()]),
                f"{mean(diff):+.2f} ({min(diff):+.2f} to {max(diff):+.2f})" if diff else "-",
                f"{mean(held_diff):+.2f} ({min(held_diff):+.2f} to {max(held_diff):+.2f})" if held_diff else "-",
                f"{mean(low_diff):+.2f} ({min(low_diff):+.2f} to {max(low_diff):+.2f})" if low_diff else "-",
                "; ".join(f"{k} " + ", ".join(sorted({p["run_commit"][:7] for p in arm[k].values()})) for k in arm if arm[k]),
                code,
            ]
        )
    header = [
        "task",
        "arm a",
        "arm b",
        "paired seeds",
        "minutes",
        "a: final",
        "b: final",
        "b - a: mean (range over seeds)",
        "b - a held-out",
        "b - a lowest after the bar",
        "runs made at",
        "commit",
    ]
    return table(header, rows) if rows else "No ablation record yet (`python -m benchmarks.ablate` writes them under `ablate-<task>/`)."


ARM_ORDER = {"memwm": 0, "memwm-ppo": 1}  # memwm's agents first, then the peers


def peer_groups(results: Path) -> dict[tuple, dict[int, tuple[dict, dict]]]:
    """benchmarks.peers records by (task, arm, group, budget minutes), the group the record's commit, or "since
    PEERS_SINCE" for a peer arm's runs made since its code last changed (benchmarks.peers.row_key): per seed, the
    newest (record, payload); a record that references a recorded run (--reuse) by that run's payload
    (benchmarks.peers.resolved: `run_commit`)."""
    from benchmarks.peers import resolved as peer_payload
    from benchmarks.peers import row_key

    groups = defaultdict(dict)
    for name in folders("peers-", results):
        for r in runs(name, results):
            p = peer_payload(r, results)
            groups[(p["task"], p["arm"], row_key(p["arm"], commit(r), r["dirty"]), p["budget_minutes"])][p["seed"]] = (r, p)
    return groups


def peers(results: Path, prefix: str) -> str:
    """Per task, arm and commit (benchmarks.peers): the seeds, the held-out final score (mean and worst), the
    evaluation curve read at fixed minutes (the mean over seeds, where every seed reached the mark), env steps."""
    from benchmarks.peers import MARKS, curve_at, made_at

    rows = []
    groups = sorted(peer_groups(results).items(), key=lambda kv: (kv[0][0], ARM_ORDER.get(kv[0][1], 2), kv[0][2]))
    for (task, arm, _, budget), by_seed in groups:
        ps = [p for _, (_, p) in sorted(by_seed.items())]
        metric = ps[0]["metric"]
        finals = [(p.get("final_held_out") or {}).get(metric) for p in ps]
        marks = []
        for m in MARKS:
            if m > budget + 1e-9:  # past the budget: no curve there
                marks.append("-")
                continue
            ys = [curve_at([(e["minutes"], e[metric]) for e in p["evals"] if e.get(metric) is not None], m) for p in ps]
            marks.append(num(mean(ys)) if ys and None not in ys else "-")
        steps = [e["step"] for p in ps for e in p["evals"][-1:]]
        loads = [x for p in ps for x in p["load_average_during"]] or [0.0]
        rows.append(
            [
                f"[{ps[0]['env']}]({prefix}peers-{task}/)",
                arm,
                ",".join(str(p["seed"]) for p in ps),
                f"{budget:g}",
                spread(finals) + ("" if None not in finals else f" ({finals.count(None)} failed)"),
                " / ".join(marks) or "-",
                f"{round(mean(steps)):,}" if steps else "-",
                made_at([commit(r) for r, _ in sorted(by_seed.values(), key=lambda rp: rp[0]["start"])], ps),
                f"{min(loads):.1f}-{max(loads):.1f}",
            ]
        )
    header = [
        "task",
        "agent",
        "seeds",
        "budget min",
        "held-out final",
        "eval at " + " / ".join(f"{m:g}" for m in MARKS) + " min",
        "env steps",
        "commit",
        "load",
    ]
    return table(header, rows) if rows else "No result file yet (`python -m benchmarks.peers` writes them under `peers-<task>/`)."


def link_arms(kind: str, results: Path):
    """Each arm of each offline link record (benchmarks.reward_link, benchmarks.cue_link; `kind` the folders'
    prefix): (folder, record, its label "a: `overrides`" or "a: defaults", that arm's runs)."""
    for name in folders(kind, results):
        for r in runs(name, results):
            p = r["payload"]
            for arm in ("a", "b"):
                mine = [run for run in p["runs"] if run["arm"] == arm]
                if mine:
                    yield name, r, f"{arm}: `{p[arm]}`" if p[arm] else f"{arm}: defaults", mine


def reward_link(results: Path, prefix: str) -> str:
    """Per benchmarks.reward_link record and arm: the reward head and the memory probe after the last update, over seeds."""
    rows = []
    for name, r, label, mine in link_arms("reward-link-", results):
        p, last = r["payload"], [run["curve"][-1] for run in mine]
        rel, sign, h = ([x[key] for x in last] for key in ("reward_rel_mse", "reward_sign", "h_probe"))
        rows.append(
            [
                f"[{p['task']}]({prefix}{name}/)",
                label,
                str(len(last)),
                f"{p['updates']:,}",
                f"{mean(rel):.2f} ({min(rel):.2f} to {max(rel):.2f})",
                f"{mean(sign):.2f} (majority {mean(x['reward_sign_majority'] for x in last):.2f})",
                f"{mean(h):.2f} ({min(h):.2f} to {max(h):.2f})",
                commit(r),
            ]
        )
    header = ["task", "arm", "seeds", "updates", "reward error / variance", "reward sign", "symbol K back in h_t (chance 0.25)", "commit"]
    return table(header, rows) if rows else NONE


def cue_link(results: Path, prefix: str) -> str:
    """Per benchmarks.cue_link record and arm: the chain's first links after the last update, over seeds, each
    against its majority rate, and the pixels' probe (what a linear probe reads from the observation itself)."""
    rows = []
    for name, r, label, mine in link_arms("cue-link-", results):
        p, last = r["payload"], [run["curve"][-1] for run in mine]
        untrained = [run["curve"][0]["z_seen"] for run in mine if run["curve"][0]["update"] == 0]
        cells = [f"{mean(untrained):.2f}" if untrained else "-"]
        for key in ("z_seen", "h_probe", "reward_side"):
            got = [x[key] for x in last]
            cells.append(f"{mean(got):.2f} ({min(got):.2f} to {max(got):.2f}; majority {mean(x[key + '_chance'] for x in last):.2f})")
        rows.append(
            [
                f"[{p['task']}]({prefix}{name}/)",
                label,
                ",".join(str(run["seed"]) for run in mine),
                f"{p['updates']:,}",
                *cells,
                f"{mean(x['pixels_seen'] for x in last):.2f}",
                commit(r),
            ]
        )
    header = [
        "task",
        "arm",
        "seeds",
        "updates",
        "z_t: seen cue, untrained",
        "z_t: seen cue",
        "h_t: cue after seen",
        "reward side at the end",
        "pixels: seen cue",
        "commit",
    ]
    return table(header, rows) if rows else NONE


def eval_posterior(results: Path, prefix: str) -> str:
    """Per benchmarks.eval_posterior record: the runs' return acting from a sampled posterior latent and from its
    mode (the same checkpoints and episodes), and the paired difference."""
    rows = []
    for name in folders("eval-posterior-", results):
        for r in runs(name, results):
            p = r["payload"]
            sample, mode = ([run[k]["eval/return"] for run in p["runs"]] for k in ("sample", "mode"))
            diff = [b - a for a, b in zip(sample, mode)]
            trained = sorted({run["flags"] for run in p["runs"]})
            rows.append(
                [
                    f"[{p['env']}]({prefix}{name}/)",
                    ", ".join(trained),
                    ",".join(str(run["seed"]) for run in p["runs"]),
                    f"{round(mean(run['step'] for run in p['runs'])):,}",
                    f"{p['episodes']:,}",
                    spread(sample),
                    spread(mode),
                    f"{mean(diff):+.2f} ({min(diff):+.2f} to {max(diff):+.2f})",
                    commit(r),
                ]
            )
    header = ["task", "trained acting with", "seeds", "env steps", "episodes", "sample: return", "mode: return", "mode - sample", "commit"]
    return table(header, rows) if rows else NONE


def answers(results: Path, prefix: str) -> str:
    """Per run of a benchmarks.answers record: how often the actor named each right answer, and how often that answer
    was below the actor's unimix floor there."""
    rows = []
    for name in folders("answers-", results):
        for r in runs(name, results):
            p = r["payload"]
            for run in p["runs"]:
                found = run["answers"]
                rows.append(
                    [
                        f"[{p['env']}]({prefix}{name}/)",
                        f"`{Path(run['run']).name}`",
                        str(run["seed"]),
                        f"{run['step']:,}",
                        f"{p['episodes']:,}",
                        " · ".join(f"{k}: {v['right']:.2f}" for k, v in found.items()),
                        " · ".join(f"{k}: {v['below_floor']:.2f}" for k, v in found.items()),
                        " · ".join(f"{k}: {v['q_best']:.2f}" if "q_best" in v else f"{k}: -" for k, v in found.items()),
                        " · ".join(f"{k}: {v['count']:,}" for k, v in found.items()),
                        commit(r),
                    ]
                )
    header = [
        "task",
        "run",
        "seed",
        "env steps",
        "episodes",
        "named right, by answer",
        "below the floor, by answer",
        "one-step Q ranks it first, by answer",
        "scored steps",
        "commit",
    ]
    return table(header, rows) if rows else NONE


def scan(results: Path, prefix: str) -> str:
    """The newest scan benchmark per device: the `auto` backend against the elementwise floor and the reference loop."""
    out = []
    for name in folders("scan-", results):
        r = runs(name, results)[-1]
        p = r["payload"]
        rows = []
        for case in p["cases"]:
            by = {row["backend"]: row for row in case["rows"]}
            auto, torch = by["auto"], by.get("torch", {})
            rows.append(
                [
                    f"{case['name']} ({case['dtype']}, B={case['B']}, D={case['D']})",
                    auto["resolved"],
                    num(auto["fwd_ms"]),
                    num(auto["fwd_vs_floor"]),
                    num(auto["fwd_bwd_ms"]),
                    num(auto["fwd_bwd_vs_3_floors"]),
                    f"{auto['fwd_bwd_vs_reference']:.2f}x",
                    num(torch.get("fwd_vs_floor")),
                ]
            )
        header = [
            "case",
            "auto =",
            "fwd ms",
            "fwd / floor",
            "fwd+bwd ms",
            "fwd+bwd / 3 floors",
            "fwd+bwd vs reference loop",
            "torch fwd / floor",
        ]
        met = ", ".join(f"{k.replace('_', ' ')}: {'met' if v else 'not met'}" for k, v in p["targets"].items() if isinstance(v, bool))
        intro = f"{source(r, results, prefix)} Device {p['device']}, torch {p['torch']}."
        out.append(f"{intro}\n\n{table(header, rows)}\n\nTargets at {p['targets']['shape']}: {met}.")
    return "\n\n".join(out) or NONE


def world_models(results: Path, prefix: str) -> str:
    """The newest world-model benchmark per device: train-step time and memory, imagination step by context, targets."""
    out = []
    for name in folders("world-models-", results):
        r = runs(name, results)[-1]
        p = r["payload"]
        train, image, imagine = p["train_vector"], p["train_image"], p["imagination"]
        rows = [
            [
                b,
                f"{train[b]['64']['params']:,}",
                *(num(train[b][n]["ms"], 0) for n in ("64", "256", "1024")),
                num(image[b]["ms"], 0),
                num(train[b]["1024"]["peak_mb"], 0),
                *(num(imagine[b]["ms_per_step"][n]) for n in ("64", "256", "1024")),
            ]
            for b in p["backbones"]
        ]
        header = [
            "backbone",
            "params",
            "train L=64 ms",
            "L=256",
            "L=1024",
            "image L=64",
            "peak L=1024 MB",
            "imagine ms/step after 64",
            "256",
            "1024",
        ]
        setup = p.get("setup", {})
        loads = sorted([setup["load_start"][0], setup["load_end"][0]]) if "load_start" in setup else None
        when = f"{loads[0]:.1f}-{loads[1]:.1f}" if loads else ""
        targets = table(["target", "measured", ""], [[k, v["value"], "met" if v["pass"] else "not met"] for k, v in p["targets"].items()])
        out.append(f"{source(r, results, prefix, when)}\n\n{table(header, rows)}\n\n{targets}")
    return "\n\n".join(out) or NONE


def envs(results: Path, prefix: str) -> str:
    """The newest environment benchmark: steps per second of each id."""
    rs = runs("envs", results)
    if not rs:
        return NONE
    p = rs[-1]["payload"]
    rows = [[f"`{k}`", f"{v['steps_per_s']:,.0f}"] for k, v in p["envs"].items()]
    floor = f"Slowest memory task {p['memory_suite_min_steps_per_s']:,.0f} steps/s (target {p['memory_suite_target_steps_per_s']:,.0f})."
    return f"{source(rs[-1], results, prefix)} {floor}\n\n{table(['id', 'steps/s'], rows)}"


def throughput(results: Path, prefix: str) -> str:
    """The newest Dreamer update benchmark per device: seconds per full update of each backbone."""
    out = []
    for name in folders("throughput-", results):
        if name == "throughput-vs-sheeprl" or name.endswith("-quick"):
            continue
        r = runs(name, results)[-1]
        p = r["payload"]
        rows = [
            [b, num(u["seconds_per_update"]), f"{u['wm_params']:,}"]
            for b, u in sorted(p["update"].items(), key=lambda kv: kv[1]["seconds_per_update"])
        ]
        intro = f"{source(r, results, prefix)} Preset {p['preset']}, batch {p['batch'][0]} x {p['batch'][1]}, {p['threads']} thread(s)."
        out.append(f"{intro}\n\n{table(['backbone', 's / update', 'world-model params'], rows)}")
    return "\n\n".join(out) or NONE


def vs_sheeprl(results: Path, prefix: str) -> str:
    """The newest comparison with sheeprl's DreamerV3: per precision, memwm's updates/s over sheeprl's, pooled over runs."""
    rs = runs("throughput-vs-sheeprl", results)
    if not rs:
        return NONE
    rows = []
    for key, v in rs[-1]["payload"]["pooled"].items():
        mine = {k: x for k, x in v.items() if isinstance(x, dict)}
        ratios = ", ".join(f"{k} {x['ratio_vs_sheeprl_paired']:.2f}x" for k, x in mine.items())
        rows.append([key, v["runs"], v["rounds"], num(v["sheeprl_seconds_per_update"], 1), ratios])
    header = ["precision", "runs", "rounds", "sheeprl s / update", "memwm updates/s over sheeprl's (median of paired rounds)"]
    out = f"{source(rs[-1], results, prefix)}\n\n{table(header, rows)}"
    run = rs[-1]["payload"]["run"]
    if "matmul_gflops" in run:  # the roofline of the newest run (benchmarks.throughput's docstring, item 3)
        rate = run["matmul_gflops"]
        rows = [
            [
                name,
                num(a["flops_per_update"] / 1e9, 1),
                num(a["gflops"], 1),
                f"{a['gflops'] / rate:.2f}",
                f"{a['ceiling_ratio_vs_sheeprl']:.2f}x" if "ceiling_ratio_vs_sheeprl" in a else "-",
            ]
            for name, a in run["agents"].items()
        ]
        header = ["agent", "GFLOP per update", "GFLOP/s", "of the matrix product's rate", "ceiling over sheeprl"]
        out += (
            f"\n\nThe newest run's roofline: a matrix product ran at {num(rate, 1)} GFLOP/s on {run['threads']} thread(s); "
            "the FLOPs are those of the matrix products and convolutions, and the ceiling is memwm's ratio if every one "
            f"of them ran at that rate and nothing else took time.\n\n{table(header, rows)}"
        )
    return out


def icrl(results: Path, prefix: str) -> str:
    """In-context RL: per env, commit and budget, the `memwm train --agent ppo` runs (benchmarks.icrl, one record
    per seed, the newest per seed): their held-out score against the target, mean and worst over seeds, and how
    many met it. Then the older results of benchmarks/icrl.py's own training loop, said to be such, and the speed
    ratios."""
    groups = defaultdict(dict)
    for name in folders("icrl-", results):
        for r in runs(name, results):
            p = r["payload"]
            groups[(p["env"], commit(r), p["budget_minutes"], p.get("steps_cap"))][p["seed"]] = (name, r)
    product = []
    for (env, code, budget, cap), by_seed in sorted(groups.items(), key=lambda kv: (kv[0][0], min(r["start"] for _, r in kv[1].values()))):
        name = next(iter(by_seed.values()))[0]
        ps = [r["payload"] for _, (_, r) in sorted(by_seed.items())]
        values = [q["value"] for q in ps]
        steps = [q["train_steps"] for q in ps if q["train_steps"] is not None]
        updates = [q["updates"] for q in ps if q["updates"] is not None]
        loads = [x for q in ps for x in q["load_average_during"]] or [0.0]
        product.append(
            [
                f"[{env}]({prefix}{name}/)",
                ", ".join(sorted({q["backbone"] for q in ps if q.get("backbone")})) or "-",
                f"{ps[0]['metric']}: {ps[0]['target']}",
                ",".join(str(q["seed"]) for q in ps),
                f"{budget:g}" + ("" if cap is None else f" (cap {cap:,} steps)"),
                f"{round(mean(steps)):,}" if steps else "-",
                f"{round(mean(updates)):,}" if updates else "-",
                ", ".join(sorted({f"{q['eval_trials']:,}" for q in ps})),
                spread(values) + ("" if None not in values else f" ({values.count(None)} failed)"),
                f"{sum(q['met'] for q in ps)}/{len(ps)}",
                code,
                f"{min(loads):.1f}-{max(loads):.1f}",
            ]
        )
    own, speed = [], []
    rs = runs("icrl", results)
    for r in rs:
        for part in ("bandit", "dark_room"):
            if part in r["payload"]:
                q = r["payload"][part]
                own.append(
                    [
                        link(r, results, prefix),
                        q["env"],
                        q["backbone"],
                        f"{q['train_minutes']:g}",
                        f"{q['updates']:,}",
                        q["target"],
                        num(q["value"]),
                        "met" if q["met"] else "not met",
                        commit(r),
                    ]
                )
        if "speed" in r["payload"]:
            s = r["payload"]["speed"]
            for length, ratio in s["s5_over_rssm"].items():
                speed.append([link(r, results, prefix), length, f"{ratio['loop']:.2f}x", f"{ratio['update']:.2f}x", s["target"], commit(r)])
    if not product and not rs:
        return NONE
    header = ["env", "memory", "target", "seeds", "minutes", "env steps", "updates", "held-out trials", "measured", "met", "commit", "load"]
    out = [
        "`memwm train --agent ppo --env ENV --seed S --minutes M --threads 1` with the defaults, one run per seed, its "
        "latest checkpoint scored on held-out trials by `memwm eval`'s evaluation; measured: mean (worst) over seeds.",
        table(header, product) if product else "No `memwm train --agent ppo` record yet.",
    ]
    if own:
        out.append("Earlier results, trained by benchmarks/icrl.py's own training loop and PPO settings, not by `memwm train --agent ppo`:")
        out.append(table(["file", "env", "memory", "minutes", "updates", "target", "measured", "", "commit"], own))
    if speed:
        out.append(table(["file", "trial length", "s5 / rssm steps/s: whole loop", "update alone", "target", "commit"], speed))
    return "\n\n".join(out)


def scaling(results: Path, prefix: str) -> str:
    """The newest data-parallel scaling benchmark: steps per second by processes x threads."""
    rs = runs("scaling", results)
    if not rs:
        return NONE
    r, p = rs[-1], rs[-1]["payload"]
    base = p["runs"][0]
    rows = [
        [
            f"{q['processes']} x {q['threads']}",
            num(q["env_steps_per_s"], 0),
            f"{q['env_steps_per_s'] / base['env_steps_per_s']:.2f}x",
            num(q["grad_steps_per_s"]),
            num(q["replayed_steps_per_s"], 0),
            f"{q['replayed_steps_per_s'] / base['replayed_steps_per_s']:.2f}x",
        ]
        for q in p["runs"]
    ]
    machine = p.get("machine", {})
    when = f"{machine['load_avg_1min']:.1f}" if "load_avg_1min" in machine else ""
    first = f"vs {base['processes']} x {base['threads']}"
    header = ["processes x threads", "env steps/s", first, "gradient steps/s", "replayed steps/s", first]
    earlier = "" if "command" in base else " Timed by an earlier version of the benchmark: acting and updates apart, in its own loop."
    return f"{source(r, results, prefix, when)}{earlier}\n\n{table(header, rows)}"


def faults(results: Path, prefix: str) -> str:
    """The newest fault benchmark: kills survived, damaged files, a second writer, a full disk."""
    rs = runs("faults", results)
    if not rs:
        return NONE
    r, p = rs[-1], rs[-1]["payload"]
    k = p["kills"]
    moments = ", ".join(sorted({e["moment"] for e in k["events"]}))
    rows = [
        [
            f"SIGKILL x{k['kills']} ({moments})",
            f"{k['survived']}/{k['kills']}",
            f"mean {k['steps_lost_mean']:.0f}, max {k['steps_lost_max']} ({k['checkpoint_every']})",
            k["files_skipped"],
            f"{k['runs_finished']}/1",
        ]
    ]
    for name, d in p["damaged"].items():
        outcome = "fell back to the previous checkpoint" if d["fell_back"] else "one-line error" if d["one_line_error"] else "finished"
        rows.append([name, "-", "-", d["files_skipped"], f"{d['runs_finished']}/1: {outcome}" + (", traceback" if d["traceback"] else "")])
    w, disk = p["second_writer"], p["full_disk"]
    rows.append(["second writer", "-", "-", "-", f"{'refused' if w['refused'] else 'not refused'}, exit {w['returncode']}"])
    rows.append(
        [
            f"full disk ({disk['tmpfs_mib']} MiB tmpfs)",
            "-",
            "-",
            "-",
            f"exit {disk['returncode']}, {'one-line error' if disk['one_line_error'] else 'no one-line error'}, "
            f"{len(disk['unparsable'])} unparsable files, last checkpoint (step {disk['last_checkpoint_step']}) "
            f"{'loads' if disk['last_checkpoint_loads'] else 'does not load'}",
        ]
    )
    header = ["scenario", "kills survived", "steps lost per kill (interval)", "files skipped", "runs finished"]
    return f"{source(r, results, prefix)}\n\n{table(header, rows)}"


def compare(results: Path, prefix: str) -> str:
    """Every `memwm compare` results file: per backbone the speed and the probes on held-out episodes."""
    rows = []
    for name in folders("compare-", results):
        for path in sorted((results / name).glob("results*.json")):
            p = json.loads(path.read_text())
            s = p["settings"]
            for b, v in p["backbones"].items():
                probes = v["probes"]
                rows.append(
                    [
                        f"[{name}/{path.name}]({prefix}{name}/{path.name})",
                        f"{s['steps']:,} steps, {s['episodes']:,} episodes",
                        b,
                        f"{v['speed']['params']:,}",
                        num(v["speed"]["train_step_ms"], 0),
                        num(v["speed"].get("load"), 1),
                        num(v["speed"]["imagine_ms_per_step"]),
                        *(f"{probes[k]:.1%}" if k in probes else "-" for k in ("reward_acc_inference", "reward_acc_imagination")),
                        num(probes.get("query_mse"), 4),
                    ]
                )
    header = [
        "file",
        "budget",
        "backbone",
        "params",
        "train step ms",
        "load",
        "imagine ms/step",
        "reward acc (inference)",
        "(imagination)",
        "query MSE",
    ]
    return table(header, rows) if rows else NONE


def side_by_side(results: Path) -> list[tuple[str, float, list[tuple[str, str, list[dict]]]]]:
    """Per peers task, its newest budget: every arm run at that budget, each seed's newest record (a seed run again
    at a newer commit replaces the older one; seeds run at different commits stand together), as (arm, the commits
    joined, payloads by seed), memwm's agents first. Arms whose every run failed are left out."""
    from benchmarks.peers import made_at

    groups = peer_groups(results)
    start = {key: max(r["start"] for r, _ in by_seed.values()) for key, by_seed in groups.items()}  # its newest record
    out = []
    for task in sorted({key[0] for key in groups}):
        budget = max((key for key in groups if key[0] == task), key=start.get)[3]
        arms = defaultdict(dict)  # arm -> seed -> (commit, payload); oldest first, so each seed's newest record stays
        for key in sorted((key for key in groups if key[0] == task and key[3] == budget), key=start.get):
            for seed, (r, p) in groups[key].items():
                arms[key[1]][seed] = (commit(r), p)
        rows = []
        for arm, by_seed in sorted(arms.items(), key=lambda kv: (ARM_ORDER.get(kv[0], 2), kv[0])):
            codes = [code for code, _ in (by_seed[s] for s in sorted(by_seed))]
            ps = [p for _, p in (by_seed[s] for s in sorted(by_seed))]
            rows.append((arm, made_at(codes, ps), ps))
        rows = [row for row in rows if any((p.get("final_held_out") or {}).get(p["metric"]) is not None for p in row[2])]
        if rows:
            out.append((task, budget, rows))
    return out


def headline(results: Path, prefix: str) -> str:
    """The README's few results: per task the newest group of learning runs with the defaults (every seed of
    that commit and budget: the mean and the worst), and the newest of each other benchmark."""
    rows = []
    defaults = newest_default_groups(results)
    for _, rs in sorted(defaults.items()):
        ps = [r["payload"] for r in rs]
        if ps[0].get("env_options"):  # a variant of a task (its rewards in another unit): in the results page
            continue
        p, m = ps[0], ps[0]["metric"]
        seeds = ",".join(str(q["seed"]) for q in ps)
        cpus = sorted({(r.get("machine") or {}).get("cpu") for r in rs} - {None})  # a bar in minutes depends on the CPU
        core = "one CPU core" + (f" ({', '.join(cpus)})" if cpus else "")
        what = f"`memwm train --env {p['env']} --backbone {p['backbone']}`, {p['budget_minutes']:g} min on {core}, seeds {seeds}"
        start = spread([q["evals"][0][m] for q in ps if q["evals"]])
        score = f"{m} {start} -> {spread([q['final'] for q in ps])}, best {spread([q['best'] for q in ps])}"
        held = [held_out_score(q) for q in ps]
        if any(h is not None for h in held):
            score += f", held-out end {some(spread, held)}"
        result = f"{score}; bar {p['bar']:g} in {p['bar_minutes']:g} min met by {sum(q['met'] for q in ps)}/{len(ps)}"
        homes = sorted({Path(r["path"]).parent.name for r in rs})  # learning-<task>/, and ablate-<task>/ where an arm is
        rows.append([what, result, ", ".join(f"[{home}/]({prefix}{home}/)" for home in homes)])
    for name in folders("learning-", results):  # a task whose runs all measured other defaults: say so, not nothing
        task, ps = name.removeprefix("learning-"), [r["payload"] for r in runs(name, results)]
        if task in defaults or not ps or ps[-1].get("env_options"):
            continue
        what = f"`memwm train --env {ps[-1]['env']} --backbone {DEFAULT_BACKBONE}`"
        rows.append(
            [what, "no run with this commit's defaults yet (earlier defaults' runs: the results page)", f"[{name}/]({prefix}{name}/)"]
        )
    longest = {}  # per compare task with the reward probe, the results file of the most training steps
    for path in sorted(results.glob("compare-*/results*.json")):
        p = json.loads(path.read_text())
        if p["probe"] == "reward" and p["settings"]["steps"] > longest.get(p["task"], (0,))[0]:
            longest[p["task"]] = (p["settings"]["steps"], path, p)
    for _, path, p in longest.values():
        accs = ", ".join(f"{b} {v['probes']['reward_acc_imagination']:.1%}" for b, v in p["backbones"].items())
        what = f"`memwm compare --task {p['task'].split('/')[-1]}`, {p['settings']['steps']:,} steps: reward accuracy in imagination"
        rows.append([what, accs, f"[{path.name}]({prefix}{path.relative_to(results).as_posix()})"])
    for task, budget, arms in side_by_side(results):  # memwm and the agents people use instead, same seeds and minutes
        what = (
            f"`python -m benchmarks.peers --task {task}` (memwm and the agents people use instead), {budget:g} min on one CPU core each: "
            f"held-out final {arms[0][2][0]['metric']}"
        )
        cells = []
        for arm, code, ps in arms:  # each arm's own seeds: an arm may have run on fewer
            finals = [(p.get("final_held_out") or {}).get(p["metric"]) for p in ps]
            seeds = ",".join(str(s) for s in sorted(p["seed"] for p in ps))
            cells.append(
                f"{arm} {spread(finals)}" + (f" ({finals.count(None)} failed)" if None in finals else "") + f" over seeds {seeds} at {code}"
            )
        cells = "; ".join(cells)
        rows.append([what, cells, f"[peers-{task}/]({prefix}peers-{task}/)"])
    product = defaultdict(dict)  # (commit, budget) -> seed -> the newest record of benchmarks.icrl's bandit runs
    for r in runs("icrl-bandit-10", results):
        product[(commit(r), r["payload"]["budget_minutes"])][r["payload"]["seed"]] = r
    if product:
        by_seed = product[max(product, key=lambda k: max(r["start"] for r in product[k].values()))]
        ps = [r["payload"] for _, r in sorted(by_seed.items())]
        budget = f"{ps[0]['budget_minutes']:g} min on one CPU core"
        if all(q.get("stopped_by") == "steps" for q in ps):  # the step count ended the runs before the minutes
            steps = round(mean(q["train_steps"] for q in ps))
            minutes = mean(q["wall_minutes"] for q in ps)
            whose = "its default" if ps[0].get("steps_cap") is None else "--steps"
            budget = f"{steps:,} env steps ({whose}; {minutes:.0f} of the {ps[0]['budget_minutes']:g} min) on one CPU core"
        what = f"In-context RL: `memwm train --agent ppo --env {ps[0]['env']}`, {budget}, seeds {','.join(str(q['seed']) for q in ps)}"
        met = f"{sum(q['met'] for q in ps)}/{len(ps)}"
        result = f"{spread([q['value'] for q in ps])} of Thompson sampling's return; target 0.9, met by {met}"
        rows.append([what, result, f"[icrl-bandit-10/]({prefix}icrl-bandit-10/)"])
    else:
        bandit = [r for r in runs("icrl", results) if "bandit" in r["payload"]]
        if bandit:
            r = max(bandit, key=lambda r: r["payload"]["bandit"]["train_minutes"])
            q = r["payload"]["bandit"]
            what = (
                f"In-context RL, {q['env']}, recurrent PPO with {q['backbone']} memory, {q['train_minutes']:g} min "
                "of `python -m benchmarks.icrl`'s own training loop (not `memwm train`)"
            )
            rows.append([what, f"{q['value']:.2f} of Thompson sampling's return", link(r, results, prefix)])
    for name in folders("world-models-", results):
        r = runs(name, results)[-1]
        steps = r["payload"]["imagination"]
        cells = "; ".join(
            f"{b} {steps[b]['ms_per_step']['1024']:.2f} ms ({steps[b]['ms_per_step']['64']:.2f} after 64)"
            for b in ("s5", "transformer")
            if b in steps
        )
        rows.append(["Imagination step after 1024 steps of context, preset small", cells, link(r, results, prefix)])
    for name in folders("scan-", results):
        r = runs(name, results)[-1]
        case = next((c for c in r["payload"]["cases"] if c["L"] == 1024 and c["dtype"] == "complex64"), None)
        if case:
            auto = next(row for row in case["rows"] if row["backend"] == "auto")
            cells = (
                f"{auto['fwd_bwd_vs_3_floors']:.2f}x three elementwise floors (one forward, two backward); "
                f"{auto['fwd_bwd_vs_reference']:.2f}x the reference loop's time"
            )
            rows.append([f"`kernels.scan` forward+backward, L=1024, {r['payload']['device']}", cells, link(r, results, prefix)])
    return table(["what", "result", "file"], rows) if rows else NONE


TABLES = {
    "headline": headline,
    "learning": learning,
    "chain": chain,
    "ablation": ablation,
    "reward-units": reward_units,
    "reward-link": reward_link,
    "cue-link": cue_link,
    "eval-posterior": eval_posterior,
    "answers": answers,
    "scan": scan,
    "world-models": world_models,
    "envs": envs,
    "throughput": throughput,
    "vs-sheeprl": vs_sheeprl,
    "peers": peers,
    "icrl": icrl,
    "compare": compare,
    "scaling": scaling,
    "faults": faults,
}


# ---------------------------------------------------------------- the pages


def render(text: str, prefix: str, results: Path = record.RESULTS) -> str:
    """`text` with every table between report markers written anew from the files under `results`."""

    def fill(m: re.Match) -> str:
        kind = m.group(2)
        if kind not in TABLES:
            raise ValueError(f"unknown report table {kind!r}; known: {', '.join(TABLES)}")
        return f"{m.group(1)}{TABLES[kind](results, prefix)}\n{m.group(4)}"

    return BLOCK.sub(fill, text)


def drifted(text: str, prefix: str, results: Path = record.RESULTS) -> list[str]:
    """The kinds of the tables in `text` that differ from what their files give."""
    fresh = {m.group(2): m.group(3) for m in BLOCK.finditer(render(text, prefix, results))}
    return [m.group(2) for m in BLOCK.finditer(text) if fresh[m.group(2)] != m.group(3)]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for page, prefix in PAGES.items():
        path = REPO / page
        text = path.read_text()
        if check:
            stale += [f"{page}: {kind}" for kind in drifted(text, prefix)]
        elif (new := render(text, prefix)) != text:
            path.write_text(new)
            print(f"benchmarks.report: wrote {page}")
    if stale:
        print("benchmarks.report: tables differ from their files (run python -m benchmarks.report): " + ", ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
