"""`memwm compare`: train world-model backbones on the same offline data of a memory task and compare
them with the S4WM probes (agents/compare.py); under torchrun the backbones split across ranks."""

from __future__ import annotations

import functools
import inspect

from agents.compare import default_out, results_table, run_compare, split_backbones, task_env_id


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
