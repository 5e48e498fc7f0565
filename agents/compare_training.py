"""Offline world-model training for `memwm compare`: Adam on the world-model loss over a stream of
batches, as an agent of the one run loop (agents/loop.py), so that an interrupted backbone resumes
where it stopped."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from agents.loop import Acted


class OfflineWorldModel:
    """Adam on `wm.loss` over a stream of batches, behind the run loop's Agent protocol (agents/loop.py):
    `act` takes the next batch, `update` trains on it. Besides the weights and the optimiser its state
    holds the training curve (a row every `log_every` steps and at the last), the time of every step and
    the machine's 1-minute load average at the logged steps (timings on a shared machine mean little
    without it); a resume skips the batches already trained on, so that the batch order stays the same."""

    def __init__(self, wm, batches, steps: int, lr: float, log_every: int = 10):
        self.wm, self.module, self.batches = wm, wm, batches
        self.steps, self.log_every = steps, log_every
        self.opt = torch.optim.Adam(wm.parameters(), lr=lr, eps=1e-8)
        self.curve: list[dict] = []
        self.times: list[float] = []
        self.load = [os.getloadavg()[0]]
        self.taken = 0  # batches taken from the stream
        self.batch = None

    def begin(self, counters) -> None:
        self.wm.train()

    def act(self, counters) -> Acted:
        self.batch = next(self.batches)
        self.taken += 1
        return Acted(1)

    def update(self, counters) -> tuple[int, dict[str, float]]:
        step = counters["step"] - 1  # the batch `act` took
        t0 = time.perf_counter()
        loss, metrics = self.wm.loss(self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.wm.parameters(), 100.0)  # DreamerV3 clips world-model gradients
        self.opt.step()
        if loss.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t0)
        scalars = {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items() if k.startswith("loss/") or k == "kl"}}
        if step % self.log_every == 0 or step == self.steps - 1:
            self.load.append(os.getloadavg()[0])
            self.curve.append(
                {
                    "step": step,
                    **{k: v for k, v in scalars.items() if k == "loss"},
                    "load": self.load[-1],
                    **{k: v for k, v in scalars.items() if k != "loss"},
                }
            )
        return 1, {f"train/{k}": v for k, v in scalars.items()}

    def evaluate(self, episodes: int, seed: int, step: int, logger) -> dict[str, float]:
        """Nothing: the probes run on held-out episodes after training (world_models/probes.py)."""
        return {}

    def pictures(self, seed: int, step: int, logger) -> None:
        """Nothing: the imagination GIF is drawn after training."""

    def state_dict(self) -> dict:
        return {
            "model": self.wm.state_dict(),
            "optimiser": self.opt.state_dict(),
            "curve": self.curve,
            "times": self.times,
            "load": self.load,
            "taken": self.taken,
        }

    def load_state_dict(self, state: dict) -> None:
        self.wm.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimiser"])
        self.curve, self.times, self.load = state["curve"], state["times"], state["load"]
        for _ in range(state["taken"] - self.taken):
            next(self.batches)
        self.taken = state["taken"]

    def close(self) -> None:
        self.wm.eval()


def train_world_model(
    wm, batches, steps: int, lr: float, desc: str, folder: Path, log_every: int = 10, save_every: int = 25, settings: dict | None = None
) -> dict:
    """Train `wm` on `steps` batches through the run loop in `folder`; returns the training curve, the median
    step time, the wall time of this call and the median load average of the machine while it ran.

    Checkpoints go to folder/checkpoints every `save_every` steps; one made with the same `settings` is
    continued from (one with other settings is removed: the training starts again).
    """
    from agents import checkpoint
    from agents.loop import Loop, LoopConfig

    identity = {"agent": "world-model", **(settings or {})}
    agent = OfflineWorldModel(wm, batches, steps, lr, log_every)
    config = LoopConfig(
        steps=steps,
        checkpoint_every=save_every,
        log_every=log_every,
        tensorboard=False,
        desc=desc,
        leave=False,
        data_parallel=False,
        unit="batches",
    )
    loop = Loop(agent, folder, config, identity)  # holds the folder's lock from here: the removal below is ours to make
    found = checkpoint.load(folder / "checkpoints", map_location=wm.device)
    if found is not None and found[0]["identity"] != identity:
        shutil.rmtree(folder / "checkpoints")
    if loop.resume() is not None:
        print(f"compare: {desc}: resuming at step {loop.counters['step']} from {folder / 'checkpoints'}")
    started = time.perf_counter()
    loop.run()
    times = agent.times
    warm = times[min(3, len(times) - 1) :] if times else [float("nan")]
    return {
        "curve": agent.curve,
        "train_step_ms": 1000.0 * float(np.median(warm)),
        "train_wall_s": time.perf_counter() - started,
        "load_median": float(np.median(agent.load)),
    }


__all__ = ["train_world_model"]
