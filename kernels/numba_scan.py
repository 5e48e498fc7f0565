"""The compiled CPU scan backend: numba-JIT loops over time, run on the torch tensors' memory.

Optional: importing this module raises ImportError without numba, and `kernels.scan` then uses the
torch backend. The loops are compiled once per dtype and cached on disk (cache=True), take numpy
views of contiguous CPU tensors (no copies) and release the GIL. Tasks are (sequence, chunk of 256
channels); inputs of 2^18 elements or more run them in parallel on as many threads as torch uses
(on a loaded 2-core machine the serial loop was as fast: the scan is bound by memory).

One forward pass reads a and b and writes h; one backward pass runs the reverse scan and forms
every gradient product in the same sweep. Shapes are the normal form of `kernels.scan`.
"""

from __future__ import annotations

import threading

try:
    # numba (llvmlite) and triton each bring their own LLVM. torch's optimisers import triton
    # lazily (through torch._dynamo), i.e. after this module; one pytest worker that had run these
    # loops segfaulted inside libtriton's load then. Loading triton's LLVM first avoids that order.
    import triton  # noqa: F401
except ImportError:
    pass
import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

_CHUNK = 256  # channels per task: a task's slice of h stays in L1 while it walks over time
PARALLEL_MIN_ELEMENTS = 1 << 18  # below this many elements of b, one thread
_PARALLEL_LOCK = threading.Lock()


# The loops below walk over time with row views (a[ia, t, lo:hi]) and keep the running state in a
# local array: LLVM then vectorises the inner loop over channels (indexing h[i, t - 1, d] directly
# keeps it from vectorising for real dtypes, the loads and stores possibly aliasing).


@njit(cache=True, nogil=True)
def _forward_task(a, b, reset, h0, h, task, chunks):  # pragma: no cover - compiled
    """Sequence i = task // chunks, channels lo:hi of chunk task % chunks: fills h[i, :, lo:hi]."""
    L, D = b.shape[1], b.shape[2]
    i, c = task // chunks, task % chunks
    lo, hi = c * _CHUNK, min(D, (c + 1) * _CHUNK)
    ia = i if a.shape[0] > 1 else 0
    init = h0[i if h0.shape[0] > 1 else 0, lo:hi]
    varying = a.shape[1] > 1
    state = init.copy()  # h_{t-1}[lo:hi]
    for t in range(L):
        if reset[i, t]:
            state[:] = init
        at, bt, ht = a[ia, t if varying else 0, lo:hi], b[i, t, lo:hi], h[i, t, lo:hi]
        for d in range(hi - lo):
            v = at[d] * state[d] + bt[d]
            state[d] = v
            ht[d] = v


@njit(cache=True, nogil=True)
def _backward_task(a, h, dh, reset, h0, g, grad_a, grad_h0, task, chunks):  # pragma: no cover - compiled
    """Reverse scan g_t = dh_t + conj(a_{t+1} (1 - reset_{t+1})) g_{t+1} and the gradient products, for
    sequence i = task // chunks and channels lo:hi of chunk task % chunks. Fills g[i, :, lo:hi],
    grad_a[i, :, lo:hi] (B, La, D) (summed over time when La = 1) and grad_h0[i, lo:hi] (B, D)."""
    L, D = h.shape[1], h.shape[2]
    i, c = task // chunks, task % chunks
    lo, hi = c * _CHUNK, min(D, (c + 1) * _CHUNK)
    n = hi - lo
    ia = i if a.shape[0] > 1 else 0
    init = h0[i if h0.shape[0] > 1 else 0, lo:hi]
    varying = a.shape[1] > 1
    carry = np.zeros(n, dtype=g.dtype)  # conj(a_{t+1} (1 - reset_{t+1})) g_{t+1}
    acc = np.zeros(n, dtype=g.dtype)  # grad_a summed over time
    gh0 = grad_h0[i, lo:hi]
    gh0[:] = 0
    for t in range(L - 1, -1, -1):
        starts = t == 0 or reset[i, t]
        at, dht, gt = a[ia, t if varying else 0, lo:hi], dh[i, t, lo:hi], g[i, t, lo:hi]
        prev = init if starts else h[i, t - 1, lo:hi]
        if varying:
            gat = grad_a[i, t, lo:hi]
            for d in range(n):
                v = dht[d] + carry[d]
                gt[d] = v
                gat[d] = v * prev[d].conjugate()
                carry[d] = at[d].conjugate() * v
        else:
            for d in range(n):
                v = dht[d] + carry[d]
                gt[d] = v
                acc[d] += v * prev[d].conjugate()
                carry[d] = at[d].conjugate() * v
        if starts:  # h0 entered here: grad_h0 += g_t conj(a_t), and the reverse scan stops
            for d in range(n):
                gh0[d] += carry[d]
                carry[d] = 0
    if not varying:
        grad_a[i, 0, lo:hi] = acc


