"""kernels.scan: every CPU backend equals the reference loop (values and gradients), the loop equals an
independent tree scan with the three-part operator of resettable scans, and bad input is refused."""

from __future__ import annotations

import zlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.scan import scan

CPU_BACKENDS = ["torch"] + (["numba"] if kernels.available("numba") else [])


# ------------------------------------------------------------------------------------------ inputs


def make_gate(shape, dtype, near_one=False, gen=None):
    """A stable gate: |a| < 1 (close to 1 with near_one), a random phase when complex."""
    mag = torch.rand(shape, dtype=torch.float64, generator=gen)
    mag = 1 - 1e-3 * mag if near_one else 0.2 + 0.75 * mag
    if dtype.is_complex:
        phase = 2 * torch.pi * torch.rand(shape, dtype=torch.float64, generator=gen)
        return torch.polar(mag, phase).to(dtype)
    return (mag * torch.where(torch.rand(shape, generator=gen) < 0.2, -1.0, 1.0).double()).to(dtype)


def make_reset(B, L, pattern, gen=None):
    """(B, L) bool resets: 'none', 'all', 'first', 'last', 'consecutive' or 'random'."""
    r = torch.zeros(B, L, dtype=torch.bool)
    if pattern == "all":
        r[:] = True
    elif pattern == "first":
        r[:, 0] = True
    elif pattern == "last":
        r[:, -1] = True
    elif pattern == "consecutive":
        r[0, L // 3 : L // 3 + 3] = True
        r[-1, -2:] = True
    elif pattern == "random":
        r = torch.rand(B, L, generator=gen) < 0.3
    return r


def make_inputs(B, L, D, dtype, a_kind, pattern, with_h0, near_one=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a_shape = {"varying": (B, L, D), "batch": (B, D), "shared": (D,)}[a_kind]
    a = make_gate(a_shape, dtype, near_one, gen)
    b = torch.randn(B, L, D, dtype=dtype, generator=gen)
    h0 = torch.randn(D if with_h0 == "shared" else (B, D), dtype=dtype, generator=gen) if with_h0 else None
    return a, b, make_reset(B, L, pattern, gen), h0


def values_and_grads(a, b, reset, h0, backend, seed=1):
    """h, h_last and the gradients of a random linear function of both with respect to a, b, h0."""
    leaves = [x.detach().clone().requires_grad_() if x is not None else None for x in (a, b, h0)]
    h, h_last = scan(leaves[0], leaves[1], reset, leaves[2], backend=backend)
    gen = torch.Generator().manual_seed(seed)
    w, w_last = torch.randn(h.shape, dtype=h.dtype, generator=gen), torch.randn(h_last.shape, dtype=h.dtype, generator=gen)
    loss = (h * w).real.sum() + (h_last * w_last).real.sum()
    wrt = [x for x in leaves if x is not None]
    grads = torch.autograd.grad(loss, wrt)
    return [h.detach(), h_last.detach(), *grads]


def assert_all_close(got, want, tol):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, (i, g.shape, w.shape, g.dtype, w.dtype)
        torch.testing.assert_close(g, w, rtol=tol, atol=tol, msg=lambda m: f"output {i}: {m}")


# ------------------------------------------------------------------------------- the tree oracle


def tree_scan(a, b, reset, h0):
    """Hillis-Steele inclusive scan with the operator of resettable scans (Lu et al. 2023).

    An element is (a, b, r); (a1, b1, r1) then (a2, b2, r2) is
    (a2 if r2 else a2 a1, b2 if r2 else a2 b1 + b2, r1 or r2). h0 enters through the first element and the resets.
    a, b: (B, L, D) (a expanded here, the oracle may); reset (B, L); h0 (B, D).
    """
    B, L, D = b.shape
    r = reset.clone()
    r[:, 0] = True  # every sequence starts from h0
    b = torch.where(r[..., None], b + a * h0[:, None], b)
    A, Bv, R = a.clone(), b.clone(), r[..., None].clone()
    step = 1
    while step < L:
        A1, B1, R1 = A[:, :-step], Bv[:, :-step], R[:, :-step]
        A2, B2, R2 = A[:, step:], Bv[:, step:], R[:, step:]
        A = torch.cat([A[:, :step], torch.where(R2, A2, A2 * A1)], 1)
        Bv = torch.cat([Bv[:, :step], torch.where(R2, B2, A2 * B1 + B2)], 1)
        R = torch.cat([R[:, :step], R1 | R2], 1)
        step *= 2
    return Bv


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("pattern", ["none", "all", "first", "last", "consecutive", "random"])
def test_reference_loop_equals_tree_scan_with_three_part_operator(dtype, pattern):
    B, L, D = 3, 37, 4
    a, b, reset, h0 = make_inputs(B, L, D, dtype, "varying", pattern, "batch", seed=3)
    h, h_last = scan(a, b, reset, h0, backend="reference")
    want = tree_scan(a, b, reset, h0)
    torch.testing.assert_close(h, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_last, want[:, -1])


def test_reference_loop_matches_hand_computed_recurrence():
    a = torch.tensor([[[0.5], [2.0], [3.0]]], dtype=torch.float64)  # (1, 3, 1)
    b = torch.tensor([[[1.0], [1.0], [1.0]]], dtype=torch.float64)
    h0 = torch.tensor([10.0], dtype=torch.float64)
    reset = torch.tensor([[False, False, True]])
    h, h_last = scan(a, b, reset, h0, backend="reference")
    # h_0 = 0.5 * 10 + 1 = 6; h_1 = 2 * 6 + 1 = 13; h_2 = 3 * h0 + 1 = 31 (reset)
    assert h.flatten().tolist() == [6.0, 13.0, 31.0] and h_last.item() == 31.0


# ----------------------------------------------------------------- backends against the reference


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("a_kind", ["varying", "batch", "shared"])
@pytest.mark.parametrize("pattern", ["none", "all", "first", "last", "consecutive", "random"])
def test_backend_equals_reference_values_and_gradients(backend, dtype, a_kind, pattern):
    B, L, D = 3, 13, 5
    with_h0 = {"none": None, "all": "batch", "first": "shared", "last": "batch", "consecutive": "shared", "random": "batch"}[pattern]
    seed = zlib.crc32(f"{a_kind}/{pattern}".encode()) % 1000  # the same in every process, unlike hash() of a str
    inputs = make_inputs(B, L, D, dtype, a_kind, pattern, with_h0, seed=seed)
    assert_all_close(values_and_grads(*inputs, backend), values_and_grads(*inputs, "reference"), 1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("L", [1, 2, 7, 64])
def test_backend_equals_reference_with_complex_gates_near_one(backend, L):
    inputs = make_inputs(2, L, 6, torch.complex128, "shared", "random", "shared", near_one=True, seed=L)
    assert_all_close(values_and_grads(*inputs, backend), values_and_grads(*inputs, "reference"), 1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_backend_equals_reference_in_single_precision(backend, dtype):
    inputs = make_inputs(4, 33, 16, dtype, "shared", "random", "batch", seed=5)
    assert_all_close(values_and_grads(*inputs, backend), values_and_grads(*inputs, "reference"), 1e-4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("a_kind", ["varying", "shared"])
def test_gradcheck(backend, dtype, a_kind):
    a, b, reset, h0 = make_inputs(2, 5, 3, dtype, a_kind, "consecutive", "shared", seed=7)
    a, b, h0 = (x.clone().requires_grad_() for x in (a, b, h0))

    def f(a, b, h0):
        return scan(a, b, reset, h0, backend=backend)

    assert torch.autograd.gradcheck(f, (a, b, h0))


@pytest.mark.parametrize("backend", ["reference"] + CPU_BACKENDS)
@given(
    B=st.integers(1, 3),
    L=st.integers(1, 24),
    D=st.integers(1, 5),
    data=st.data(),
    dtype=st.sampled_from([torch.float64, torch.complex128]),
    a_kind=st.sampled_from(["varying", "batch", "shared"]),
)
@settings(max_examples=25, deadline=None)
def test_property_backend_equals_tree_scan_and_reference(backend, B, L, D, data, dtype, a_kind):
    flags = data.draw(st.lists(st.booleans(), min_size=B * L, max_size=B * L), label="reset")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    a, b, _, h0 = make_inputs(B, L, D, dtype, a_kind, "none", "batch", seed=seed)
    reset = torch.tensor(flags, dtype=torch.bool).reshape(B, L)
    got = values_and_grads(a, b, reset, h0, backend)
    a_full = a.expand(B, L, D) if a.dim() == 3 else (a[:, None] if a.dim() == 2 else a).expand(B, L, D)
    torch.testing.assert_close(got[0], tree_scan(a_full, b, reset, h0), rtol=1e-10, atol=1e-10)
    if backend != "reference":
        assert_all_close(got, values_and_grads(a, b, reset, h0, "reference"), 1e-10)


# --------------------------------------------------------------------------- dtypes, shapes, API


@pytest.mark.parametrize("backend", ["reference"] + CPU_BACKENDS)
def test_half_precision_inputs_give_float32_state_and_input_dtype_gradients(backend):
    a, b, reset, h0 = make_inputs(2, 9, 4, torch.float32, "shared", "random", "batch", seed=2)
    a16, b16 = a.to(torch.bfloat16).requires_grad_(), b.to(torch.bfloat16).requires_grad_()
    h, h_last = scan(a16, b16, reset, h0, backend=backend)
    assert h.dtype == torch.float32 and h_last.dtype == torch.float32
    want, _ = scan(a16.float(), b16.float(), reset, h0, backend="reference")
    torch.testing.assert_close(h, want)
    ga, gb = torch.autograd.grad(h.sum(), [a16, b16])
    assert ga.dtype == torch.bfloat16 and gb.dtype == torch.bfloat16 and ga.shape == a16.shape


@pytest.mark.parametrize("backend", ["reference"] + CPU_BACKENDS)
def test_real_gate_on_complex_input_gets_a_real_gradient(backend):
    a, _, reset, _ = make_inputs(2, 6, 3, torch.float64, "shared", "random", None, seed=4)
    _, b, _, _ = make_inputs(2, 6, 3, torch.complex128, "shared", "none", None, seed=4)
    got = values_and_grads(a, b, reset, None, backend)
    want = values_and_grads(a.to(torch.complex128), b, reset, None, "reference")
    assert got[2].dtype == torch.float64
    torch.testing.assert_close(got[2], want[2].real)
    torch.testing.assert_close(got[0], want[0])


@pytest.mark.parametrize("backend", ["reference"] + CPU_BACKENDS)
def test_empty_sequence_returns_empty_states_and_h0_as_last(backend):
    b = torch.zeros(2, 0, 3)
    h0 = torch.randn(3)
    h, h_last = scan(torch.rand(3), b, torch.zeros(2, 0, dtype=torch.bool), h0, backend=backend)
    assert h.shape == (2, 0, 3)
    torch.testing.assert_close(h_last, h0.expand(2, 3))
    _, h_last = scan(torch.rand(3), b, backend=backend)
    assert torch.equal(h_last, torch.zeros(2, 3))


def test_h_last_continues_a_sequence():
    a, b, reset, h0 = make_inputs(2, 20, 3, torch.complex128, "shared", "random", "batch", seed=9)
    reset[:, 12:] = False  # the continuation's h0 is the carried state, so it must not reset
    h, _ = scan(a, b, reset, h0)
    _, mid = scan(a, b[:, :12], reset[:, :12], h0)
    rest, _ = scan(a, b[:, 12:], reset[:, 12:], mid)
    torch.testing.assert_close(rest, h[:, 12:])


def test_auto_picks_a_compiled_or_torch_backend_on_the_cpu():
    assert kernels.resolve_backend("auto", torch.device("cpu")) == ("numba" if kernels.available("numba") else "torch")


@pytest.mark.parametrize(
    "args, match",
    [
        (lambda: (torch.rand(4), torch.rand(2, 5, 3)), r"a must have shape .*\(2, 5, 3\).*got shape \(4,\)"),
        (lambda: (torch.rand(2, 4, 3), torch.rand(2, 5, 3)), r"a must have shape.*got shape \(2, 4, 3\)"),
        (lambda: (torch.rand(3), torch.rand(5, 3)), r"b must be a \(B, L, D\) tensor, got shape \(5, 3\)"),
        (lambda: (torch.rand(3), torch.rand(2, 5, 3), torch.zeros(2, 4, dtype=torch.bool)), r"reset must be .*\(2, 5\).*\(2, 4\)"),
        (lambda: (torch.rand(3), torch.rand(2, 5, 3), torch.zeros(2, 5)), r"reset must be a bool tensor.*float32"),
        (lambda: (torch.rand(3), torch.rand(2, 5, 3), None, torch.rand(4)), r"h0 must have shape \(B, D\) = \(2, 3\).*got shape \(4,\)"),
        (lambda: (torch.ones(3, dtype=torch.int64), torch.rand(2, 5, 3)), r"a has dtype torch.int64; expected one of"),
        (lambda: (torch.rand(3, device="meta"), torch.rand(2, 5, 3)), r"a is on meta but b is on cpu"),
    ],
)
def test_bad_input_raises_value_error_naming_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        scan(*args())


def test_unknown_backend_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown scan backend 'cuda'; known: auto, reference, torch"):
        scan(torch.rand(3), torch.rand(2, 5, 3), backend="cuda")


# ------------------------------------------------------------------------------------- ssm_step


def step_via_scan(h, a, bu, C, D, u, reset, h0):
    """One step of `scan` over the flattened state (h0 where reset, else h, as the scan's h0), then the readout."""
    B = h.shape[0]
    init = torch.zeros_like(h) if h0 is None else h0.expand(h.shape)
    start = torch.where(reset.view(-1, *[1] * (h.dim() - 1)), init, h) if reset is not None else h
    a_flat = a.reshape(B, -1) if a.shape == h.shape else a.reshape(-1)
    h_next, _ = scan(a_flat, bu.reshape(B, 1, -1), None, start.reshape(B, -1), backend="reference")
    h_next = h_next[:, 0].reshape(h.shape)
    y = torch.einsum("bn,kn->bk", h_next, C) if h.dim() == 2 else torch.einsum("bkn,kn->bk", h_next, C)
    return y.real + (D * u if D is not None else 0), h_next


@pytest.mark.parametrize("mode", ["mimo", "siso"])
@pytest.mark.parametrize("batched_a", [False, True])
@pytest.mark.parametrize("h0_kind", [None, "row", "batch"])
def test_ssm_step_equals_one_scan_step_and_readout(mode, batched_a, h0_kind):
    gen = torch.Generator().manual_seed(11)
    B, H, N = 4, 3, 5
    shape = (B, N) if mode == "mimo" else (B, H, N)
    row = shape[1:]
    cplx = lambda *s: torch.randn(*s, dtype=torch.complex128, generator=gen)
    h, bu, C = cplx(*shape), cplx(*shape), cplx(H, N)
    a = make_gate(shape if batched_a else row, torch.complex128, gen=gen)
    D, u = torch.randn(H, dtype=torch.float64, generator=gen), torch.randn(B, H, dtype=torch.float64, generator=gen)
    h0 = {None: None, "row": cplx(*row), "batch": cplx(*shape)}[h0_kind]
    reset = torch.tensor([True, False, True, False])
    y, h_next = kernels.ssm_step(h, a, bu, C, D, u, reset, h0)
    y_want, h_want = step_via_scan(h, a, bu, C, D, u, reset, h0)
    assert y.shape == (B, H) and y.dtype == torch.float64 and h_next.shape == shape
    torch.testing.assert_close(h_next, h_want)
    torch.testing.assert_close(y, y_want)


def test_ssm_step_unchecked_equals_checked():
    gen = torch.Generator().manual_seed(13)
    cplx = lambda *s: torch.randn(*s, dtype=torch.complex64, generator=gen)
    for shape, a in (((4, 5), cplx(5)), ((4, 3, 5), cplx(3, 5))):
        h, bu, C, h0 = cplx(*shape), cplx(*shape), cplx(3, 5), cplx(*shape[1:])
        D, u = torch.randn(3, generator=gen), torch.randn(4, 3, generator=gen)
        reset = torch.tensor([True, False, True, False])
        for kwargs in (dict(reset=reset), dict(reset=reset, h0=h0), {}):
            want = kernels.ssm_step(h, a, bu, C, D, u, **kwargs)
            torch.testing.assert_close(kernels.ssm_step(h, a, bu, C, D, u, check=False, **kwargs), want)
            torch.testing.assert_close(want, step_via_scan(h, a, bu, C, D, u, kwargs.get("reset"), kwargs.get("h0")))


def test_ssm_step_without_skip_or_reset_is_the_plain_readout():
    gen = torch.Generator().manual_seed(12)
    h, a, bu = (torch.randn(2, 6, dtype=torch.float64, generator=gen) for _ in range(3))
    C = torch.randn(3, 6, dtype=torch.float64, generator=gen)
    y, h_next = kernels.ssm_step(h, a, bu, C)
    torch.testing.assert_close(h_next, a * h + bu)
    torch.testing.assert_close(y, (a * h + bu) @ C.T)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(h=torch.zeros(2, 5), C=torch.zeros(3, 4)), r"C must be \(H, N\) = \(H, 5\) for h of shape \(2, 5\), got shape \(3, 4\)"),
        (dict(h=torch.zeros(2, 3, 5), C=torch.zeros(4, 5)), r"C must be \(H, N\) = \(3, 5\)"),
        (dict(a=torch.zeros(4)), r"a must have shape \(5,\) or \(2, 5\).*got shape \(4,\)"),
        (dict(u=torch.zeros(2, 3)), r"D and u go together"),
        (dict(reset=torch.zeros(3, dtype=torch.bool)), r"reset must have shape \(2,\).*got shape \(3,\)"),
        (dict(reset=torch.zeros(2)), r"reset must be a bool tensor"),
    ],
)
def test_ssm_step_bad_input_raises_value_error(kwargs, match):
    args = dict(h=torch.zeros(2, 5), a=torch.zeros(5), bu=torch.zeros(2, 5), C=torch.zeros(3, 5))
    args.update(kwargs)
    if args["h"].dim() == 3:
        args.update(a=torch.zeros(3, 5), bu=torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=match):
        kernels.ssm_step(**args)


# ---------------------------------------------------------------------------- the numba backend


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba is not installed")
def test_numba_parallel_path_equals_reference_and_takes_concurrent_callers(monkeypatch):
    import threading

    from kernels import numba_scan

    monkeypatch.setattr(numba_scan, "PARALLEL_MIN_ELEMENTS", 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inputs = make_inputs(3, 17, 300, torch.complex128, "shared", "random", "batch", seed=8)  # two channel chunks
        want = values_and_grads(*inputs, "reference")
        results = [None] * 4

        def work(k):
            results[k] = values_and_grads(*inputs, "numba")

        workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        torch.set_num_threads(threads)
    for got in results:
        assert_all_close(got, want, 1e-10)


def test_kernels_work_without_numba():
    """numba is optional: without it `auto` is the torch backend and asking for `numba` is a ValueError."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch, kernels\n"
        "assert not kernels.available('numba') and kernels.resolve_backend('auto', torch.device('cpu')) == 'torch'\n"
        "h, _ = kernels.scan(torch.full((3,), 0.5), torch.ones(1, 2, 3))\n"
        "assert h[0, 1].tolist() == [1.5, 1.5, 1.5], h\n"
        "try:\n    kernels.scan(torch.ones(3), torch.ones(1, 2, 3), backend='numba')\n"
        "except ValueError as e:\n    assert \"backend 'numba' is not available\" in str(e), e\n    print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_scan_benchmark_times_every_backend_against_reference_and_floor():
    """One row per backend, named as `auto` resolves here, over inputs on which every timed backend computes the
    reference's states (a benchmark of a wrong computation would time nothing worth knowing)."""
    from benchmarks.scan import Case, make, run_case, table

    case = Case("tiny", torch.complex64, 2, 8, 4, "shared")
    run_case(case, "cpu", ["torch", "auto"], rounds=2, clock="wall")
    auto = kernels.resolve_backend("auto", torch.device("cpu"))
    assert [(r["backend"], r["resolved"]) for r in case.rows] == [("reference", "reference"), ("torch", "torch"), ("auto", auto)]
    for r in case.rows:
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 and r["fwd_vs_floor"] > 0 and r["fwd_bwd_vs_3_floors"] > 0
        assert r["fwd_vs_reference"] > 0 and r["fwd_bwd_vs_reference"] > 0
    a, b, reset, _ = make(case, "cpu")
    want, _ = kernels.scan(a, b, reset, backend="reference")
    for name in ("torch", "auto"):
        assert_all_close([kernels.scan(a, b, reset, backend=name)[0]], [want], 1e-5)
    assert f"auto={auto}" in table([case])
