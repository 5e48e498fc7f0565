"""The training loop of `memwm train`: act in vectorised environments, store episodes, train on replay, evaluate, log, checkpoint.

It reads top to bottom:
    config  -> resolve defaults, the run folder, a resume's checkpoint
    build   -> environments, world model, Dreamer, replay, logger
    loop    -> one `WorldModel.step` per env step (random actions during prefill), episodes into
               replay as they finish, `train_ratio` replayed steps per env step, then every N
               steps: scalars, evaluation (policy mode), videos, checkpoint
A NaN or infinite loss stops the run with the name of the loss term; the checkpoints on disk are
the last good ones. Running again on the same run folder resumes from the newest checkpoint.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from agents import checkpoint, distributed
from agents.common import FLAGS, obs_to_torch, pick_device, seed_everything
from agents.config import TrainConfig, load_yaml, resolve, save_yaml
from agents.evaluate import episode_success, has_success, run_episodes
from agents.logger import Logger
from agents.replay import Replay
from agents.runs import build_agent, identity
from world_models.imagine import decode_frames, open_loop
from world_models.video import imagination_video


def to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """A replay batch of (B, L, ...) arrays as tensors; flags as bool."""
    out = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
    for k in FLAGS:
        if k in out:
            out[k] = out[k].bool()
    return out


class Trainer:
    """Holds the run's pieces; `run()` is the loop."""

    def __init__(self, given: TrainConfig):
        run_dir = given.run_dir
        saved = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").exists() else None
        self.config = config = resolve(given, saved)
        self.run_dir = run_dir
        self.device = distributed.init(pick_device(config.device))  # torchrun: join the process group, this rank's device
        if config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)

        # unknown ids and options fail here, before any file is written
        self.env = distributed.parallel_envs(config.env, config.num_envs, seed=distributed.rank_seed(config.seed),
                                             asynchronous=config.async_envs, **config.env_options)
        spaces = (self.env.single_observation_space, self.env.single_action_space)
        self.agent, (self.obs_space, _) = build_agent(config, self.device, spaces)
        self.codec = self.agent.codec
        self.counters = {"step": 0, "updates": 0, "episodes": 0}
        self.rng = np.random.default_rng(distributed.rank_seed(config.seed))

        found = checkpoint.load(run_dir / "checkpoints", map_location=self.device)
        if found is not None:
            payload, path = found
            checkpoint.check_identity(payload["identity"], identity(config), path)
            self.agent.load_state_dict(payload["agent"])
            self.agent.load_optimiser_state(payload["optimisers"])
            self.counters = dict(payload["counters"])
            checkpoint.set_rng_state(payload["rng"])
            self.rng.bit_generator.state = payload["action_rng"]
            print(f"memwm: resuming {run_dir} from {path.name} at step {self.counters['step']}", file=sys.stderr)
        distributed.broadcast_state(self.agent)  # data parallel: every rank starts from rank 0's weights
        if not distributed.is_main():  # ranks > 0 draw their own random numbers (a resume restored rank 0's)
            seed_everything(distributed.rank_seed(config.seed) + self.counters["step"])
            self.rng = np.random.default_rng(distributed.rank_seed(config.seed) + self.counters["step"])
        if distributed.is_main():
            save_yaml(config, run_dir / "config.yaml")
        self.replay = Replay(config.replay_capacity, distributed.shard(run_dir / "replay"),
                             seed=distributed.rank_seed(config.seed) + self.counters["step"])

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, float]:
        from tqdm import tqdm

        cfg, agent, codec, device = self.config, self.agent, self.codec, self.device
        n = cfg.num_envs
        bar = tqdm(total=cfg.steps, initial=min(self.counters["step"], cfg.steps), unit="step", dynamic_ncols=True,
                   mininterval=1.0, file=sys.stderr, desc=self.run_dir.name, disable=not distributed.is_main())
        self.logger = logger = distributed.RankLogger(lambda: Logger(self.run_dir, cfg.tensorboard, bar))  # rank 0 writes
        obs, _ = self.env.reset(seed=distributed.rank_seed(cfg.seed) + self.counters["step"])
        state = agent.wm.initial_state(n, device)
        prev_action = torch.zeros(n, codec.dim, device=device)
        reward = np.zeros(n, np.float32)  # the reward that arrived with `obs`
        returns, lengths = np.zeros(n), np.zeros(n, np.int64)
        timer = {"time": time.time(), "step": self.counters["step"], "updates": self.counters["updates"]}
        marks = {name: self.counters["step"] for name in ("log", "eval", "video", "checkpoint")}
        info = _InfoView({})  # the info that came with `obs`
        summary: dict[str, float] = {}
        deadline = time.time() + 60 * cfg.minutes if cfg.minutes else float("inf")
        try:
            if self.counters["step"] == 0 and cfg.eval_every:
                summary = self._evaluate()  # the untrained policy: the start of the learning curve
            while self.counters["step"] < cfg.steps and time.time() < deadline:
                # act: one world-model step per env step; the model resets the rows whose is_first is set
                flags = {k: np.asarray(obs[k], bool) for k in FLAGS}
                action, state = agent.policy(state, obs_to_torch(obs, device), prev_action,
                                             torch.as_tensor(flags["is_first"], device=device))
                if self.counters["step"] < cfg.prefill:
                    action = torch.as_tensor(codec.random(n, self.rng), device=device)
                action_np = action.cpu().numpy()
                for i in range(n):
                    step = {k: np.asarray(obs[k][i]) for k in self.obs_space.spaces}
                    step.update(action=action_np[i], reward=np.float32(reward[i]), **{k: flags[k][i] for k in FLAGS})
                    episode = self.replay.add_step(step, worker=i)
                    if episode is not None:
                        self._log_episode(episode, info.row(i))
                obs, reward, terminated, truncated, raw_info = self.env.step(codec.to_env(action_np))
                reward = np.asarray(reward, np.float32)
                info = _InfoView(raw_info)
                prev_action = action
                self.counters["step"] += n
                bar.update(n)

                # train: `train_ratio` replayed steps per env step, once prefill is done
                self._train_owed(logger)

                step = self.counters["step"]
                if step - marks["log"] >= cfg.log_every:
                    marks["log"] = step
                    now = time.time()
                    elapsed = max(now - timer["time"], 1e-9)
                    logger.scalar("perf/env_steps_per_s", (step - timer["step"]) / elapsed)
                    logger.scalar("perf/train_steps_per_s", (self.counters["updates"] - timer["updates"]) / elapsed)
                    logger.scalar("replay/steps", len(self.replay))
                    logger.scalar("replay/episodes", self.replay.num_episodes)
                    timer = {"time": now, "step": step, "updates": self.counters["updates"]}
                    logger.sync(step)  # every rank's scalars, averaged
                if cfg.eval_every and step - marks["eval"] >= cfg.eval_every and step < cfg.steps and time.time() < deadline:
                    marks["eval"] = step
                    summary = self._evaluate()
                if cfg.video_every > 0 and step - marks["video"] >= cfg.video_every and step < cfg.steps:
                    marks["video"] = step
                    self._videos()
                if step - marks["checkpoint"] >= cfg.checkpoint_every:
                    marks["checkpoint"] = step
                    self.save()
            if self.counters["updates"] > 0 or not summary:
                summary = self._evaluate()
                if cfg.video_every >= 0:
                    self._videos()
            logger.sync(self.counters["step"])
            self.save()
        finally:
            bar.close()
            logger.close()
            self.env.close()
        return summary

    def _train_owed(self, logger: Logger) -> None:
        cfg = self.config
        trained = self.counters["step"] - cfg.prefill
        if trained <= 0 or not distributed.all_true(len(self.replay) >= cfg.seq_len):  # all ranks update together
            return
        owed = int(trained * cfg.train_ratio / (cfg.batch_size * cfg.seq_len)) + 1
        metrics = None
        while self.counters["updates"] < owed:
            batch = to_torch(self.replay.sample(cfg.batch_size, cfg.seq_len, cfg.replay_from_starts, cfg.replay_event_share,
                                                cfg.replay_whole_episodes), self.device)
            metrics = self.agent.update(batch)
            self.counters["updates"] += 1
        if metrics is not None and self.counters["step"] - getattr(self, "_last_train_log", -cfg.log_every) >= cfg.log_every:
            self._last_train_log = self.counters["step"]
            logger.scalars(metrics, prefix="train/")
            logger.scalar("train/updates", self.counters["updates"])

    def _log_episode(self, episode: dict[str, np.ndarray], info) -> None:
        total = float(episode["reward"].sum())
        self.counters["episodes"] += 1
        self.logger.scalar("episode/return", total)
        self.logger.scalar("episode/length", len(episode["reward"]))
        if has_success(self.config.env):
            self.logger.scalar("episode/success", episode_success(info, total))
        self.logger.write(self.counters["step"])

    def _evaluate(self) -> dict[str, float]:
        if not distributed.is_main():
            return {}
        cfg = self.config
        result = run_episodes(self.agent, cfg.env, cfg.env_options, cfg.eval_episodes, seed=cfg.seed + 1_000_000, device=self.device)
        summary = {"eval/return": result.mean_return, "eval/length": float(np.mean(result.lengths))}
        if has_success(cfg.env):
            summary["eval/success"] = result.success_rate
        if cfg.env.startswith("icrl/"):  # return by episode index, gain, bandit regret, PNG
            from agents import icrl

            icrl.evaluate(icrl.DreamerPolicy(self.agent, self.device), cfg.env, cfg.eval_episodes, cfg.seed + 1_000_000,
                          out_dir=self.run_dir / "icrl", logger=self.logger, step=self.counters["step"], **cfg.env_options)
        self.logger.scalars(summary)
        self.logger.write(self.counters["step"])
        return summary

    @torch.no_grad()
    def _videos(self) -> None:
        """Videos of evaluation episodes and of open-loop imagination from replayed context."""
        if "image" not in self.obs_space.spaces or not distributed.is_main():
            return
        step, cfg = self.counters["step"], self.config
        result = run_episodes(self.agent, cfg.env, cfg.env_options, min(4, cfg.eval_episodes), seed=cfg.seed + 2_000_000,
                              device=self.device, record=4)
        if result.frames:
            self.logger.video("eval/policy", result.video(), step)
        if len(self.replay) >= cfg.seq_len:
            replayed = self.replay.sample(4, cfg.seq_len)
            L = replayed["action"].shape[1]
            context = max(1, min(16, L // 2))  # observe the first C steps, imagine the rest with the replayed actions
            roll = open_loop(self.agent.wm, to_torch(replayed, self.device), context, L - context, sample=True)
            model = decode_frames(self.agent.wm, roll.features).cpu().numpy()  # (B, L, 64, 64, 3) float in [0, 1]
            self.logger.video("imagine/open_loop", imagination_video(replayed["image"], model, context), step)

    def save(self) -> None:
        distributed.check_in_sync(self.agent)  # every rank: the weights must not have drifted apart
        if not distributed.is_main():
            return
        checkpoint.save(self.run_dir / "checkpoints", self.counters["step"], {
            "agent": self.agent.state_dict(), "optimisers": self.agent.optimiser_state(), "counters": dict(self.counters),
            "identity": identity(self.config), "action_rng": self.rng.bit_generator.state,
        })


class _InfoView:
    """Row i of a vectorised env's info dict as a plain dict (gymnasium keeps `_key` masks beside each key)."""

    def __init__(self, info: dict):
        self.info = info

    def row(self, i: int) -> dict:
        return {k: v[i] for k, v in self.info.items()
                if not k.startswith("_") and isinstance(v, np.ndarray) and len(v) > i and self.info.get("_" + k, np.ones(i + 1, bool))[i]}


# ---------------------------------------------------------------------- the run
def train(config: TrainConfig) -> dict[str, float]:
    """Train (or resume) the run described by `config`; return the final evaluation's scalars."""
    saved = config.run_dir / "config.yaml"
    if resolve(config, load_yaml(saved) if saved.exists() else None).agent == "ppo":
        distributed.require_one_process("--agent ppo")
        return train_ppo(config)
    return Trainer(config).run()


def train_ppo(config: TrainConfig) -> dict[str, float]:
    """`memwm train --agent ppo`: recurrent PPO on `config.env` with `config.backbone` as memory.

    config: an agents.config.TrainConfig (its env, backbone, wm sizes, steps, run, seed, device,
    num_envs, eval/log/checkpoint intervals, and `ppo`). Writes the run folder as Dreamer runs do
    (config.yaml, metrics.jsonl, TensorBoard, checkpoints/, icrl/ plots) and resumes from it.
    Returns the final evaluation's scalars.
    """
    from tqdm import tqdm

    import envs as memwm_envs
    from agents.ppo import build, evaluate, identity

    run_dir = config.run_dir
    saved = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").exists() else None
    config = resolve(config, saved)
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    vec = memwm_envs.make_vector(config.env, config.num_envs, seed=config.seed, asynchronous=config.async_envs,
                                 **config.env_options)
    ppo = build(config, device, (vec.single_observation_space, vec.single_action_space))
    counters = {"step": 0, "updates": 0, "trials": 0}
    found = checkpoint.load(run_dir / "checkpoints", map_location=device)
    if found is not None:
        payload, path = found
        trained_by = payload["identity"].get("agent", "dreamer")
        if trained_by != "ppo":
            raise checkpoint.CheckpointMismatch(f"run {run_dir} was trained with agent={trained_by!r}, but this command asks for "
                                                "agent='ppo'; use another --run or the same agent")
        checkpoint.check_identity(payload["identity"], identity(config), path)
        ppo.load_state_dict(payload["agent"])
        counters = dict(payload["counters"])
        checkpoint.set_rng_state(payload["rng"])
        print(f"memwm: resuming {run_dir} from {path.name} at step {counters['step']}", file=sys.stderr)
    save_yaml(config, run_dir / "config.yaml")

    def save():
        checkpoint.save(run_dir / "checkpoints", counters["step"], {
            "agent": ppo.state_dict(), "counters": dict(counters), "identity": identity(config)})

    bar = tqdm(total=config.steps, initial=min(counters["step"], config.steps), unit="step", dynamic_ncols=True,
               mininterval=1.0, file=sys.stderr, desc=run_dir.name)
    logger = Logger(run_dir, config.tensorboard, bar)
    marks = dict.fromkeys(("log", "eval", "checkpoint"), counters["step"])
    timer = (time.time(), counters["step"])
    eval_seed = config.seed + 1_000_000
    summary: dict[str, float] = {}
    try:
        while counters["step"] < config.steps:
            # 1. collect a chunk of every env's trial, carrying the memory; 2. GAE (inside collect)
            rollout, finished = ppo.collect(vec, seed=config.seed + counters["step"])
            counters["step"] += rollout.mask.numel()
            bar.update(rollout.mask.numel())
            # 3. update; the learning rate decays linearly to zero if anneal_lr (PPO's Atari setting)
            lr = config.ppo.lr * max(0.0, 1 - counters["step"] / config.steps) if config.ppo.anneal_lr else None
            metrics = ppo.update(rollout, lr)
            counters["updates"] += 1
            # 4. log
            step = counters["step"]
            if finished["return"]:
                counters["trials"] += len(finished["return"])
                logger.scalar("episode/return", np.mean(finished["return"]))
                logger.scalar("episode/length", np.mean(finished["length"]))
            if step - marks["log"] >= config.log_every:
                marks["log"] = step
                now = time.time()
                logger.scalars(metrics)
                logger.scalar("perf/env_steps_per_s", (step - timer[1]) / max(now - timer[0], 1e-9))
                timer = (now, step)
            logger.write(step)
            if config.eval_every and step - marks["eval"] >= config.eval_every and step < config.steps:
                marks["eval"] = step
                summary = evaluate(ppo, config, config.eval_episodes, eval_seed, run_dir / "icrl", logger, step)
            if step - marks["checkpoint"] >= config.checkpoint_every:
                marks["checkpoint"] = step
                save()
        summary = evaluate(ppo, config, config.eval_episodes, eval_seed, run_dir / "icrl", logger, counters["step"])
        save()
    finally:
        bar.close()
        logger.close()
        vec.close()
    return summary
