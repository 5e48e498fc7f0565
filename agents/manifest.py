"""The manifest of a pretrained run (runs/pretrained/<name>/manifest.json): the sha256 of each of its
files. `verify` refuses a run whose files no longer match, so that a score listed for the run always
belongs to the weights beside it; the readers of run folders (agents/runs.py) call it, and
agents/pretrained.py writes the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(run_dir: str | Path) -> None:
    """Nothing for a folder without a manifest; else a ValueError naming the first listed file that is
    missing or whose sha256 differs (an edited pretrained run)."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file():
        return
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"pretrained run {run_dir}: {MANIFEST} cannot be read; restore it from git") from None
    for name, expected in files.items():
        file = run_dir / name
        if not file.is_file():
            raise ValueError(f"pretrained run {run_dir}: {name} is missing; restore it from git (git checkout -- {file})")
        if sha256(file) != expected:
            raise ValueError(
                f"pretrained run {run_dir}: {name} was edited (its sha256 differs from {MANIFEST}); "
                f"restore it from git (git checkout -- {file})"
            )
