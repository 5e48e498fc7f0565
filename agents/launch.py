"""`memwm --nproc-per-node N ...`: N processes of the same memwm command on this machine, under
torch's elastic launcher (what torchrun runs, `torch.distributed.run`). Each process is a rank of
agents/distributed.py's process group."""

from __future__ import annotations

import sys

from torch.distributed import run
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError


def launch(nproc: int, argv: list[str]) -> int:
    """`memwm <argv>` in `nproc` processes on this machine, started from this process; returns the exit
    code (0, or the first failed rank's).

    The memwm arguments go straight to the workers' command line and never through torchrun's own
    parser, so flags such as `--run` cannot be taken for torchrun's (`--run-path`). A free port is
    picked for the rendezvous (torchrun's --standalone).
    """
    if nproc < 1:
        raise ValueError(f"--nproc-per-node must be >= 1, got {nproc}")
    args = run.get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "agents.cli"])
    args.training_script_args = list(argv)  # set, not parsed: argparse would read `--run` as `--run-path`
    try:
        run.run(args)
    except ChildFailedError as e:
        # the first rank that exited by itself (the others are then stopped by a signal: a negative code)
        rank, failure = min(e.failures.items(), key=lambda kv: (kv[1].exitcode <= 0, kv[1].timestamp, kv[0]))
        print(f"memwm: rank {rank} of {nproc} exited with code {failure.exitcode}", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0
