"""`memwm compare` under torchrun: the backbones split across the ranks.

Each backbone's training is independent, needs no communication, and gives the same result as in one
process (same data, seed and batches), which data parallelism within a backbone would not: the
backbones split across the ranks.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from agents import distributed
from agents.common import pick_device
from agents.compare_data import COLLECT_POLICY, default_out, ensure_data, probe_kind, task_env_id

COMPARE_TIMEOUT = datetime.timedelta(days=2)  # compare's ranks wait for the slowest backbone at the end


def split_backbones(compare_fn: Callable) -> Callable:
    """`agents.compare.run_compare` with the same flags, with its backbones split across torchrun's ranks.

    Rank 0 collects the data set first; then rank r trains backbones r, r + N, ... (rank 0 in the
    out folder, the others in `out/.rank-<r>` with the data linked in, moving each finished
    backbone folder into `out`); then rank 0 runs the comparison again, which reuses every trained
    backbone, and writes results.json, results.md and the plots. One process: compare itself.
    """

    @functools.wraps(compare_fn)
    def compare(*args, **kwargs):
        if distributed.world_size() == 1:
            return compare_fn(*args, **kwargs)
        bound = inspect.signature(compare_fn).bind(*args, **kwargs)
        bound.apply_defaults()
        a = dict(bound.arguments)
        distributed.init(torch.device(pick_device(a["device"]).type), timeout=COMPARE_TIMEOUT)
        env_id = task_env_id(a["task"])
        names = [b.strip() for b in a["backbones"].split(",") if b.strip()]
        out = Path(a["out"]) if a["out"] is not None else default_out(env_id)
        if distributed.is_main():
            ensure_data(env_id, out / "data", a["episodes"], a["eval_episodes"], a["seed"], COLLECT_POLICY[probe_kind(env_id)])
        distributed.barrier()
        mine = names[distributed.rank() :: distributed.world_size()]
        if mine:
            folder = out if distributed.is_main() else out / f".rank-{distributed.rank()}"
            if not distributed.is_main():
                folder.mkdir(parents=True, exist_ok=True)
                if not (folder / "data").exists():
                    (folder / "data").symlink_to(Path("..") / "data")
            compare_fn(**{**a, "backbones": ",".join(mine), "out": folder})
            if not distributed.is_main():
                for name in mine:
                    if (out / name).exists():
                        shutil.rmtree(out / name)
                    os.replace(folder / name, out / name)
                shutil.rmtree(folder)
        distributed.barrier()
        if not distributed.is_main():
            return None
        return compare_fn(**{**a, "out": out})

    return compare


__all__ = ["split_backbones"]
