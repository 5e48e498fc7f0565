"""Benchmark results as artifacts: every run writes a new file, never into an existing one.

    from benchmarks import record
    started = record.start()                       # when the measurement begins (optional)
    ...
    path = record.write_result("scan-cpu", payload, started=started, device="cpu")
    record.latest("scan-cpu")                      # the newest record of that name, or None
    record.all_runs("scan-cpu")                    # every record of that name, oldest first

A record is `benchmarks/results/<name>/<UTC start, YYYYmmddTHHMMSSZ>-<short commit>.json`:

    {"name", "commit", "dirty", "command", "argv", "machine", "device",
     "start", "end", "seconds", "load": {"before", "after"}, "payload"}

`commit` is the checkout's HEAD (None outside a git checkout) and `dirty` whether tracked files
differ from it, so a result can be traced to the code that produced it; `load` is the 1, 5 and
15-minute load average, since a timing on a shared machine means little without it. Files in a
name's folder that do not follow the pattern (results written before records existed) are kept as
history and ignored by the readers.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
RESULTS_IN_REPO = RESULTS.relative_to(REPO).as_posix()  # in git's pathspecs
# A record's file name: start time, short commit ("nogit" outside a checkout), and a counter from the
# second record that started in the same second.
RECORD_NAME = re.compile(r"^\d{8}T\d{6}Z-(?:[0-9a-f]+|nogit)(?:-(\d+))?\.json$")


def _load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())


@dataclass(frozen=True)
class Start:
    """When a measurement began: wall-clock time (seconds since the epoch) and the load average then."""

    time: float = field(default_factory=time.time)
    load: tuple[float, float, float] = field(default_factory=_load)


_PROCESS_START = Start()  # the default start: when the benchmark's process imported this module


def start() -> Start:
    """Marks the beginning of a measurement; pass the result to `write_result(..., started=)`."""
    return Start()


def write_result(name: str, payload: dict, *, started: Start | None = None, device: str | None = None, results: Path = RESULTS) -> Path:
    """Writes a new record of benchmark `name` holding `payload` (JSON-serialisable); returns its path.

    `started` defaults to when this module was imported (the start of a benchmark's process);
    `device` names the device measured (default: cuda when torch sees one, else cpu). The file is
    created exclusively: an existing record is never overwritten or appended to.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"record name {name!r} must be a plain folder name such as 'scan-cpu'")
    started = started or _PROCESS_START
    end = time.time()
    commit, dirty = git_state()
    record = {
        "name": name,
        "commit": commit,
        "dirty": dirty,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv)),
        "argv": list(sys.argv),
        "machine": machine(),
        "device": device or _default_device(),
        "start": _iso(started.time),
        "end": _iso(end),
        "seconds": round(end - started.time, 3),
        "load": {"before": list(started.load), "after": list(_load())},
        "payload": payload,
    }
    folder = Path(results) / name
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started.time))}-{(commit or 'nogit')[:7]}"
    text = json.dumps(record, indent=1) + "\n"
    for n in range(1, 1000):  # two runs that start in the same second get -2, -3, ...
        path = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        try:
            with open(path, "x") as f:
                f.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"too many records named {stem}*.json in {folder}")


def check_run_folders(runs: list[Path]) -> None:
    """The run folders a benchmark reads: at least one, each with its config.yaml (else a one-line ValueError)."""
    if not runs:
        raise ValueError("give the run folders to read: --runs RUN [RUN ...]")
    for run in runs:
        if not (Path(run) / "config.yaml").exists():
            raise ValueError(f"{run} is not a run folder (no config.yaml)")


def write_runs(prefix: str, rows: list[dict], *, started: Start, results: Path = RESULTS, **facts) -> Path:
    """The record of a benchmark that read run folders of one task, `<prefix>-<task>` (payload: env, facts, runs);
    rows: one per run, each naming its `env` (a one-line ValueError for runs of several tasks)."""
    found = sorted({r["env"] for r in rows})
    if len(found) != 1:
        raise ValueError(f"the runs must be of one task, got {', '.join(found)}")
    env = found[0]
    return write_result(f"{prefix}-{env.split('/')[-1]}", {"env": env, **facts, "runs": rows}, started=started, results=results)


def all_runs(name: str, results: Path = RESULTS) -> list[dict]:
    """Every record of benchmark `name`, oldest first (by start time, then file name); each gets its `path`."""
    folder = Path(results) / name
    paths = [p for p in folder.glob("*.json") if RECORD_NAME.match(p.name)] if folder.is_dir() else []
    runs = [dict(json.loads(p.read_text()), path=str(p)) for p in paths]
    return sorted(runs, key=lambda r: (r["start"], _counter(Path(r["path"]).name)))


def latest(name: str, results: Path = RESULTS) -> dict | None:
    """The newest record of benchmark `name`, or None when it has none."""
    runs = all_runs(name, results)
    return runs[-1] if runs else None


def git_state(repo: Path = REPO) -> tuple[str | None, bool | None]:
    """(HEAD's full hash, whether tracked files differ from it), or (None, None) outside a git checkout.

    The result files (benchmarks/results/) do not count: a benchmark redraws its curves there, and a
    later benchmark in the same checkout measures the same code.

    A copy of the tree without its .git (sent to a GPU machine, say) takes the commit from the
    environment variable MEMWM_COMMIT, which whoever copies it sets; whether that copy differs from
    the commit is then unknown (None).
    """
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return os.environ.get("MEMWM_COMMIT") or None, None
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RESULTS_IN_REPO}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return os.environ.get("MEMWM_COMMIT") or None, None
    return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


@functools.cache  # the report asks it of the same records once per table
def made_since(commit: str | None, since: str | None, repo: Path = REPO) -> bool:
    """Whether `commit` is `since` or a later commit (git: `since` is its ancestor); every commit when since is None,
    none that git does not know."""
    if since is None:
        return True
    if not commit:
        return False
    found = subprocess.run(["git", "merge-base", "--is-ancestor", since, commit], cwd=repo, capture_output=True)
    return found.returncode == 0


@functools.cache
def known_commit(commit: str | None, repo: Path = REPO) -> bool:
    """Whether git knows `commit` (a test's made-up commit, or one of another history, it does not)."""
    if not commit:
        return False
    found = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo, capture_output=True)
    return found.returncode == 0


def machine() -> dict:
    """The machine a result was measured on: platform, CPU model and cores, Python, torch and GPU."""
    out = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": None,
        "gpu": None,
    }
    try:
        import torch
    except ImportError:
        return out
    out["torch"] = torch.__version__
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _counter(filename: str) -> int:
    return int(RECORD_NAME.match(filename).group(1) or 1)
