"""Settings every test process shares: headless MuJoCo and a deterministic, small torch."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402


if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)  # the xdist workers already fill the cores


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
