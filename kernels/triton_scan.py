"""The Triton scan backend: fused forward and backward kernels, and the fused `ssm_step`.

Layout: one program per (sequence, channel block), all on grid axis 0 (up to 2^31 - 1 programs;
axes 1 and 2 stop at 65535), the channel blocks of one sequence next to each other. A program walks over time in tiles of BLOCK_T steps: it
loads a (BLOCK_T, BLOCK_D) tile of a and b at once (many loads in flight), scans the tile with
`tl.associative_scan` under the operator (a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2), and
applies the carried state: h = A_cum * carry + B_cum. A reset is the gate masked to zero with
h0 entering through b (a_t (1 - r_t), b_t + r_t a_t h0). Complex numbers are real/imaginary
planes (the interleaved pairs of `torch.view_as_real`); the state and all arithmetic are float32
(float64 for float64 inputs); offsets are int64.

The backward is the same kernel shape run backwards in time: tiles are loaded in reversed time
order, so the forward associative scan of the tile is the reverse scan
    g_t = dh_t + conj(a_{t+1} (1 - r_{t+1})) g_{t+1},
and the gradient products grad_a_t = g_t conj(h_{t-1} or h0) and grad_h0 are formed in the same
sweep. On the CPU the kernels run under TRITON_INTERPRET=1 (the tests do that).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

# Tile sizes (BLOCK_T, BLOCK_D, num_warps) for real and for complex inputs: 128-byte rows of BLOCK_D
# float32 channels, and enough (sequence, block) programs to fill an H100 at B=8, D=1536 (384). The interpreter runs
# tl.associative_scan one element at a time in Python, so under it the tiles shrink to 4 x 4 (which
# also lets tiny test shapes cross tile boundaries).
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
CONFIG = {False: (4, 4, 1), True: (4, 4, 1)} if INTERPRET else {False: (64, 32, 4), True: (32, 32, 4)}


# ------------------------------------------------------------------------------ complex helpers


@triton.jit
def _combine_real(a1, b1, a2, b2):
    return a2 * a1, a2 * b1 + b2


@triton.jit
def _combine_complex(a1r, a1i, b1r, b1i, a2r, a2i, b2r, b2i):
    return (a2r * a1r - a2i * a1i, a2r * a1i + a2i * a1r, a2r * b1r - a2i * b1i + b2r, a2r * b1i + a2i * b1r + b2i)


@triton.jit
def _scan_tile(ar, ai, br, bi, COMPLEX: tl.constexpr):
    """Inclusive scan over axis 0 of (BLOCK_T, BLOCK_D) tiles; for real inputs ai, bi are ignored."""
    if COMPLEX:
        ar, ai, br, bi = tl.associative_scan((ar, ai, br, bi), 0, _combine_complex)
    else:
        ar, br = tl.associative_scan((ar, br), 0, _combine_real)
    return ar, ai, br, bi


@triton.jit
def _load(ptr, off, mask, other, ACC: tl.constexpr, COMPLEX: tl.constexpr):
    """(re, im) of the elements at `off` (element offsets; complex = interleaved pairs), in ACC."""
    if COMPLEX:
        re = tl.load(ptr + 2 * off, mask=mask, other=other).to(ACC)
        im = tl.load(ptr + 2 * off + 1, mask=mask, other=0.0).to(ACC)
    else:
        re = tl.load(ptr + off, mask=mask, other=other).to(ACC)
        im = re * 0
    return re, im


@triton.jit
def _store(ptr, off, re, im, mask, COMPLEX: tl.constexpr):
    if COMPLEX:
        tl.store(ptr + 2 * off, re.to(ptr.dtype.element_ty), mask=mask)
        tl.store(ptr + 2 * off + 1, im.to(ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(ptr + off, re.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _mul(xr, xi, yr, yi, COMPLEX: tl.constexpr):
    if COMPLEX:
        return xr * yr - xi * yi, xr * yi + xi * yr
    return xr * yr, xi


@triton.jit
def _mul_conj(xr, xi, yr, yi, COMPLEX: tl.constexpr):
    """x * conj(y)."""
    if COMPLEX:
        return xr * yr + xi * yi, xi * yr - xr * yi
    return xr * yr, xi


@triton.jit
def _last_row(x, rows, BLOCK_T: tl.constexpr):
    """Row BLOCK_T - 1 of a (BLOCK_T, BLOCK_D) tile, as (BLOCK_D,)."""
    return tl.sum(tl.where(rows[:, None] == BLOCK_T - 1, x, 0.0), axis=0)


# ------------------------------------------------------------------------------------ the scan


@triton.jit
def _scan_fwd_kernel(
    A,
    X,
    R,
    H0,
    H,
    L,
    D,
    a_sb,
    a_st,
    h0_sb,
    HAS_RESET: tl.constexpr,
    COMPLEX: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """A (Ba, La, D) with element strides a_sb (0 if shared), a_st (0 if time-invariant); X, H (B, L, D);
    R (B, L) uint8; H0 (Bh, D) with batch stride h0_sb (0 if shared)."""
    blocks = tl.cdiv(D, BLOCK_D)
    pid = tl.program_id(0).to(tl.int64)  # (sequence, channel block), channel blocks fastest
    pid_b, pid_d = pid // blocks, pid % blocks
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    dmask = d < D
    rows = tl.arange(0, BLOCK_T)
    h0r, h0i = _load(H0, pid_b * h0_sb + d, dmask, 0.0, ACC, COMPLEX)  # (BLOCK_D,)
    cr, ci = h0r, h0i  # the carried state h_{t0 - 1}
    seq = pid_b * L * D
    for t0 in range(0, L, BLOCK_T):
        t = t0 + rows  # (BLOCK_T,) time steps of this tile
        tmask = t < L
        mask = tmask[:, None] & dmask[None, :]
        off = seq + t.to(tl.int64)[:, None] * D + d[None, :]  # (BLOCK_T, BLOCK_D)
        ar, ai = _load(A, pid_b * a_sb + t.to(tl.int64)[:, None] * a_st + d[None, :], mask, 1.0, ACC, COMPLEX)
        br, bi = _load(X, off, mask, 0.0, ACC, COMPLEX)
        first = (t == 0)[:, None] & dmask[None, :]
        if HAS_RESET:
            first = first | ((tl.load(R + pid_b * L + t, mask=tmask, other=0) != 0)[:, None] & dmask[None, :])
        # at t = 0 and at resets h_{t-1} is h0: the gate drops out of the scan and a_t h0 joins b_t
        # (at t = 0 the carry is h0 anyway; treating it as a start keeps one code path)
        sr, si = _mul(ar, ai, h0r[None, :], h0i[None, :], COMPLEX)
        br = tl.where(first, br + sr, br)
        bi = tl.where(first, bi + si, bi)
        ar = tl.where(first, 0.0, ar)
        ai = tl.where(first, 0.0, ai)
        ar, ai, br, bi = _scan_tile(ar, ai, br, bi, COMPLEX)
        hr, hi = _mul(ar, ai, cr[None, :], ci[None, :], COMPLEX)
        hr, hi = hr + br, hi + bi
        _store(H, off, hr, hi, mask, COMPLEX)
        # padded rows (t >= L) hold the identity (a = 1, b = 0), so the last row is the last state
        cr = _last_row(hr, rows, BLOCK_T)
        if COMPLEX:
            ci = _last_row(hi, rows, BLOCK_T)


@triton.jit
def _scan_bwd_kernel(
    A,
    H,
    DH,
    R,
    H0,
    G,
    GA,
    GH0,
    L,
    D,
    a_sb,
    a_st,
    h0_sb,
    HAS_RESET: tl.constexpr,
    VARYING: tl.constexpr,
    COMPLEX: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Reverse scan and gradient products. G like H (B, L, D); GA (B, La, D); GH0 (B, D)."""
    blocks = tl.cdiv(D, BLOCK_D)
    pid = tl.program_id(0).to(tl.int64)  # (sequence, channel block), channel blocks fastest
    pid_b, pid_d = pid // blocks, pid % blocks
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    rows = tl.arange(0, BLOCK_T)
    h0r, h0i = _load(H0, pid_b * h0_sb + d, dmask, 0.0, ACC, COMPLEX)  # (BLOCK_D,)
    cr = tl.zeros([BLOCK_D], ACC)  # g_{t_hi + 1}
    ci = tl.zeros([BLOCK_D], ACC)
    gar = tl.zeros([BLOCK_D], ACC)  # grad_a summed over time (time-invariant a)
    gai = tl.zeros([BLOCK_D], ACC)
    ghr = tl.zeros([BLOCK_D], ACC)  # grad_h0
    ghi = tl.zeros([BLOCK_D], ACC)
    seq = pid_b * L * D
    abase = pid_b * a_sb
    for k in range(0, tl.cdiv(L, BLOCK_T)):
        t = (L - 1 - k * BLOCK_T - rows).to(tl.int64)  # row j holds time t_hi - j
        tmask = t >= 0
        mask = tmask[:, None] & dmask[None, :]
        off = seq + t[:, None] * D + d[None, :]
        # the reverse-scan gate of row t is conj(a_{t+1} (1 - r_{t+1})), zero at t = L - 1
        nmask = ((t + 1 < L) & tmask)[:, None] & dmask[None, :]
        nr, ni = _load(A, abase + (t + 1)[:, None] * a_st + d[None, :], nmask, 0.0, ACC, COMPLEX)
        if HAS_RESET:
            rnext = tl.load(R + pid_b * L + t + 1, mask=(t + 1 < L) & tmask, other=0) != 0
            nr = tl.where(rnext[:, None], 0.0, nr)
            ni = tl.where(rnext[:, None], 0.0, ni)
        nr = tl.where(mask, nr, 1.0)  # padded rows (t < 0): the identity
        ni = tl.where(mask, -ni, 0.0)
        gr, gi = _load(DH, off, mask, 0.0, ACC, COMPLEX)
        nr, ni, gr, gi = _scan_tile(nr, ni, gr, gi, COMPLEX)
        tr, ti = _mul(nr, ni, cr[None, :], ci[None, :], COMPLEX)
        gr, gi = gr + tr, gi + ti
        _store(G, off, gr, gi, mask, COMPLEX)
        cr = _last_row(gr, rows, BLOCK_T)
        if COMPLEX:
            ci = _last_row(gi, rows, BLOCK_T)
        # grad_a_t = g_t conj(h_{t-1}), with h0 in place of h_{t-1} at t = 0 and at resets
        first = (t == 0)[:, None] & dmask[None, :]
        if HAS_RESET:
            first = first | ((tl.load(R + pid_b * L + t, mask=tmask, other=0) != 0)[:, None] & dmask[None, :])
        pmask = mask & (t >= 1)[:, None]
        pr, pi = _load(H, off - D, pmask, 0.0, ACC, COMPLEX)
        pr = tl.where(first, h0r[None, :], pr)
        if COMPLEX:
            pi = tl.where(first, h0i[None, :], pi)
        qr, qi = _mul_conj(gr, gi, pr, pi, COMPLEX)
        if VARYING:
            _store(GA, off, qr, qi, mask, COMPLEX)
        else:
            gar += tl.sum(tl.where(mask, qr, 0.0), axis=0)
            if COMPLEX:
                gai += tl.sum(tl.where(mask, qi, 0.0), axis=0)
        # grad_h0 += g_t conj(a_t) where h0 entered (t = 0 and resets)
        ar, ai = _load(A, abase + t[:, None] * a_st + d[None, :], mask, 0.0, ACC, COMPLEX)
        sr, si = _mul_conj(gr, gi, ar, ai, COMPLEX)
        ghr += tl.sum(tl.where(first, sr, 0.0), axis=0)
        if COMPLEX:
            ghi += tl.sum(tl.where(first, si, 0.0), axis=0)
    if not VARYING:
        _store(GA, pid_b * D + d, gar, gai, dmask, COMPLEX)
    _store(GH0, pid_b * D + d, ghr, ghi, dmask, COMPLEX)