# The same tasks run serially for small inputs, where waking threads costs more than it saves (and on a
# shared machine a descheduled worker thread stalls the call), and in parallel for large ones.
@njit(cache=True, nogil=True)
def _forward_serial(a, b, reset, h0, h, chunks):  # pragma: no cover - compiled
    for task in range(b.shape[0] * chunks):
        _forward_task(a, b, reset, h0, h, task, chunks)


@njit(parallel=True, cache=True, nogil=True)
def _forward_parallel(a, b, reset, h0, h, chunks):  # pragma: no cover - compiled
    for task in prange(b.shape[0] * chunks):
        _forward_task(a, b, reset, h0, h, task, chunks)


@njit(cache=True, nogil=True)
def _backward_serial(a, h, dh, reset, h0, g, grad_a, grad_h0, chunks):  # pragma: no cover - compiled
    for task in range(h.shape[0] * chunks):
        _backward_task(a, h, dh, reset, h0, g, grad_a, grad_h0, task, chunks)


@njit(parallel=True, cache=True, nogil=True)
def _backward_parallel(a, h, dh, reset, h0, g, grad_a, grad_h0, chunks):  # pragma: no cover - compiled
    for task in prange(h.shape[0] * chunks):
        _backward_task(a, h, dh, reset, h0, g, grad_a, grad_h0, task, chunks)


def _np(x: Tensor) -> np.ndarray:
    """A numpy view of a contiguous CPU tensor's memory."""
    return x.detach().resolve_conj().numpy()


def _run(serial, parallel, x: Tensor, *arrays) -> None:
    """Runs the parallel loop on as many threads as torch uses when x is big enough to be worth waking
    them, else the serial one. One parallel call at a time: numba's thread pools (workqueue, omp)
    do not take concurrent launches from several Python threads, so a second caller runs serially."""
    threads = max(1, min(numba.config.NUMBA_NUM_THREADS, torch.get_num_threads()))
    if threads > 1 and x.numel() >= PARALLEL_MIN_ELEMENTS and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            numba.set_num_threads(threads)
            parallel(*arrays)
        finally:
            _PARALLEL_LOCK.release()
    else:
        serial(*arrays)


def _check_cpu(x: Tensor) -> None:
    if x.device.type != "cpu":
        raise ValueError(f"scan backend 'numba' runs on the CPU, got tensors on {x.device}; use 'torch' or 'triton'")


def _defaults(b: Tensor, reset: Tensor | None, h0: Tensor | None):
    B, L, D = b.shape
    reset = torch.zeros(B, L, dtype=torch.bool) if reset is None else reset
    h0 = b.new_zeros(1, D) if h0 is None else h0
    return reset, h0


def forward(a: Tensor, b: Tensor, reset: Tensor | None, h0: Tensor | None) -> Tensor:
    """a (Ba, La, D), b (B, L, D), reset (B, L) | None, h0 (Bh, D) | None -> h (B, L, D)."""
    _check_cpu(b)
    reset, h0 = _defaults(b, reset, h0)
    h = torch.empty_like(b)
    _run(_forward_serial, _forward_parallel, b, _np(a), _np(b), _np(reset), _np(h0), _np(h), -(-b.shape[2] // _CHUNK))
    return h


def backward(a: Tensor, h: Tensor, dh: Tensor, reset: Tensor | None, h0: Tensor | None):
    """-> (grad_b (B, L, D), grad_a (B, La, D), grad_h0 (B, D)); see kernels/scan.py."""
    _check_cpu(h)
    reset, h0 = _defaults(h, reset, h0)
    B, L, D = h.shape
    g = torch.empty_like(dh)
    grad_a = h.new_empty(B, a.shape[1], D)
    grad_h0 = h.new_empty(B, D)
    _run(
        _backward_serial,
        _backward_parallel,
        h,
        _np(a),
        _np(h),
        _np(dh),
        _np(reset),
        _np(h0),
        _np(g),
        _np(grad_a),
        _np(grad_h0),
        -(-D // _CHUNK),
    )
    return g, grad_a, grad_h0
