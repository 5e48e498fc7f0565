"""The `memwm` command line: one subcommand per job, each a function whose typed arguments tyro reads.

A subcommand is added by writing its function in the module that owns the job and naming it in
`_commands()`; the import stays inside so that `memwm --help` does not pay for every module.
"""

from __future__ import annotations

import sys
from typing import Callable

import tyro

__version__ = "0.1.0"


def version() -> None:
    """Print memwm's version and the versions of the libraries it runs on."""
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:  # triton is optional on machines without a GPU
        triton_version = "not installed"
    print(f"memwm {__version__} (torch {torch.__version__}, triton {triton_version}, python {sys.version.split()[0]})")


def _commands() -> dict[str, Callable[..., object]]:
    commands: dict[str, Callable[..., object]] = {"version": version}
    from world_models.compare import compare
    from world_models.imagine import imagine

    from agents.distributed import split_backbones

    commands["compare"] = split_backbones(compare)  # under torchrun: the backbones split across ranks
    commands["imagine"] = imagine
    import envs

    commands["envs"] = envs.cli_envs
    commands["collect"] = envs.collect
    from agents.evaluate import eval_command
    from agents.train import train_command

    commands["train"] = train_command
    commands["eval"] = eval_command
    return commands


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `memwm` console script."""
    tyro.extras.subcommand_cli_from_dict(_commands(), args=argv, prog="memwm", description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main()