def _check_device(x: Tensor) -> None:
    if x.device.type != "cuda" and not INTERPRET:
        raise ValueError(f"scan backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU), got {x.device}")


def _planes(x: Tensor) -> Tensor:
    """The float view of x's memory: interleaved (re, im) pairs for complex tensors."""
    return torch.view_as_real(x.resolve_conj()) if x.is_complex() else x


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype in (torch.float64, torch.complex128) else tl.float32


def _common(a: Tensor, b: Tensor, reset: Tensor | None, h0: Tensor | None):
    B, L, D = b.shape
    complex_ = b.is_complex()
    block_t, block_d, warps = CONFIG[complex_]
    block_d = min(block_d, triton.next_power_of_2(D))
    h0 = b.new_zeros(1, D) if h0 is None else h0
    r = reset.view(torch.uint8) if reset is not None else b.new_empty(1, dtype=torch.uint8)
    strides = (a.stride(0) if a.shape[0] > 1 else 0, a.stride(1) if a.shape[1] > 1 else 0, h0.stride(0) if h0.shape[0] > 1 else 0)
    meta = dict(HAS_RESET=reset is not None, COMPLEX=complex_, ACC=_acc(b.dtype), BLOCK_T=block_t, BLOCK_D=block_d, num_warps=warps)
    grid = (triton.cdiv(D, block_d) * B,)
    return h0, r, strides, meta, grid


