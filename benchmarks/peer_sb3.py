"""sb3-contrib's RecurrentPPO on a memwm task for a wall-clock budget: the worker of `benchmarks.peers`.

Runs with the python of its own virtual environment (never memwm's), with the repository on PYTHONPATH for
memwm's `envs` and `benchmarks.peer_eval`:

    make peers-venv          # .venv-sb3: torch (the Makefile's TORCH_SPEC) first, then sb3-contrib
    PYTHONPATH=. .venv-sb3/bin/python -m benchmarks.peer_sb3 --env memory/recall-k8 --seed 0 --minutes 15 \
        --eval-seed 1000000 --eval-episodes 32 --out /tmp/sb3.jsonl

It uses RecurrentPPO as a user of the RL Zoo would: the Zoo's tuned settings for its memory task CartPoleNoVel-v1
(MlpLstmPolicy) on vector tasks, and its Atari settings (CnnLstmPolicy, without the frame stack: the LSTM is
the memory) on image tasks, with constant rates where the Zoo decays them linearly over a known number of
steps (a wall-clock budget has no known end). The environment is `gymnasium.make("memwm/<name>-v0")` (envs.gymnasium_ids.gym_make).

It writes JSON lines to --out: each finished training episode ({"minutes", "step", "episode/return"}), an
evaluation every --eval-minutes of the budget on the held-out seeds ({"minutes", "step", "eval/return",
"eval/success"}; the time it takes counts, as memwm's evaluations count in its budget), and at the end
{"final": ...}: the held-out evaluation of the last policy, by benchmarks.peer_eval.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import envs  # noqa: F401  (registers the memwm/*-v0 gymnasium ids)
from benchmarks.peer_eval import score, summary
from envs.gymnasium_ids import gym_make

# The RL Zoo's hyperparams/ppo_lstm.yml: CartPoleNoVel-v1 (vectors) and atari (images), rates made constant.
VECTOR = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=1e-3, clip_range=0.2)
IMAGE = dict(n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4, clip_range=0.1, vf_coef=0.5, ent_coef=0.01)
N_ENVS = 8  # both settings


class Sb3Policy:
    """A RecurrentPPO model as a benchmarks.peer_eval policy: its deterministic action, its LSTM state per episode."""

    def __init__(self, model):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.state, self.start = None, np.ones((1,), dtype=bool)

    def act(self, obs: np.ndarray):
        action, self.state = self.model.predict(obs[None], state=self.state, episode_start=self.start, deterministic=True)
        self.start = np.zeros((1,), dtype=bool)
        return action[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True, help="memwm task id, e.g. memory/recall-k8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--eval-seed", type=int, required=True, help="first held-out episode seed")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--eval-minutes", type=float, default=1.0, help="minutes of the budget between evaluations")
    p.add_argument("--out", required=True, help="JSON lines file to append to")
    args = p.parse_args()
    torch.set_num_threads(1)

    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    start = time.time()
    out = open(args.out, "a")

    def emit(row: dict) -> None:
        out.write(json.dumps(row) + "\n")
        out.flush()

    venv = make_vec_env(lambda: gym_make(args.env), n_envs=N_ENVS, seed=args.seed)
    image = len(venv.observation_space.shape) == 3
    model = RecurrentPPO("CnnLstmPolicy" if image else "MlpLstmPolicy", venv, seed=args.seed, device="cpu", **(IMAGE if image else VECTOR))

    def evaluate() -> dict:
        return summary(score(Sb3Policy(model), args.env, args.eval_episodes, args.eval_seed))

    class Budget(BaseCallback):
        """Log finished episodes, evaluate on the held-out seeds every eval_minutes, stop at the budget."""

        def __init__(self):
            super().__init__()
            self.next_eval = 0.0

        def _on_step(self) -> bool:
            minutes = (time.time() - start) / 60
            for info in self.locals["infos"]:
                if "episode" in info:
                    emit({"minutes": round(minutes, 3), "step": self.num_timesteps, "episode/return": float(info["episode"]["r"])})
            if minutes >= self.next_eval:
                s = evaluate()
                emit({"minutes": round(minutes, 3), "step": self.num_timesteps, "eval/return": s["return"], "eval/success": s["success"]})
                self.next_eval += args.eval_minutes
            return minutes < args.minutes

    model.learn(total_timesteps=10**12, callback=Budget())
    emit({"final": {**evaluate(), "step": int(model.num_timesteps), "minutes": round((time.time() - start) / 60, 3)}})
    out.close()


if __name__ == "__main__":
    main()
