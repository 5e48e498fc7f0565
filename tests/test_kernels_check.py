"""The fused kernels are checked against torch where they run: a wrong kernel is caught on first use and `auto`
falls back to torch for the rest of the process.

The checks that run the kernels need them to run: on a GPU, or on the CPU under TRITON_INTERPRET=1, which
must be set before triton is imported; so, as in test_kernels_triton.py, one test reruns this module in a
subprocess with the variable set. The wiring tests (which backend `auto` picks) need no kernel and run here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

import kernels
from kernels import check

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
ON_GPU = torch.cuda.is_available() and not INTERPRET
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
runs_kernels = pytest.mark.skipif(not (INTERPRET or ON_GPU), reason="the fused kernels run on a GPU or under TRITON_INTERPRET=1")


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    monkeypatch.setattr(check, "_verdicts", {})
    monkeypatch.setattr(check, "_said", set())


if not (INTERPRET or ON_GPU):

    @pytest.mark.triton
    def test_the_kernel_checks_pass_under_the_interpreter():
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
        assert passed and int(passed.group(1)) >= 5, proc.stdout[-2000:]


@runs_kernels
def test_the_fused_kernels_agree_with_torch_and_the_report_has_every_figure():
    report = check.self_check(DEVICE)
    assert report["ok"] and report["failed"] is None, report["summary"]
    assert len(report["errors"]) == 2 * 2 * 4 + 2 * 2  # scan: 2 dtypes x 2 forms of a x (h, 3 grads); step: 2 modes x 2
    assert all(0 <= e <= check.TOLERANCE for e in report["errors"].values()), report["errors"]


def _wrong(real, which):
    """`real` with output `which` off by a relative 1e-3 (a subtle kernel bug), counting its calls."""

    def wrong(*args):
        out = real(*args)
        wrong.calls += 1
        if isinstance(out, tuple):
            return tuple(x * 1.001 if i == which else x for i, x in enumerate(out))
        return out * 1.001

    wrong.calls = 0
    return wrong


@runs_kernels
@pytest.mark.parametrize("kernel, which, part", [("forward", 0, ": h,"), ("backward", 2, ": grad h0,"), ("ssm_step", 0, ": y,")])
def test_a_wrong_kernel_is_caught_on_first_use_in_one_line_and_torch_is_used_after(monkeypatch, kernel, which, part):
    from kernels import triton_scan

    wrong = _wrong(getattr(triton_scan, kernel), which)
    monkeypatch.setattr(triton_scan, kernel, wrong)
    messages = []
    assert check.fused_allowed(DEVICE, log=messages.append) is False
    assert len(messages) == 1 and "\n" not in messages[0] and "torch backend" in messages[0], messages
    error = float(re.search(r"largest relative error ([0-9.e+-]+) in ", messages[0]).group(1))
    assert 5e-4 < error < 5e-3 and part in messages[0], messages[0]
    calls = wrong.calls
    assert check.fused_allowed(DEVICE, log=messages.append) is False  # remembered: no second check, no second line
    assert wrong.calls == calls and len(messages) == 1
    if ON_GPU:
        assert kernels.resolve_backend("auto", DEVICE) == "torch"


@runs_kernels
def test_a_kernel_that_raises_fails_the_check_instead_of_the_run(monkeypatch):
    from kernels import triton_scan

    def broken(*args):
        raise RuntimeError("PTX JIT compilation failed\nmore detail")

    monkeypatch.setattr(triton_scan, "forward", broken)
    report = check.self_check(DEVICE)
    assert not report["ok"] and report["summary"] == "a kernel failed: RuntimeError: PTX JIT compilation failed"


def test_auto_on_cuda_uses_triton_only_after_the_check_passes(monkeypatch):
    monkeypatch.setattr(sys.modules["kernels.scan"], "available", lambda name: True)
    cuda = torch.device("cuda", 0)
    for verdict, want in ((True, "triton"), (False, "torch")):
        monkeypatch.setattr(check, "_verdicts", {cuda: verdict})
        assert kernels.resolve_backend("auto", cuda) == want
        assert kernels.resolve_backend("triton", cuda) == "triton"  # asked for by name: no fallback


def test_auto_on_cuda_without_triton_says_so_once():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, kernels\n"
        "for _ in range(3):\n    assert kernels.resolve_backend('auto', torch.device('cuda')) == 'torch'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "triton is not installed" in lines[0] and "torch backend" in lines[0], proc.stderr


def test_version_check_prints_the_figures_of_every_device_or_says_there_is_none(capsys):
    from agents.cli import main

    main(["version", "--check"])
    out = capsys.readouterr().out.splitlines()
    if ON_GPU:
        devices = [line for line in out if line.startswith("cuda:")]
        assert len(devices) == torch.cuda.device_count() and all(": ok, largest relative error" in d for d in devices), out
    elif INTERPRET:
        assert out[2].startswith("cpu (triton interpreter): ok, largest relative error") and len(out) == 3 + 20, out
    else:
        assert out[1].startswith("no CUDA device visible") and len(out) == 2, out