def forward(a: Tensor, b: Tensor, reset: Tensor | None, h0: Tensor | None) -> Tensor:
    """a (Ba, La, D), b (B, L, D), reset (B, L) | None, h0 (Bh, D) | None -> h (B, L, D)."""
    _check_device(b)
    B, L, D = b.shape
    h0, r, strides, meta, grid = _common(a, b, reset, h0)
    h = torch.empty_like(b)
    _scan_fwd_kernel[grid](_planes(a), _planes(b), r, _planes(h0), _planes(h), L, D, *strides, **meta)
    return h


def backward(a: Tensor, h: Tensor, dh: Tensor, reset: Tensor | None, h0: Tensor | None):
    """-> (grad_b (B, L, D), grad_a (B, La, D), grad_h0 (B, D)); see kernels/scan.py."""
    _check_device(h)
    B, L, D = h.shape
    h0, r, strides, meta, grid = _common(a, h, reset, h0)
    g = torch.empty_like(dh)
    grad_a = torch.empty(B, a.shape[1], D, dtype=h.dtype, device=h.device)
    grad_h0 = torch.empty(B, D, dtype=h.dtype, device=h.device)
    _scan_bwd_kernel[grid](
        _planes(a),
        _planes(h),
        _planes(dh),
        r,
        _planes(h0),
        _planes(g),
        _planes(grad_a),
        _planes(grad_h0),
        L,
        D,
        *strides,
        VARYING=a.shape[1] > 1,
        **meta,
    )
    return g, grad_a, grad_h0


