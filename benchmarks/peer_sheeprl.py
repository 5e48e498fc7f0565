"""sheeprl's DreamerV3 on a memwm task for a wall-clock budget: the worker of `benchmarks.peers`.

Runs with the python of its own virtual environment (never memwm's: sheeprl pins its own versions), with the
repository on PYTHONPATH for memwm's `envs` and `benchmarks.peer_eval`:

    make peers-venv          # .venv-sheeprl: torch (the Makefile's TORCH_SPEC) first, then sheeprl 0.8.4
    PYTHONPATH=. .venv-sheeprl/bin/python -m benchmarks.peer_sheeprl --env memory/recall-k8 --seed 0 --minutes 15 \
        --eval-seed 1000000 --eval-episodes 32 --out /tmp/sheeprl.jsonl

It runs sheeprl as its command line does (`sheeprl exp=dreamer_v3 algo=dreamer_v3_XS env=gym env.id=...`): the
config composed from sheeprl's own hydra files, its `run_algorithm`, its DreamerV3 `main` (acting, replay buffer,
update schedule, losses) untouched. The overrides are what a user sets for a task: the smallest preset (XS), the
observation's key (`state` for a vector, `rgb` for an image, encoder and decoder), memwm's number of environments,
batch and window for the task, and the replay ratio that replays as many steps per env step as memwm does
(`--train-ratio` / (batch x window) gradient steps per policy step); one thread, the CPU, synchronous environments,
no checkpoints, videos, final test or model registry.

Two hooks wrap sheeprl's own functions without changing them: `build_agent`, to keep the player (the networks that
act), and `train` (one gradient step), to read the clock after each: every --eval-minutes of the budget the player
is scored on the held-out seeds (benchmarks.peer_eval; the time counts in the budget, as memwm's evaluations count
in its), and at the budget the final policy is scored and the run ends. A gymnasium wrapper around the env that
sheeprl makes (`env.wrapper`) logs the training episodes. The JSON lines written to --out are those of
benchmarks.peer_sb3.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the memwm/*-v0 gymnasium ids)
from benchmarks.peer_eval import score, summary
from envs.gymnasium_ids import gym_id

PRESET = "dreamer_v3_XS"  # sheeprl's smallest DreamerV3


class BudgetSpent(Exception):
    """Raised from the `train` hook once the final policy is scored: it ends sheeprl's loop."""


class EpisodeLog(gym.Wrapper):
    """Counts the steps of every environment sheeprl makes (one process: synchronous environments) and emits
    each finished episode's return with the run's minutes and steps."""

    steps = 0
    emit = None
    start = 0.0

    def reset(self, **kwargs):
        self.total = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        EpisodeLog.steps += 1
        self.total += float(reward)
        if (terminated or truncated) and EpisodeLog.emit is not None:
            minutes = (time.time() - EpisodeLog.start) / 60
            EpisodeLog.emit({"minutes": round(minutes, 3), "step": EpisodeLog.steps, "episode/return": self.total})
        return obs, reward, terminated, truncated, info


def logged_env(id: str, render_mode: str | None = None) -> gym.Env:
    """sheeprl's `env.wrapper` target: the memwm task `id` (a gymnasium id) with its episodes logged. sheeprl asks
    for `rgb_array` frames only to record videos, which are off: the env is made without a render mode."""
    return EpisodeLog(gym.make(id))


class SheeprlPolicy:
    """sheeprl's player as a benchmarks.peer_eval policy: greedy actions, one environment, its own recurrent state.
    The player acts in the training loop too: `__enter__`/`__exit__` keep and give back its training state."""

    def __init__(self, player, fabric, key: str, image: bool, continuous: bool):
        self.player, self.fabric, self.key, self.image, self.continuous = player, fabric, key, image, continuous

    def __enter__(self):
        p = self.player
        self.kept = (p.num_envs, p.actions, p.recurrent_state, p.stochastic_state)
        p.num_envs = 1
        return self

    def __exit__(self, *exc):
        p = self.player
        p.num_envs, p.actions, p.recurrent_state, p.stochastic_state = self.kept

    def reset(self) -> None:
        self.player.init_states()

    def act(self, obs: np.ndarray):
        from sheeprl.algos.dreamer_v3.utils import prepare_obs

        x = np.ascontiguousarray(obs.transpose(2, 0, 1)) if self.image else obs  # sheeprl's images are (C, H, W)
        torch_obs = prepare_obs(self.fabric, {self.key: x[None]}, cnn_keys=[self.key] if self.image else [])
        with torch.inference_mode():
            actions = self.player.get_actions(torch_obs, greedy=True)
        if self.continuous:
            return torch.stack(actions, -1).reshape(-1).cpu().numpy()
        picks = [int(a.argmax(-1).reshape(-1)[0]) for a in actions]
        return picks[0] if len(picks) == 1 else np.array(picks)


