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
belongs to the weights beside it. tests/test_pretrained.py also holds every listed run to beating its
reference (`reference`, `beats`: a uniformly random policy, or the same config untrained) on the same
episodes, so that no run at chance is listed.

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

import numpy as np
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


# How far a run must beat its reference, so that a run at chance cannot pass for a trained one: by this
# many standard errors. A train run's reference is a uniformly random policy on the same evaluation seeds
# (the standard error of the difference of the two means over episodes). A compare backbone has no policy:
# its reference is its config with fresh weights on the same held-out episodes, and since two fresh
# initialisations differ by far more than one model's error varies over episodes, the reference is the
# best of UNTRAINED_INITS of them and the standard error holds the spread of their scores (beside the episodes').
MARGIN_SE = 3.0
UNTRAINED_INITS = 4
LOWER_IS_BETTER = ("door_mse", "query_mse")  # frame errors; every other score is better higher
POLICIES = ("trained", "untrained", "random")


# A compare backbone's score: its task's probe, the compare's headline number.
PROBE_METRIC = {"doors": "door_mse", "reward": "reward_acc_imagination", "imagination": "query_mse"}


def reference(run_dir: str | Path) -> str:
    """What a run must beat: "random" (a uniformly random policy) for a train run; "untrained" (its config
    with fresh weights) for a compare backbone, which has no policy."""
    return "untrained" if (Path(run_dir) / "model.pt").is_file() else "random"


def measure(run_dir: str | Path, episodes: int, device: str = "cpu", policy: str = "trained", init: int = 0) -> dict:
    """The run's score on `episodes` episodes, the global generators seeded: {"metric", "score", "episodes", "scores"}.

    A train run: "success" (goal tasks) or "return" on the first of its evaluation seeds, through the code
    `memwm eval` runs (agents/evaluate.py's episodes, or agents/icrl.py's trials for PPO). A compare
    backbone: its probe (PROBE_METRIC) on the first of the compare's held-out episodes. `scores` holds the
    score of each episode (trial) that has one, for standard errors.

    policy: "trained" (the run's weights), "untrained" (the run's config with fresh weights) or "random"
    (a uniformly random policy in place of the agent's; train runs only), on the same seeds or episodes.
    init: the seed of the global generators, set before the agent or model is built (fresh weights differ
    by it); 0 replays the README's score, which `evaluate_run` measured after seeding them with 0.
    """
    from agents.common import seed_everything

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    seed_everything(init)
    if (Path(run_dir) / "model.pt").is_file():
        return _measure_world_model(Path(run_dir), episodes, device, policy)
    return _measure_train_run(Path(run_dir), episodes, device, policy)


class UniformPolicy:
    """Uniformly random actions behind both evaluation interfaces: `policy` for agents/evaluate.py's episodes
    (with the agent's codec and world model, whose state it passes through unused) and `act` for agents/icrl.py's trials."""

    def __init__(self, codec, wm=None, seed: int = 0):
        self.codec, self.wm, self.rng = codec, wm, np.random.default_rng(seed)

    def policy(self, state, obs, prev_action, is_first, explore: bool = False):
        return torch.from_numpy(self.codec.random(1, self.rng)).to(prev_action.device), state

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.codec.to_env(self.codec.random(len(obs["is_first"]), self.rng))