# ------------------------------------------------------------------------------------ ssm_step


@triton.jit
def _ssm_step_kernel(
    S,
    A,
    BU,
    R,
    H0,
    C,
    Dk,
    U,
    Y,
    SN,
    H,
    N,
    a_sb,
    h0_sb,
    SISO: tl.constexpr,
    HAS_RESET: tl.constexpr,
    HAS_D: tl.constexpr,
    COMPLEX: tl.constexpr,
    COMPLEX_C: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program per (sequence, block of outputs k). The state S, SN is (B, N) (MIMO) or (B, H, N)
    (SISO); A and H0 have batch strides a_sb, h0_sb (0 when shared); C (H, N); Dk (H,); U, Y (B, H)."""
    pid_b = tl.program_id(0).to(tl.int64)
    pid_k = tl.program_id(1)
    k = pid_k * BLOCK_H + tl.arange(0, BLOCK_H)  # (BLOCK_H,)
    kmask = k < H
    size = H * N if SISO else N  # state elements per sequence
    acc = tl.zeros([BLOCK_H], ACC)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        nmask = n < N
        if SISO:
            soff = k.to(tl.int64)[:, None] * N + n[None, :]  # (BLOCK_H, BLOCK_N)
            smask = kmask[:, None] & nmask[None, :]
        else:
            soff = n.to(tl.int64)[None, :]  # (1, BLOCK_N), shared by every k
            smask = nmask[None, :]
        hr, hi = _load(S, pid_b * size + soff, smask, 0.0, ACC, COMPLEX)
        if HAS_RESET:
            start = tl.load(R + pid_b) != 0
            h0r, h0i = _load(H0, pid_b * h0_sb + soff, smask, 0.0, ACC, COMPLEX)
            hr = tl.where(start, h0r, hr)
            hi = tl.where(start, h0i, hi)
        ar, ai = _load(A, pid_b * a_sb + soff, smask, 0.0, ACC, COMPLEX)
        ur, ui = _load(BU, pid_b * size + soff, smask, 0.0, ACC, COMPLEX)
        nr, ni = _mul(ar, ai, hr, hi, COMPLEX)
        nr, ni = nr + ur, ni + ui
        if SISO:
            _store(SN, pid_b * size + soff, nr, ni, smask, COMPLEX)
        elif pid_k == 0:  # every program computes the shared state; the first one writes it
            _store(SN, pid_b * size + soff, nr, ni, smask, COMPLEX)
        cmask = kmask[:, None] & nmask[None, :]
        cr, ci = _load(C, k.to(tl.int64)[:, None] * N + n[None, :], cmask, 0.0, ACC, COMPLEX_C)
        prod = cr * nr  # Re(C h_next) = Cr hr - Ci hi, and only Cr hr when either is real
        if COMPLEX and COMPLEX_C:
            prod -= ci * ni
        acc += tl.sum(tl.where(cmask, prod, 0.0), axis=1)
    if HAS_D:
        acc += tl.load(Dk + k, mask=kmask, other=0.0).to(ACC) * tl.load(U + pid_b * H + k, mask=kmask, other=0.0).to(ACC)
    tl.store(Y + pid_b * H + k, acc.to(Y.dtype.element_ty), mask=kmask)


def ssm_step(
    h: Tensor, a: Tensor, bu: Tensor, C: Tensor, D: Tensor | None, u: Tensor | None, reset: Tensor | None, h0: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The fused `kernels.ssm_step` (inputs already checked there; h, a, bu, h0 in the state dtype).

    h, bu (B, N) | (B, H, N); a, h0 like h or like one row; C (H, N); D (H,), u (B, H); reset (B,).
    Returns (y (B, H), h_next like h)."""
    _check_device(h)
    siso = h.dim() == 3
    B, N, H = h.shape[0], h.shape[-1], C.shape[0]
    size = h[0].numel()
    h, a, bu, C = h.contiguous(), a.contiguous(), bu.contiguous(), C.contiguous()
    real_c = C.real if C.is_complex() else C
    y_dtype = torch.promote_types(h.real.dtype if h.is_complex() else h.dtype, real_c.dtype)
    if D is not None:
        y_dtype = torch.promote_types(y_dtype, torch.promote_types(D.dtype, u.dtype))
        D, u = D.contiguous(), u.contiguous()
    h0 = h.new_zeros(h.shape[1:]) if h0 is None else h0.contiguous()
    r = reset.view(torch.uint8) if reset is not None else h.new_empty(1, dtype=torch.uint8)
    y = torch.empty(B, H, dtype=y_dtype, device=h.device)
    h_next = torch.empty_like(h)
    block_h = min(32, triton.next_power_of_2(H))
    block_n = min(64, triton.next_power_of_2(N))
    grid = (B, triton.cdiv(H, block_h))
    _ssm_step_kernel[grid](
        _planes(h),
        _planes(a),
        _planes(bu),
        r,
        _planes(h0),
        _planes(C),
        D if D is not None else y,
        u if u is not None else y,
        y,
        _planes(h_next),
        H,
        N,
        size if a.dim() == h.dim() else 0,
        size if h0.dim() == h.dim() else 0,
        SISO=siso,
        HAS_RESET=reset is not None,
        HAS_D=D is not None,
        COMPLEX=h.is_complex(),
        COMPLEX_C=C.is_complex(),
        ACC=_acc(y_dtype),
        BLOCK_H=block_h,
        BLOCK_N=block_n,
        num_warps=4,
    )
    return y, h_next
