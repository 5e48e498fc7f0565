"""`memwm compare`: train world-model backbones on the same offline data of a memory task and compare
them with the S4WM probes (agents/compare.py); under torchrun the backbones split across ranks (agents/compare_ranks.py)."""

from __future__ import annotations

import functools
import inspect

from agents.compare import run_compare
from agents.compare_data import default_out, task_env_id
from agents.compare_ranks import split_backbones
from agents.compare_report import results_table


@functools.wraps(run_compare)  # the same flags and help as the library function
def compare(*args, **kwargs) -> None:
    bound = inspect.signature(run_compare).bind(*args, **kwargs)
    bound.apply_defaults()
    results = split_backbones(run_compare)(**bound.arguments)
    if results is None:  # a torchrun rank other than 0: rank 0 reports
        return
    out = bound.arguments["out"] or default_out(task_env_id(bound.arguments["task"]))
    print(results_table(results))
    print(f"compare: results in {out}")
