"""sheeprl 0.8.4's DreamerV3 update, timed: the reference of memwm's throughput comparison.

Runs with the python of a separate environment that holds sheeprl (never memwm's own venv):

    python3.11 -m venv /tmp/sheeprl-venv
    /tmp/sheeprl-venv/bin/pip install torch==2.13.0        # the CPU build first, then sheeprl keeps it
    /tmp/sheeprl-venv/bin/pip install sheeprl==0.8.4 tyro
    /tmp/sheeprl-venv/bin/python benchmarks/sheeprl_dreamer.py --steps 5 --threads 1

It uses sheeprl as it is: the config composed from its own hydra files (`exp=dreamer_v3`, sizes matched
to memwm's preset `small` by default, see `Args`), the models from `sheeprl.algos.dreamer_v3.agent.build_agent`, the
optimisers instantiated from its config, and one update is exactly what its training loop does per
gradient step: the target-critic EMA, then `sheeprl.algos.dreamer_v3.dreamer_v3.train` (world model,
imagination of 15 steps, actor, critic). The batch is random: (L, B) = (64, 16) 64x64x3 images (uint8
values as float, as sheeprl's buffer hands them over), one-hot Discrete(3) actions, rewards, is_first.
Metrics are off (`metric.log_level=0`), which spares sheeprl its entropy metrics.

`--serve` is the worker of `python -m benchmarks.throughput --sheeprl PYTHON`: it prints one JSON line
(parameter counts, versions, the FLOPs of one update), then for every `step` line on stdin runs one update and prints its seconds.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version

import gymnasium as gym
import hydra
import numpy as np
import torch
import tyro
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch.distributions import Distribution

from sheeprl.algos.dreamer_v3.agent import build_agent
from sheeprl.algos.dreamer_v3.dreamer_v3 import train
from sheeprl.algos.dreamer_v3.utils import Moments
from sheeprl.utils.metric import MetricAggregator
from sheeprl.utils.timer import timer
from sheeprl.utils.utils import dotdict


@dataclass
class Args:
    batch_size: int = 16
    seq_len: int = 64
    actions: int = 3
    """size of the Discrete action space"""
    steps: int = 5
    """timed updates (after `warmup`)"""
    warmup: int = 1
    threads: int = 1
    seed: int = 0
    precision: str = "32-true"
    """Fabric precision: sheeprl's default `32-true`, or `bf16-mixed` (autocast to bfloat16)"""
    # sizes in memwm's terms (world_models.WorldModelConfig; the defaults are its preset `small`), given to sheeprl
    # as: GRU width `deter` (recurrent_state_size), MLPs of `hidden` units (dense_units, and the hidden layer of the
    # prior and posterior nets) with `mlp_layers` hidden layers, CNN depth `cnn_depth` (cnn_channels_multiplier,
    # 4 stages to 4x4), `stoch` categoricals of `classes` classes; sheeprl's defaults otherwise (255 two-hot bins)
    deter: int = 256
    hidden: int = 256
    mlp_layers: int = 2
    cnn_depth: int = 16
    stoch: int = 32
    classes: int = 16
    serve: bool = False
    """worker mode for benchmarks.throughput: a JSON header, then one update per `step` line on stdin"""


def size_overrides(args: Args) -> list[str]:
    """sheeprl's config keys for memwm's sizes (see `Args`)."""
    return [
        f"algo.dense_units={args.hidden}",
        f"algo.mlp_layers={args.mlp_layers}",
        f"algo.world_model.encoder.cnn_channels_multiplier={args.cnn_depth}",
        f"algo.world_model.recurrent_model.recurrent_state_size={args.deter}",
        f"algo.world_model.transition_model.hidden_size={args.hidden}",
        f"algo.world_model.representation_model.hidden_size={args.hidden}",
        f"algo.world_model.stochastic_size={args.stoch}",
        f"algo.world_model.discrete_size={args.classes}",
    ]


def compose_config(args: Args) -> dotdict:
    """sheeprl's own config (`exp=dreamer_v3`) with memwm's sizes, batch (B, L), 64x64 RGB, CPU, `args.precision`."""
    overrides = [
        "exp=dreamer_v3",
        "env=dummy",
        "env.screen_size=64",
        "env.num_envs=1",
        "algo.cnn_keys.encoder=[rgb]",
        "algo.mlp_keys.encoder=[]",
        f"algo.per_rank_batch_size={args.batch_size}",
        f"algo.per_rank_sequence_length={args.seq_len}",
        "fabric.accelerator=cpu",
        f"fabric.precision={args.precision}",
        "fabric.callbacks=[]",
        "metric.log_level=0",
        f"num_threads={args.threads}",
        f"seed={args.seed}",
        *size_overrides(args),
    ]
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))


