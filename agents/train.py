"""`memwm train`: Dreamer acting in vectorised environments with replay, as an agent of the run loop
(agents/loop.py), and `train(config)`, which builds the run's agent (Dreamer or recurrent PPO) and runs it.

DreamerAgent reads top to bottom:
    act     -> one `WorldModel.step` per env step (random actions during prefill); each env's steps
               go into replay, which stores an episode as it finishes, with the state acted from
    update  -> `train_ratio` replayed steps per env step, once prefill is done and replay holds a window;
               a window starts from the state the actor held at its first step (replay context)
    evaluate, pictures -> episodes with the policy's mode; videos of them and of open-loop imagination
A NaN or infinite loss stops the run with the name of the loss term; the checkpoints on disk are
the last good ones. Running again on the same run folder resumes from the newest checkpoint.
"""

from __future__ import annotations

import sys
from typing import Any
from collections.abc import Mapping

import numpy as np
import torch

from agents import distributed
from agents.common import FLAGS, keep_freed_memory, obs_to_torch, pick_device, seed_everything, training_seed
from agents.config import TrainConfig, Typed, fit_action_space, load_yaml, resolve_sources, save_yaml
from agents.env_workers import parallel_envs
from agents.evaluate import episode_success, evaluate_dreamer, has_success, run_episodes
from agents.loop import Acted, Loop, LoopConfig
from agents.replay import Replay
from agents.runs import build_dreamer, identity
from agents.imagination import write_imagination
from world_models.state import State


def to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """A replay batch of (B, L, ...) arrays as tensors; flags as bool."""
    out = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
    for k in FLAGS:
        if k in out:
            out[k] = out[k].bool()
    return out


