"""The Triton kernels (scan forward and backward, ssm_step) against the reference.

On a CUDA machine they run compiled on the GPU. Elsewhere they run under TRITON_INTERPRET=1, which
must be set before triton is first imported: this module then holds one test that reruns the module
in a subprocess with the variable set, so the rest of the suite never runs in interpreter mode.
Shapes stay tiny because the interpreter is slow; they still cross tile boundaries (L > BLOCK_T,
D > BLOCK_D) and cover every reset pattern and every form of `a`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
ON_GPU = torch.cuda.is_available() and not INTERPRET

if not (INTERPRET or ON_GPU):

    @pytest.mark.triton
    def test_triton_kernels_pass_under_the_interpreter():
        env = dict(os.environ, TRITON_INTERPRET="1", PYTEST_ADDOPTS="")
        env.pop("PYTEST_XDIST_WORKER", None)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider", "-p", "no:xdist", __file__],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        passed = re.search(r"(\d+) passed", proc.stdout)
        assert passed and int(passed.group(1)) >= 20, proc.stdout[-2000:]

    @pytest.mark.triton
    @pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
    @pytest.mark.parametrize("complex_", [False, True])
    def test_triton_kernels_compile_for_an_h100_without_a_gpu(complex_):
        """The interpreter does not type-check like the compiler: build the sm_90 cubins (ptxas ships with triton)."""
        import triton
        import triton.language as tl
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        from kernels import triton_scan

        def build(fn, signature, constants, num_warps):
            src = ASTSource(
                fn=fn,
                signature={**signature, **{k: "constexpr" for k in constants}},
                constexprs={(fn.arg_names.index(k),): v for k, v in constants.items()},
            )
            return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})

        p = "*fp32"
        block_t, block_d, warps = triton_scan.CONFIG[complex_]
        tiles = dict(HAS_RESET=True, COMPLEX=complex_, ACC=tl.float32, BLOCK_T=block_t, BLOCK_D=block_d)
        strides = dict(L="i32", D="i32", a_sb="i32", a_st="i32", h0_sb="i32")
        built = [build(triton_scan._scan_fwd_kernel, dict(A=p, X=p, R="*u8", H0=p, H=p, **strides), tiles, warps)]
        for varying in (True, False):
            built.append(
                build(
                    triton_scan._scan_bwd_kernel,
                    dict(A=p, H=p, DH=p, R="*u8", H0=p, G=p, GA=p, GH0=p, **strides),
                    dict(tiles, VARYING=varying),
                    warps,
                )
            )
        for siso in (False, True):
            built.append(
                build(
                    triton_scan._ssm_step_kernel,
                    dict(S=p, A=p, BU=p, R="*u8", H0=p, C=p, Dk=p, U=p, Y=p, SN=p, H="i32", N="i32", a_sb="i32", h0_sb="i32"),
                    dict(
                        SISO=siso, HAS_RESET=True, HAS_D=True, COMPLEX=complex_, COMPLEX_C=complex_, ACC=tl.float32, BLOCK_H=32, BLOCK_N=64
                    ),
                    4,
                )
            )
        for kernel in built:
            assert len(kernel.asm["cubin"]) > 1000

else:
    import kernels
    from kernels import triton_scan
    from tests.test_kernels import assert_all_close, make_gate, make_inputs, step_via_scan, values_and_grads

    DEVICE = "cuda" if ON_GPU else "cpu"

    def to_device(inputs):
        return [None if x is None else x.to(DEVICE) for x in inputs]

    CASES = [  # a_kind, reset pattern, h0, L, D (the interpreter's tiles are 4 x 4)
        ("varying", "random", "batch", 11, 5),
        ("shared", "consecutive", "shared", 13, 6),
        ("batch", "first", None, 9, 3),
        ("varying", "last", "shared", 1, 4),
        ("shared", "all", "batch", 5, 2),
        ("varying", "none", None, 8, 8),
    ]

    @pytest.mark.triton
    @pytest.mark.parametrize(
        "dtype, tol, case",
        [(d, 1e-4, c) for d in (torch.float32, torch.complex64) for c in CASES]
        + [(d, 1e-10, c) for d in (torch.float64, torch.complex128) for c in CASES[:3]],
    )
    def test_triton_scan_equals_reference_values_and_gradients(dtype, tol, case):
        a_kind, pattern, with_h0, L, D = case
        inputs = to_device(make_inputs(2, L, D, dtype, a_kind, pattern, with_h0, near_one=dtype.is_complex, seed=L * D))
        got = values_and_grads(*inputs, "triton")
        want = values_and_grads(*inputs, "reference")
        assert_all_close(got, want, tol)

    @pytest.mark.triton
    def test_triton_scan_half_precision_input_keeps_float32_state():
        a, b, reset, h0 = to_device(make_inputs(2, 20, 8, torch.float32, "varying", "random", "batch", seed=3))
        h, h_last = kernels.scan(a.half(), b.bfloat16(), reset, h0, backend="triton")
        want, _ = kernels.scan(a.half().float(), b.bfloat16().float(), reset, h0, backend="reference")
        assert h.dtype == torch.float32
        torch.testing.assert_close(h, want, rtol=1e-5, atol=1e-5)

    @pytest.mark.triton
    @pytest.mark.parametrize("mode", ["mimo", "siso"])
    @pytest.mark.parametrize("dtype, tol", [(torch.complex64, 1e-4), (torch.float32, 1e-4)])
    def test_triton_ssm_step_equals_one_scan_step_and_readout(mode, dtype, tol):
        gen = torch.Generator().manual_seed(5)
        B, H, N = 3, 5, 70  # N crosses BLOCK_N
        shape = (B, N) if mode == "mimo" else (B, H, N)
        rand = lambda *s: torch.randn(*s, dtype=dtype, generator=gen).to(DEVICE)
        h, bu, C, h0 = rand(*shape), rand(*shape), rand(H, N), rand(*shape[1:])
        a = make_gate(shape[1:], dtype, gen=gen).to(DEVICE)
        D, u = torch.randn(H, generator=gen).to(DEVICE), torch.randn(B, H, generator=gen).to(DEVICE)
        reset = torch.tensor([True, False, True], device=DEVICE)
        y, h_next = triton_scan.ssm_step(h, a, bu, C, D, u, reset, h0)
        y_want, h_want = step_via_scan(h, a, bu, C, D, u, reset, h0)
        torch.testing.assert_close(h_next, h_want, rtol=tol, atol=tol)
        torch.testing.assert_close(y, y_want, rtol=tol, atol=tol)

    @pytest.mark.triton
    @pytest.mark.skipif(not ON_GPU, reason="CUDA only: the fused step is what ssm_step picks on a GPU")
    def test_ssm_step_uses_the_fused_kernel_on_cuda_and_matches_the_torch_path():
        h, a, bu = (torch.randn(4, 16, dtype=torch.complex64, device="cuda") for _ in range(3))
        C = torch.randn(8, 16, dtype=torch.complex64, device="cuda")
        y, h_next = kernels.ssm_step(h, a, bu, C)
        with torch.enable_grad():
            y2, h2 = kernels.ssm_step(h, a, bu, C.requires_grad_())  # autograd: the torch path
        torch.testing.assert_close(y, y2.detach(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(h_next, h2.detach())

    @pytest.mark.triton
    @pytest.mark.skipif(not ON_GPU, reason="CUDA only: a shape with many tiles and channel blocks")
    def test_triton_scan_on_a_large_shape_equals_torch_backend():
        inputs = to_device(make_inputs(4, 3000, 700, torch.complex64, "shared", "random", "batch", near_one=True, seed=1))
        inputs[2] = torch.rand(4, 3000, device=DEVICE) < 1 / 64
        assert_all_close(values_and_grads(*inputs, "triton"), values_and_grads(*inputs, "torch"), 2e-3)
