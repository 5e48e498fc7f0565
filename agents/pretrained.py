"""Pretrained runs: small trained runs shipped in the repository under runs/pretrained/<name>/.

A pretrained run is a run folder that `memwm eval`, `memwm imagine` and `memwm inspect` read like
any other, with nothing to train first:

    runs/pretrained/<name>/          a `memwm train` run (Dreamer or PPO):
      config.yaml                the run's resolved config, as `memwm train` wrote it
      checkpoints/ckpt-<step>.pt its last checkpoint, only what those commands read (the agent's
                                 weights, identity, counters and RNG states: no optimiser state, no replay)
      manifest.json              the sha256 of those files, and how the run was made and scored
    runs/pretrained/<name>/          a `memwm compare` backbone (a world model, no policy: imagine, inspect):
      model.pt, metrics.json     the world-model file and the compare's settings and results
      manifest.json

runs/pretrained/README.md lists every run in one table row: the command that trained it, the
commit it was trained at, its measured score, the episodes that score was measured on, and its
size. A run whose files no longer match their manifest is refused with one line (`verify` in
agents/manifest.py, which the readers of run folders call), so a score in the table always
belongs to the weights beside it.

Maintainers turn a finished `memwm train` run into a pretrained one with

    python -m agents.pretrained --run runs/NAME --name NAME --command "memwm train ..."

(`--run runs/compare-TASK/BACKBONE` for a compare backbone), which copies the files, scores the run
(`measure`: a train run's return or success rate on its own evaluation seeds, the global generators
seeded; a compare backbone's probe on the compare's held-out episodes; either way the test can
replay exactly those episodes), writes the manifest and the README row, and checks the size limits.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import torch

from agents.common import atomic_write
from agents.manifest import MANIFEST, sha256

ROOT = Path(__file__).resolve().parent.parent / "runs" / "pretrained"
MAX_RUN_BYTES = 5 * 2**20  # a clone stays small: each run at most 5 MiB ...
MAX_TOTAL_BYTES = 25 * 2**20  # ... and all of them at most 25 MiB
KEPT = ("agent", "identity", "counters", "rng")  # what eval, imagine and inspect read (the loader checks rng)
# How close a replay of the README's episodes must come to the claimed score (same seeds; another
# machine's float rounding can still change an action or two): success rates within 0.1, returns
# within 10% (at least 1), a compare backbone's probe within 2%.
SUCCESS_TOLERANCE = 0.1
RETURN_TOLERANCE = 0.1
PROBE_TOLERANCE = 0.02  # a compare backbone's probe, relative
COLUMNS = ("name", "env", "agent", "backbone", "score", "episodes", "size", "commit", "command")


# A compare backbone's score: its task's probe, the compare's headline number.
PROBE_METRIC = {"doors": "door_mse", "reward": "reward_acc_imagination", "imagination": "query_mse"}


def measure(run_dir: str | Path, episodes: int, device: str = "cpu") -> dict:
    """The run's score on `episodes` episodes, the global generators seeded: {"metric", "score", "episodes"}.

    A train run: "success" (goal tasks) or "return" on the first of its evaluation seeds. A compare
    backbone: its probe (PROBE_METRIC) on the first of the compare's held-out episodes.
    """
    from agents.common import seed_everything
    from agents.evaluate import evaluate_run

    seed_everything(0)
    if (Path(run_dir) / "model.pt").is_file():
        return _measure_world_model(Path(run_dir), episodes, device)
    scalars = evaluate_run(run_dir, episodes, device=device).scalars
    metric = "success" if "eval/success" in scalars else "return"
    return {"metric": metric, "score": float(scalars[f"eval/{metric}"]), "episodes": episodes}


def _measure_world_model(run_dir: Path, episodes: int, device: str) -> dict:
    import tempfile

    from agents.compare import CONTEXT_PAST_QUERY, COLLECT_POLICY, ensure_data, probe_kind
    from world_models.probes import run_probes
    from world_models.saving import load_world_model

    loaded = load_world_model(run_dir / "model.pt", device)
    settings = json.loads((run_dir / "metrics.json").read_text())["settings"]
    kind = probe_kind(loaded.env)
    with tempfile.TemporaryDirectory() as tmp:  # the compare's held-out episodes: its seed, its policy
        data = ensure_data(loaded.env, Path(tmp), 1, episodes, settings["seed"], COLLECT_POLICY[kind])
    probes = run_probes(loaded.wm, kind, data["eval"], loaded.act_space, device, CONTEXT_PAST_QUERY.get(loaded.env, 0))
    return {"metric": PROBE_METRIC[kind], "score": float(probes[PROBE_METRIC[kind]]), "episodes": episodes}


def within_tolerance(metric: str, claimed: float, measured: float) -> bool:
    if metric == "success":
        return abs(measured - claimed) <= SUCCESS_TOLERANCE
    if metric == "return":
        return abs(measured - claimed) <= max(1.0, RETURN_TOLERANCE * abs(claimed))
    return abs(measured - claimed) <= PROBE_TOLERANCE * abs(claimed)  # a probe: the same episodes, no sampling


def run_bytes(folder: Path) -> int:
    """The bytes a pretrained run adds to the repository: its manifest and the files it lists (what the
    commands write into the folder when they read it is ignored by git and not counted)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    files = json.loads(manifest.read_text())["files"]
    return manifest.stat().st_size + sum((folder / name).stat().st_size for name in files if (folder / name).is_file())


# --------------------------------------------------------------------------- the README table


