"""Data-parallel training with torch.distributed: the process group's facts and the collectives.

`torchrun --nproc-per-node N -m agents.cli train ...` starts N copies of the same training loop
(agents/train.py). Each copy is a rank: it reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK, joins
the process group (gloo on CPUs, NCCL on GPUs, one GPU per local rank), acts in its own
environments with its own seed (`rank_seed`), and writes its own replay shard (`shard`). All ranks
hold the same weights: rank 0's are broadcast at the start (`broadcast_state`), and every optimiser
step applies gradients averaged over the ranks (`average_gradients`), so the weights stay equal,
bit for bit. Rank 0 alone writes logs, videos and checkpoints (`is_main`; agents/logger.py's
`RankLogger` averages the ranks' scalars); on resume every rank loads rank 0's checkpoint and its
own replay shard. A plain `memwm train` is the same code with one rank: there is no process group
and every helper here returns at once.

Why an all-reduce of gradients and not DistributedDataParallel: DDP averages gradients in hooks
armed by `forward()` and expects each forward to be followed by one backward over the parameters
it wraps. A Dreamer update is not that shape: the world model is called through `loss()`,
`imagine()`, `reward()` and `cont()`, never `forward()`; the actor-critic loss backpropagates
through the world model and the critic while their parameters are frozen (`requires_grad`
toggled off, which DDP does not allow after it is built), and three optimisers step on three
parameter sets at different points of one update. Wrapping that in DDP needs a routing
`forward()`, `no_sync` and ignored parameters, and a mistake there silently skips averaging. The
all-reduce is the same arithmetic DDP does (sum of flattened gradient buckets, divided by the
world size), called explicitly right before each gradient clip and optimiser step, where it is
easy to read and to test. Clipping the averaged gradient also makes a non-finite gradient on one
rank non-finite on all of them, so every rank stops together instead of waiting on a dead peer.

Beside this module: agents/launch.py starts the ranks from `memwm --nproc-per-node N`,
agents/env_workers.py guards environments in worker processes, and `memwm compare` splits its
backbones across ranks with the helpers here (agents/compare_ranks.py, `split_backbones`).
"""

from __future__ import annotations

import atexit
import datetime
import hashlib
import os
from pathlib import Path
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

SEED_STRIDE = 10_000  # rank r's seeds start at seed + r * SEED_STRIDE (its environments take seed + i)
BUCKET_BYTES = 25 * 2**20  # gradients are all-reduced in flat buckets of about this size (DDP's default)
TIMEOUT = datetime.timedelta(minutes=60)  # how long a rank waits for the others (rank 0 evaluates alone)


# --------------------------------------------------------------------------- ranks


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={value!r} is not an integer; torchrun sets it to the process's "
            f"{'rank' if 'RANK' in name else 'count'}"
        ) from None


def world_size() -> int:
    """How many ranks train together: torchrun's WORLD_SIZE, 1 without torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's rank in [0, world_size): torchrun's RANK, 0 without torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's index on its machine (its GPU): torchrun's LOCAL_RANK, 0 without torchrun."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Whether this is rank 0, the one that writes logs, videos and checkpoints."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """This rank's seed: `seed` on rank 0 (a one-process run is unchanged), `seed + rank * SEED_STRIDE` elsewhere."""
    return seed + rank() * SEED_STRIDE


def shard(directory: str | os.PathLike) -> Path:
    """This rank's folder under `directory`: rank 0 keeps `directory` itself (so one-process runs resume
    either way), rank r > 0 gets `directory/rank-<r>`."""
    directory = Path(directory)
    return directory if is_main() else directory / f"rank-{rank()}"


def init(device: torch.device, timeout: datetime.timedelta = TIMEOUT) -> torch.device:
    """Join torchrun's process group (once per process) and return this rank's device.

    device: the device the run asked for; a CUDA run gets `cuda:<LOCAL_RANK>` and NCCL, a CPU run gloo.
    Without torchrun (WORLD_SIZE unset or 1) nothing happens and `device` is returned.
    """
    world, r = world_size(), rank()
    if world < 1 or not 0 <= r < world:
        raise ValueError(f"RANK={r} and WORLD_SIZE={world} do not describe a process group; expected 0 <= RANK < WORLD_SIZE")
    if world == 1:
        return device
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank()} but this machine has {torch.cuda.device_count()} GPUs; "
                f"start at most one process per GPU (--nproc-per-node {torch.cuda.device_count()})"
            )
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timeout)
        atexit.register(shutdown)
    return device