def overrides(args: argparse.Namespace, image: bool) -> list[str]:
    """sheeprl's command-line overrides for the task (see the module's docstring)."""
    key = "rgb" if image else "state"
    cnn, mlp = (f"[{key}]", "[]") if image else ("[]", f"[{key}]")
    replay_ratio = args.train_ratio / (args.batch_size * args.seq_len)
    return [
        "exp=dreamer_v3",
        f"algo={PRESET}",
        "env=gym",
        f"env.id={gym_id(args.env)}",
        "env.wrapper._target_=benchmarks.peer_sheeprl.logged_env",
        f"env.num_envs={args.num_envs}",
        "env.sync_env=True",
        "env.capture_video=False",
        f"algo.cnn_keys.encoder={cnn}",
        f"algo.cnn_keys.decoder={cnn}",
        f"algo.mlp_keys.encoder={mlp}",
        f"algo.mlp_keys.decoder={mlp}",
        f"algo.per_rank_batch_size={args.batch_size}",
        f"algo.per_rank_sequence_length={args.seq_len}",
        f"algo.replay_ratio={replay_ratio}",
        "algo.total_steps=1000000000",
        "algo.run_test=False",
        "buffer.size=1000000",
        "buffer.memmap=False",
        "buffer.checkpoint=False",
        "checkpoint.every=0",
        "checkpoint.save_last=False",
        "model_manager.disabled=True",
        "metric.log_level=0",
        "fabric.accelerator=cpu",
        "fabric.callbacks=[]",
        "num_threads=1",
        f"seed={args.seed}",
        f"root_dir={args.log_dir}",
        "run_name=run",
        "log_root=.",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True, help="memwm task id, e.g. memory/recall-k8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--eval-seed", type=int, required=True, help="first held-out episode seed")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--eval-minutes", type=float, default=1.0, help="minutes of the budget between evaluations")
    p.add_argument("--out", required=True, help="JSON lines file to append to")
    p.add_argument("--num-envs", type=int, default=4, help="environments acting at once (memwm's for the task)")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per gradient step (memwm's for the task)")
    p.add_argument("--seq-len", type=int, default=32, help="steps per sequence (memwm's window for the task)")
    p.add_argument("--train-ratio", type=float, default=32.0, help="replayed steps per env step (memwm's)")
    p.add_argument("--log-dir", default="logs/sheeprl", help="where sheeprl writes its config and logs")
    args = p.parse_args()
    torch.set_num_threads(1)

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import sheeprl.algos.dreamer_v3.dreamer_v3 as dv3
    from sheeprl.cli import check_configs, run_algorithm
    from sheeprl.utils.utils import dotdict

    probe = gym.make(gym_id(args.env))
    image, continuous = len(probe.observation_space.shape) == 3, isinstance(probe.action_space, gym.spaces.Box)
    probe.close()
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides(args, image))
    cfg = dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    check_configs(cfg)

    out = open(args.out, "a")

    def emit(row: dict) -> None:
        out.write(json.dumps(row) + "\n")
        out.flush()

    start = time.time()
    EpisodeLog.emit, EpisodeLog.start = emit, start
    kept: dict = {}
    build_agent, train = dv3.build_agent, dv3.train

    def build_agent_hook(fabric, *a, **kw):
        built = build_agent(fabric, *a, **kw)
        kept["policy"] = SheeprlPolicy(built[-1], fabric, "rgb" if image else "state", image, continuous)
        return built

    def evaluate() -> dict:
        with kept["policy"] as policy:
            return summary(score(policy, args.env, args.eval_episodes, args.eval_seed))

    next_eval, updates = [0.0], [0]

    def train_hook(*a, **kw):
        train(*a, **kw)
        updates[0] += 1
        minutes = (time.time() - start) / 60
        if minutes >= next_eval[0]:
            s = evaluate()
            emit(
                {
                    "minutes": round(minutes, 3),
                    "step": EpisodeLog.steps,
                    "eval/return": s["return"],
                    "eval/success": s["success"],
                    "updates": updates[0],
                }
            )
            next_eval[0] += args.eval_minutes
        if (time.time() - start) / 60 >= args.minutes:
            final = evaluate()
            emit({"final": {**final, "step": EpisodeLog.steps, "updates": updates[0], "minutes": round((time.time() - start) / 60, 3)}})
            raise BudgetSpent

    dv3.build_agent, dv3.train = build_agent_hook, train_hook
    try:
        run_algorithm(cfg)
    except BudgetSpent:
        pass
    finally:
        out.close()


if __name__ == "__main__":
    # run as the imported module, whose EpisodeLog is the one sheeprl's `env.wrapper` target finds
    from benchmarks.peer_sheeprl import main as imported_main

    imported_main()