def _measure_train_run(run_dir: Path, episodes: int, device: str, policy: str) -> dict:
    from agents import ppo_agent
    from agents.common import evaluation_seed, pick_device
    from agents.evaluate import has_success, run_episodes
    from agents.icrl import run_trials
    from agents.runs import build_dreamer, latest_checkpoint, load_run_config

    config = load_run_config(run_dir)
    torch_device = pick_device(device)
    payload, _ = latest_checkpoint(run_dir, torch_device)
    seed = evaluation_seed(config.seed, 0, episodes)  # as evaluate_run: the first of the run's evaluation seeds
    if config.agent == "ppo":  # as ppo_agent.evaluate: whole trials with the sampling policy, scored by their return
        learner = ppo_agent.build(config, torch_device)
        if policy == "trained":
            learner.load_state_dict(payload["agent"])
        actor = UniformPolicy(learner.model.codec) if policy == "random" else ppo_agent.RecurrentPolicy(learner)
        trials = run_trials(actor, config.env, episodes, seed, num_envs=min(8, episodes), **config.env_options)
        scores = [float(r) for r in trials.reward.sum(-1)]
        return {"metric": "return", "score": float(np.mean(scores)), "episodes": episodes, "scores": scores}
    agent, _ = build_dreamer(config, torch_device)
    if policy == "trained":
        agent.load_state_dict(payload["agent"])
    agent.eval()
    actor = UniformPolicy(agent.codec, agent.wm) if policy == "random" else agent
    result = run_episodes(actor, config.env, config.env_options, episodes, seed, torch_device)
    metric = "success" if has_success(config.env) else "return"
    scores = [float(s) for s in (result.successes if metric == "success" else result.returns)]
    return {"metric": metric, "score": float(np.mean(scores)), "episodes": episodes, "scores": scores}


def _measure_world_model(run_dir: Path, episodes: int, device: str, policy: str) -> dict:
    import tempfile

    import world_models
    from agents.compare_data import COLLECT_POLICY, ensure_data, probe_kind, probe_shift
    from world_models.probes import run_probes
    from world_models.saving import load_world_model

    if policy == "random":
        raise ValueError(f"{run_dir} is a world model: it has no policy to replace; its reference is 'untrained'")
    loaded = load_world_model(run_dir / "model.pt", device)
    wm = loaded.wm
    if policy == "untrained":
        config = world_models.WorldModelConfig(**loaded.payload["config"])
        wm = world_models.make(loaded.backbone, loaded.obs_space, loaded.act_space, config).to(device).eval()
    settings = json.loads((run_dir / "metrics.json").read_text())["settings"]
    kind = probe_kind(loaded.env)
    metric, shift = PROBE_METRIC[kind], probe_shift(loaded.env)
    with tempfile.TemporaryDirectory() as tmp:  # the compare's held-out episodes: its seed, its policy
        data = ensure_data(loaded.env, Path(tmp), 1, episodes, settings["seed"], COLLECT_POLICY[kind])
    score = float(run_probes(wm, kind, data["eval"], loaded.act_space, device, shift)[metric])
    scores = []
    for ep in data["eval"]:
        try:
            scores.append(float(run_probes(wm, kind, [ep], loaded.act_space, device, shift)[metric]))
        except ValueError:  # nothing the probe scores after this episode's context (no door in view, no decided reward)
            continue
    return {"metric": metric, "score": score, "episodes": episodes, "scores": scores}


def reference_scores(run_dir: str | Path, episodes: int, device: str = "cpu") -> list[dict]:
    """What `beats` compares a run with: the measures of its reference (`reference`): one for a random
    policy, UNTRAINED_INITS fresh initialisations (init 1, 2, ...) for a compare backbone."""
    kind = reference(run_dir)
    inits = range(1, UNTRAINED_INITS + 1) if kind == "untrained" else [0]
    return [measure(run_dir, episodes, device, kind, init) for init in inits]


def margin(measured: dict, references: list[dict]) -> tuple[float, float]:
    """(how far `measured`'s mean score is better than the best of its references' means, the standard error
    of that difference): positive when better, whichever way the metric points. Over the episodes of
    `measured` and of the references; with several references (fresh initialisations), also their spread."""
    a = np.asarray(measured["scores"], float)
    refs = [np.asarray(r["scores"], float) for r in references]
    lower = measured["metric"] in LOWER_IS_BETTER
    means = [float(r.mean()) for r in refs]
    better = min(means) - a.mean() if lower else a.mean() - max(means)
    var = a.var(ddof=1) / len(a) + np.mean([r.var(ddof=1) / len(r) for r in refs])
    if len(refs) > 1:  # another initialisation scores within this spread of the references' mean
        var += np.var([r.mean() for r in refs], ddof=1)
    return float(better), float(np.sqrt(var))


def beats(measured: dict, references: list[dict]) -> bool:
    """Whether `measured` (a `measure`) is better than the best of its references by at least MARGIN_SE standard errors."""
    better, se = margin(measured, references)
    return better > 0 and better >= MARGIN_SE * se


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
