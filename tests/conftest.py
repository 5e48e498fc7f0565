"""Settings every test process shares: headless MuJoCo and a deterministic, small torch."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Every test starts from seed 0 on one torch thread: tiny models run fastest on one, the xdist
    workers already fill the cores, and a test that sets more (a run's --threads) does not leak it."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