def readme_rows(root: Path = ROOT) -> list[dict[str, str]]:
    """The runs listed in root/README.md's table, one dict of COLUMNS per row."""
    path = root / "README.md"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if not line.startswith("| ") or len(cells) < len(COLUMNS) or cells[0] in ("name", "---") or set(cells[0]) <= {"-", ":"}:
            continue
        cells = cells[: len(COLUMNS) - 1] + [" | ".join(cells[len(COLUMNS) - 1 :])]  # a command may hold " | "
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


def parse_score(cell: str) -> tuple[str, float]:
    """'success 0.94' or 'return 23.5' -> (metric, value)."""
    metric, value = cell.split()
    return metric, float(value)


def _write_row(root: Path, row: dict[str, str]) -> None:
    path = root / "README.md"
    lines = path.read_text().splitlines() if path.exists() else []
    line = "| " + " | ".join(row[c] for c in COLUMNS) + " |"
    for i, old in enumerate(lines):
        if old.startswith(f"| {row['name']} | "):
            lines[i] = line
            break
    else:
        if not any(old.startswith("| name |") for old in lines):
            lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines.append(line)
    atomic_write(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- adding a run


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT.parent.parent, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def add(run: Path, name: str, command: str, episodes: int = 16, commit: str = "", root: Path = ROOT, device: str = "cpu") -> Path:
    """Make the finished run `run` the pretrained run `name`: copy what the commands read, score it, write
    its manifest and README row; returns the new folder.

    Args:
        run: a finished `memwm train` run folder, or a `memwm compare` backbone folder (holding model.pt).
        name: the pretrained run's folder name under runs/pretrained (letters, digits, - and _).
        command: the command that trained `run`, for the README.
        episodes: episodes to score it on (the test replays them: keep it small).
        commit: the commit `run` was trained at; default the repository's HEAD.
        root: the folder of the pretrained runs.
        device: where to evaluate.
    """
    run, root = Path(run), Path(root)
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"--name must be letters, digits, - and _, got {name!r}")
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    target = root / name
    if target.exists():
        shutil.rmtree(target)
    try:
        facts = _copy_world_model(run, target) if (run / "model.pt").is_file() else _copy_train_run(run, target)
        files = {p.relative_to(target).as_posix(): sha256(p) for p in sorted(target.rglob("*")) if p.is_file()}
        size = run_bytes(target)
        if size > MAX_RUN_BYTES:
            raise ValueError(
                f"run {run} would take {size / 2**20:.1f} MiB as a pretrained run; the limit is "
                f"{MAX_RUN_BYTES / 2**20:.0f} MiB (train a smaller preset)"
            )
        total = sum(run_bytes(p) for p in root.iterdir() if p.is_dir())
        if total > MAX_TOTAL_BYTES:
            raise ValueError(f"the pretrained runs would take {total / 2**20:.1f} MiB; the limit is {MAX_TOTAL_BYTES / 2**20:.0f} MiB")
        score = measure(target, episodes, device)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    commit = commit or _commit()
    atomic_write(target / MANIFEST, json.dumps({"files": files, **facts, "command": command, "commit": commit, **score}, indent=1) + "\n")
    value = f"{score['score']:.4g}"
    _write_row(
        root,
        {
            "name": name,
            "env": facts["env"],
            "agent": facts["agent"],
            "backbone": facts["backbone"],
            "score": f"{score['metric']} {value}",
            "episodes": str(episodes),
            "size": f"{run_bytes(target) / 2**20:.2f} MiB",
            "commit": commit,
            "command": f"`{command}`",
        },
    )
    print(
        f"pretrained run {target}: {score['metric']} {value} over {episodes} episodes, "
        f"{run_bytes(target) / 2**20:.2f} MiB, listed in {root / 'README.md'}"
    )
    return target


def _copy_train_run(run: Path, target: Path) -> dict:
    """config.yaml and the last checkpoint's KEPT entries into `target`; the run's facts for the manifest."""
    from agents.checkpoint import checkpoints
    from agents.runs import load_run_config

    config = load_run_config(run)
    found = checkpoints(run / "checkpoints")
    if not found:
        raise ValueError(f"run {run} has no checkpoint in {run / 'checkpoints'}; train it first")
    payload = torch.load(found[-1], map_location="cpu", weights_only=False)
    missing = [k for k in KEPT if k not in payload]
    if missing:
        raise ValueError(f"{found[-1]} lacks {missing}; it is not a checkpoint of `memwm train`")
    (target / "checkpoints").mkdir(parents=True)
    shutil.copyfile(run / "config.yaml", target / "config.yaml")
    atomic_write(target / "checkpoints" / found[-1].name, lambda f: torch.save({k: payload[k] for k in KEPT}, f))
    return {"env": config.env, "agent": config.agent, "backbone": config.backbone, "step": int(payload["counters"]["step"])}


def _copy_world_model(run: Path, target: Path) -> dict:
    """A compare backbone's model.pt and metrics.json into `target`; its facts for the manifest."""
    from world_models.saving import load_world_model

    if not (run / "metrics.json").is_file():
        raise ValueError(f"{run} holds model.pt but no metrics.json; pass a finished `memwm compare` backbone folder")
    loaded = load_world_model(run / "model.pt")
    target.mkdir(parents=True)
    for file in ("model.pt", "metrics.json"):
        shutil.copyfile(run / file, target / file)
    settings = json.loads((run / "metrics.json").read_text())["settings"]
    return {"env": loaded.env, "agent": "world model", "backbone": loaded.backbone, "step": int(settings["steps"])}


if __name__ == "__main__":
    import sys

    import tyro

    try:
        tyro.cli(add, prog="python -m agents.pretrained")
    except (ValueError, FileNotFoundError) as e:  # the maintainer's input: one line
        print(f"agents.pretrained: error: {str(e).splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2) from None