class DreamerAgent:
    """A Dreamer learner, its vectorised environments and its replay, behind the loop's Agent protocol."""

    def __init__(self, config: TrainConfig, device: torch.device, run_dir, sources: Mapping[str, str] | None = None):
        """sources: where each value of `config` came from (agents.config.resolve_sources); the agent's `config` and
        `sources` are fitted to the environment's action space (agents.config.fit_action_space)."""
        self.device = device
        # unknown ids and options fail here, before any file is written
        self.env = parallel_envs(
            config.env,
            config.num_envs,
            seed=training_seed(config.seed, distributed.rank_seed(0)),
            asynchronous=config.async_envs,
            **config.env_options,
        )
        spaces = (self.env.single_observation_space, self.env.single_action_space)
        try:
            self.config, self.sources = fit_action_space(config, spaces[1], sources)
        except ValueError:
            self.env.close()
            raise
        config = self.config
        self.learner, (self.obs_space, _) = build_dreamer(config, device, spaces)
        self.module = self.learner
        self.codec = self.learner.codec
        self.rng = np.random.default_rng(distributed.rank_seed(config.seed))  # the prefill's random actions
        self.run_dir = run_dir
        self.replay_dir = distributed.shard(run_dir / "replay")
        # train as you act: store the state each step was acted from (a Transformer's key/value cache is too big
        # to store per step: its windows start from a reset, and replay_whole_episodes keeps an episode whole)
        self.context = config.replay_context and self.learner.wm.backbone_name != "transformer"
        self.replay = None
        self._saved_replay_rng = None
        self._saved_replay_episodes = None  # the replay's episode count at the checkpoint resumed from

    # ------------------------------------------------------------------ the protocol
    def begin(self, counters: Mapping[str, int]) -> None:
        """Open the replay (as the resumed checkpoint saw it) and reset the environments on this step's training seeds."""
        cfg, step = self.config, counters["step"]
        if not distributed.is_main():  # ranks > 0 draw their own actions (a resume restored rank 0's)
            self.rng = np.random.default_rng(distributed.rank_seed(cfg.seed) + step)
        resume_at = self._saved_replay_episodes if distributed.is_main() else None
        self.replay = Replay(cfg.replay_capacity, self.replay_dir, seed=distributed.rank_seed(cfg.seed) + step, resume_at=resume_at)
        if self._saved_replay_rng is not None and distributed.is_main():
            self.replay.rng.bit_generator.state = self._saved_replay_rng
        self.restart(counters)

    def restart(self, counters: Mapping[str, int]) -> None:
        """New episodes in every environment on this step's training seeds; the unfinished ones are dropped."""
        cfg, n, step = self.config, self.config.num_envs, counters["step"]
        self.obs, _ = self.env.reset(seed=training_seed(cfg.seed, distributed.rank_seed(0) + step))
        self.state = self.learner.wm.initial_state(n, self.device)
        self.prev_action = torch.zeros(n, self.codec.dim, device=self.device)
        self.reward = np.zeros(n, np.float32)  # the reward that arrived with `obs`
        self.info = _InfoView({})  # the info that came with `obs`

    def act(self, counters: Mapping[str, int]) -> Acted:
        """One step of every environment: the world model resets the rows whose is_first is set."""
        n, obs = self.config.num_envs, self.obs
        flags = {k: np.asarray(obs[k], bool) for k in FLAGS}
        carry = {}  # name -> (N, ...) the state each env acts from, before it sees `obs`
        if self.context:
            held = State(self.state.h, self.state.z, self.prev_action, self.state.mem).to_arrays()
            carry = {"carry/" + k: v.cpu().numpy() for k, v in held.items()}
        action, self.state = self.learner.policy(
            self.state, obs_to_torch(obs, self.device), self.prev_action, torch.as_tensor(flags["is_first"], device=self.device)
        )
        if counters["step"] < self.config.prefill:
            action = torch.as_tensor(self.codec.random(n, self.rng), device=self.device)
        action_np = action.cpu().numpy()
        finished = []
        for i in range(n):
            step = {k: np.asarray(obs[k][i]) for k in self.obs_space.spaces}
            step.update(action=action_np[i], reward=np.float32(self.reward[i]), **{k: flags[k][i] for k in FLAGS})
            step.update({k: v[i] for k, v in carry.items()})
            episode = self.replay.add_step(step, worker=i)
            if episode is not None:
                finished.append(self._episode_scalars(episode, self.info.row(i)))
        self.obs, reward, _, _, info = self.env.step(self.codec.to_env(action_np))
        self.reward = np.asarray(reward, np.float32)
        self.info = _InfoView(info)
        self.prev_action = action
        return Acted(n, finished)

    def update(self, counters: Mapping[str, int]) -> tuple[int, dict[str, float] | None]:
        """The updates owed: `train_ratio` replayed steps per env step since prefill (all ranks together)."""
        cfg = self.config
        trained = counters["step"] - cfg.prefill
        if trained <= 0 or not distributed.all_true(len(self.replay) >= cfg.seq_len):
            return 0, None
        owed = int(trained * cfg.train_ratio / (cfg.batch_size * cfg.seq_len)) + 1 - counters["updates"]
        metrics = None
        for _ in range(owed):
            # with the replay context, `context/...` is each window's start state, which the world-model loss reads
            replayed = self.replay.sample(
                cfg.batch_size,
                cfg.seq_len,
                cfg.replay_from_starts,
                cfg.replay_event_share,
                cfg.replay_whole_episodes,
                self.context,
                terminal_share=cfg.replay_terminal_share,
            )
            batch = to_torch(replayed, self.device)
            metrics = self.learner.update(batch)
        if metrics is None:
            return 0, None
        return owed, {
            **{f"train/{k}": v for k, v in metrics.items()},
            "replay/steps": len(self.replay),
            "replay/episodes": self.replay.num_episodes,
            "replay/skipped_files": self.replay.skipped_files,
        }

    def evaluate(self, episodes: int, seed: int, step: int, logger) -> dict[str, float]:
        cfg = self.config
        scalars, _ = evaluate_dreamer(self.learner, cfg.env, cfg.env_options, episodes, seed, self.device, self.run_dir / "icrl", step)
        return scalars

    @torch.no_grad()
    def pictures(self, seed: int, step: int, logger) -> None:
        """Videos of evaluation episodes (image observations), and open-loop imagination from replayed context:
        its figure over time for every run, and its video for image observations; on memory tasks, the learning
        chain's scalars (agents/chain.py)."""
        cfg = self.config
        if "image" in self.obs_space.spaces:
            result = run_episodes(
                self.learner, cfg.env, cfg.env_options, min(4, cfg.eval_episodes), seed=seed, device=self.device, record=4
            )
            if result.frames:
                logger.video("eval/policy", result.video(), step)
        if len(self.replay) >= cfg.seq_len:
            drawn = self.replay.rng.bit_generator.state
            replayed = self.replay.sample(4, cfg.seq_len)
            self.replay.rng.bit_generator.state = drawn  # a picture draws nothing from training's batches
            L = replayed["action"].shape[1]
            context = max(1, min(16, L // 2))  # observe the first C steps, imagine the rest with the replayed actions
            write_imagination(self.learner.wm, to_torch(replayed, self.device), context, L - context, logger, step, sample=True)
        from agents import chain  # the learning chain of a memory task: where learning breaks, as chain/* scalars

        scalars = chain.measure(self.learner, cfg.env, cfg.env_options, seed, self.device)
        if scalars:
            logger.scalars(scalars)
            logger.write(step)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "agent": self.learner.state_dict(),
            "optimisers": self.learner.optimiser_state(),
            "action_rng": self.rng.bit_generator.state,
            "reward_unit": float(self.learner.reward_unit),
        }
        if self.replay is not None:
            state["replay_rng"] = self.replay.rng.bit_generator.state
            state["replay_episodes"] = self.replay.num_episodes
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["agent"])
        self.learner.load_optimiser_state(state["optimisers"])
        self.learner.reward_unit.fill_(state.get("reward_unit", 0.0))  # 0: no reward seen yet
        self.rng.bit_generator.state = state["action_rng"]
        self._saved_replay_rng = state.get("replay_rng")
        self._saved_replay_episodes = state.get("replay_episodes")

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ helpers
    def _episode_scalars(self, episode: dict[str, np.ndarray], info) -> dict[str, float]:
        total = float(episode["reward"].sum())
        scalars = {"return": total, "length": float(len(episode["reward"]))}
        if has_success(self.config.env):
            scalars["success"] = episode_success(self.config.env, info, total)
        return scalars