def shutdown() -> None:
    """Leave the process group (registered at exit by `init`)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _group() -> bool:
    """Whether collectives are needed (several ranks); an error if torchrun started us but `init` was not called."""
    if world_size() == 1:
        return False
    if not dist.is_initialized():
        raise RuntimeError(f"WORLD_SIZE={world_size()} but the process group is not initialised; call agents.distributed.init first")
    return True


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def require_one_process(what: str) -> None:
    """ValueError when `what` (a feature without data parallelism) is started by torchrun with several ranks."""
    if world_size() > 1:
        raise ValueError(f"{what} does not train data-parallel; run it without torchrun (WORLD_SIZE is {world_size()})")


# --------------------------------------------------------------------------- collectives


def all_true(flag: bool) -> bool:
    """Whether `flag` holds on every rank (so that all ranks take the same branch before a collective)."""
    if not _group():
        return bool(flag)
    t = torch.tensor([int(bool(flag))], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def all_mean(x: Tensor) -> Tensor:
    """The mean of `x` over ranks (same shape, a new tensor on every rank); `x` itself in one process."""
    if not _group():
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def average_gradients(params: Iterable[nn.Parameter], bucket_bytes: int = BUCKET_BYTES) -> None:
    """Replace every gradient by its mean over ranks, in place; call it after backward, before clipping and stepping.

    Gradients are flattened into buckets of about `bucket_bytes` (per dtype and device), each bucket
    all-reduced (sum) and divided by the world size. A parameter without a gradient on some ranks
    counts as zero there; one without a gradient on every rank keeps `grad = None`, as in one process.
    """
    if not _group():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    grads = []
    for p, any_rank in zip(params, has_grad.tolist()):
        if any_rank:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    world = world_size()
    for bucket in _buckets(grads, bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])  # (sum of numels,)
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def _buckets(tensors: list[Tensor], bucket_bytes: int) -> list[list[Tensor]]:
    """Consecutive groups of same-dtype, same-device tensors of about `bucket_bytes` each (the same on every rank)."""
    out: list[list[Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if out and out[-1][0].dtype == t.dtype and out[-1][0].device == t.device and size + nbytes <= bucket_bytes:
            out[-1].append(t)
            size += nbytes
        else:
            out.append([t])
            size = nbytes
    return out


@torch.no_grad()
def broadcast_state(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's `module`."""
    if not _group():
        return
    dev = _comm_device()
    for t in module.state_dict().values():
        if not isinstance(t, Tensor):
            continue
        if t.device == dev:
            dist.broadcast(t, 0)  # state_dict tensors share storage with the module's
        else:
            buf = t.to(dev)
            dist.broadcast(buf, 0)
            t.copy_(buf)


def state_digest(module: nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes, in state_dict order: equal digests, equal weights."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        if isinstance(t, Tensor):
            h.update(name.encode())
            h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_in_sync(module: nn.Module, what: str = "the weights") -> None:
    """RuntimeError unless every rank's `module` holds the same parameters and buffers, bit for bit."""
    if not _group():
        return
    digests: list = [None] * world_size()
    dist.all_gather_object(digests, state_digest(module))
    if len(set(digests)) > 1:
        raise RuntimeError(
            f"{what} differ between ranks (digests {', '.join(d[:12] for d in digests)}); a gradient or buffer is not averaged"
        )


def gather_objects(obj) -> list | None:
    """Every rank's `obj` (picklable) as a list on rank 0; None on the other ranks."""
    if not _group():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out if is_main() else None


def barrier() -> None:
    if _group():
        dist.barrier()


__all__ = [
    "world_size",
    "rank",
    "local_rank",
    "is_main",
    "rank_seed",
    "shard",
    "init",
    "shutdown",
    "require_one_process",
    "all_true",
    "all_mean",
    "average_gradients",
    "broadcast_state",
    "state_digest",
    "check_in_sync",
    "gather_objects",
    "barrier",
]