def random_batch(args: Args) -> dict[str, torch.Tensor]:
    """A batch laid out as sheeprl's `sample_batches` yields it: (L, B, ...) float tensors."""
    g = torch.Generator().manual_seed(args.seed)
    L, B = args.seq_len, args.batch_size
    action = torch.randint(0, args.actions, (L, B), generator=g)
    return {
        "rgb": torch.randint(0, 256, (L, B, 3, 64, 64), dtype=torch.uint8, generator=g).float(),  # (L, B, C, H, W)
        "actions": torch.nn.functional.one_hot(action, args.actions).float(),  # (L, B, A)
        "rewards": (torch.rand(L, B, 1, generator=g) < 0.05).float(),  # (L, B, 1)
        "terminated": torch.zeros(L, B, 1),
        "truncated": torch.zeros(L, B, 1),
        "is_first": (torch.rand(L, B, 1, generator=g) < 0.01).float(),
    }


class SheeprlDreamer:
    """sheeprl's DreamerV3 agent, optimisers and return moments, built as its `main` builds them."""

    def __init__(self, args: Args):
        torch.set_num_threads(args.threads)
        cfg = self.cfg = compose_config(args)
        # what sheeprl's `run_algorithm` sets before its `main`
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
        Distribution.set_default_validate_args(cfg.distribution.validate_args)
        MetricAggregator.disabled = True
        timer.disabled = True
        self.fabric = hydra.utils.instantiate(cfg.fabric, _convert_="all")
        self.fabric.seed_everything(cfg.seed)
        obs_space = gym.spaces.Dict({"rgb": gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)})
        self.actions_dim = (args.actions,)
        self.world_model, self.actor, self.critic, self.target_critic, _ = build_agent(self.fabric, self.actions_dim, False, cfg, obs_space)
        algo = cfg.algo
        opts = [
            hydra.utils.instantiate(algo[name].optimizer, params=module.parameters(), _convert_="all")
            for name, module in (("world_model", self.world_model), ("actor", self.actor), ("critic", self.critic))
        ]
        self.world_optimizer, self.actor_optimizer, self.critic_optimizer = self.fabric.setup_optimizers(*opts)
        m = algo.actor.moments
        self.moments = Moments(m.decay, m.max, m.percentile.low, m.percentile.high)
        self.batch = random_batch(args)
        self.gradient_steps = 0

    def num_params(self) -> dict[str, int]:
        count = lambda module: sum(p.numel() for p in module.parameters())
        wm, actor, critic = count(self.world_model), count(self.actor), count(self.critic)
        return {
            "wm_params": wm,
            "actor_params": actor,
            "critic_params": critic,
            "trainable_params": wm + actor + critic,
            "total_params": wm + actor + critic + count(self.target_critic),
        }

    def update(self) -> float:
        """One gradient step as sheeprl's training loop runs it (target-critic EMA, then `train`); its seconds."""
        cfg = self.cfg
        data = {k: v.clone() for k, v in self.batch.items()}  # `train` writes is_first[0] in place
        start = time.perf_counter()
        if self.gradient_steps % cfg.algo.critic.per_rank_target_network_update_freq == 0:
            tau = 1 if self.gradient_steps == 0 else cfg.algo.critic.tau
            for cp, tcp in zip(self.critic.module.parameters(), self.target_critic.parameters()):
                tcp.data.copy_(tau * cp.data + (1 - tau) * tcp.data)
        train(
            self.fabric,
            self.world_model,
            self.actor,
            self.critic,
            self.target_critic,
            self.world_optimizer,
            self.actor_optimizer,
            self.critic_optimizer,
            data,
            None,
            cfg,
            False,
            self.actions_dim,
            self.moments,
        )
        self.gradient_steps += 1
        return time.perf_counter() - start


def versions() -> dict[str, str]:
    return {"sheeprl": version("sheeprl"), "torch": torch.__version__, "lightning": version("lightning"), "python": sys.version.split()[0]}


def counted_flops(update) -> int:
    """The FLOPs of the matrix products and convolutions of one call of `update` (torch's FlopCounterMode, as
    benchmarks.throughput counts memwm's: a script of this venv cannot import memwm's)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        update()
    return int(counter.get_total_flops())


def main(args: Args) -> None:
    agent = SheeprlDreamer(args)
    header = {
        **agent.num_params(),
        "versions": versions(),
        "threads": torch.get_num_threads(),
        "batch": [args.batch_size, args.seq_len],
        "precision": args.precision,
        "config": size_overrides(args),
    }
    for _ in range(args.warmup):
        agent.update()
    header["flops_per_update"] = counted_flops(agent.update)
    if args.serve:
        print(json.dumps(header), flush=True)
        for line in sys.stdin:
            if line.strip() != "step":
                raise ValueError(f"sheeprl_dreamer --serve: expected the line 'step', got {line.strip()!r}")
            print(json.dumps({"seconds": agent.update()}), flush=True)
        return
    times = [agent.update() for _ in range(args.steps)]
    median = statistics.median(times)
    print(json.dumps({**header, "times": times, "seconds_per_update": median, "updates_per_s": 1 / median}, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