class _InfoView:
    """Row i of a vectorised env's info dict as a plain dict (gymnasium keeps `_key` masks beside each key)."""

    def __init__(self, info: dict):
        self.info = info

    def row(self, i: int) -> dict:
        return {
            k: v[i]
            for k, v in self.info.items()
            if not k.startswith("_") and isinstance(v, np.ndarray) and len(v) > i and self.info.get("_" + k, np.ones(i + 1, bool))[i]
        }


# ---------------------------------------------------------------------- the run
def loop_config(config: TrainConfig, **overrides) -> LoopConfig:
    """The loop's cadences of a TrainConfig."""
    return LoopConfig(
        steps=config.steps,
        checkpoint_every=config.checkpoint_every,
        log_every=config.log_every,
        eval_every=config.eval_every,
        eval_episodes=config.eval_episodes,
        video_every=config.video_every,
        minutes=config.minutes,
        seed=config.seed,
        tensorboard=config.tensorboard,
        exact_resume=config.exact_resume,
        desc=config.run_dir.name,
        **overrides,
    )


def build(given: TrainConfig, typed: Typed = None) -> Loop:
    """The run of `given` ready to go: its config resolved and saved, its agent built, a checkpoint resumed.
    typed: the fields of `given` that win (agents.config.resolve_sources)."""
    run_dir = given.run_dir
    saved = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").exists() else None
    config, sources = resolve_sources(given, saved, typed)
    device = distributed.init(pick_device(config.device))  # torchrun: join the process group, this rank's device
    if device.type == "cpu":
        keep_freed_memory()
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    if config.agent == "ppo":
        from agents import ppo_agent

        distributed.require_one_process("--agent ppo")
        agent = ppo_agent.PPOAgent(config, device)
        loop = Loop(agent, run_dir, loop_config(config, evaluate_first=False), ppo_agent.identity(config))
    else:
        agent = DreamerAgent(config, device, run_dir, sources)
        config, sources = agent.config, agent.sources
        loop = Loop(agent, run_dir, loop_config(config), identity(config))
    found = loop.resume()
    if found is not None:
        print(f"memwm: resuming {run_dir} from {found.name} at step {loop.counters['step']}", file=sys.stderr)
    if distributed.is_main():
        save_yaml(config, run_dir / "config.yaml", sources)
    return loop


def train(config: TrainConfig, typed: Typed = None) -> dict[str, float]:
    """Train (or resume) the run described by `config`; return the final evaluation's scalars.
    typed: the fields of `config` that win over task, preset and saved values (agents.config.resolve_sources)."""
    return build(config, typed).run()
