"""Evaluation of in-context reinforcement learning: does the agent get better within a trial?

A trial is several episodes of one sampled task (an `icrl/*` env); the agent's memory persists
across its episodes and is reset only at the trial start. The evaluation runs whole trials and
reports, with stable names (TensorBoard, `metrics.jsonl`) and a PNG:

- `icrl/return_ep01`, `icrl/return_ep02`, ...: mean return by episode index within a trial, the
  curve that rises when the agent learns in context (trials of more than 20 episodes log
  `icrl/return_tenth01` .. `icrl/return_tenth10`, the mean per episode over each tenth of the trial);
- `icrl/trial_return`, `icrl/trial_length`: mean return and length of a whole trial;
- `icrl/gain`: the in-context gain, mean return of the last quarter of the episodes (at least the
  last one) minus that of the first episode; `icrl/later_over_first`: mean return of episodes 3..n
  over that of episode 1;
- bandits (`icrl/bandit-*`): the regret of the agent, of Thompson sampling and of UCB1, all on the
  same trials (same seeds, hence the same arm means, which `info["arm_means"]` reports and the
  evaluation checks): `icrl/regret` = sum over pulls of (best arm mean - pulled arm mean),
  `icrl/regret_thompson`, `icrl/regret_ucb`, `icrl/return_thompson`, `icrl/return_ucb`, and
  `icrl/return_over_thompson` (the benchmark's target is >= 0.9).

A policy here is any object with `act(obs) -> actions` over a batch of env observations (numpy,
(N, ...)), which resets its own memory where `obs["is_first"]`, and optionally
`observe(action, reward)` to be told the reward that followed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


MAX_CURVE_SCALARS = 20  # trials with more episodes log their curve in tenths (the PNG has all of it)


class Policy(Protocol):
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------- bandit baselines
class ThompsonSampling:
    """Beta-Bernoulli Thompson sampling (uniform Beta(1, 1) priors), one posterior per env, reset at is_first."""

    def __init__(self, arms: int, num_envs: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.wins = np.zeros((num_envs, arms))
        self.losses = np.zeros((num_envs, arms))

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        first = np.asarray(obs["is_first"])
        self.wins[first] = 0
        self.losses[first] = 0
        return self.rng.beta(self.wins + 1, self.losses + 1).argmax(-1)

    def observe(self, action: np.ndarray, reward: np.ndarray) -> None:
        rows = np.arange(len(action))
        self.wins[rows, action] += reward
        self.losses[rows, action] += 1 - reward


class UCB:
    """UCB1 (Auer et al. 2002): pull every arm once, then argmax of mean + sqrt(2 ln t / n_a); reset at is_first."""

    def __init__(self, arms: int, num_envs: int):
        self.sums = np.zeros((num_envs, arms))
        self.counts = np.zeros((num_envs, arms))

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        first = np.asarray(obs["is_first"])
        self.sums[first] = 0
        self.counts[first] = 0
        t = self.counts.sum(-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = self.sums / self.counts + np.sqrt(2 * np.log(np.maximum(t, 1)) / self.counts)
        score[self.counts == 0] = np.inf  # untried arms first, lowest index first
        return score.argmax(-1)

    def observe(self, action: np.ndarray, reward: np.ndarray) -> None:
        rows = np.arange(len(action))
        self.sums[rows, action] += reward
        self.counts[rows, action] += 1


# ---------------------------------------------------------------------------------------------- running trials
@dataclass
class Trials:
    """What happened in `n` whole trials of up to T steps (every trial of an icrl env has the same
    length; other envs' episodes, run as one-episode trials, may not: shorter ones are padded).

    reward: (n, T) the reward of the action at each step (0 in the padding); episode: (n, T) its
    episode index within the trial (-1 in the padding); action: (n, T, ...) (-1 in the padding);
    arm_means: (n, k) for bandits, else None.
    """

    reward: np.ndarray
    episode: np.ndarray
    action: np.ndarray
    arm_means: np.ndarray | None = None
    final_info: list[dict] = field(default_factory=list)  # per trial, the FINAL_INFO keys its last step reported
    returns: np.ndarray = field(init=False)  # (n, episodes) return by episode index

    @property
    def length(self) -> np.ndarray:
        """(n,) steps of each trial."""
        return (self.episode >= 0).sum(-1)

    def __post_init__(self):
        episodes = int(self.episode.max()) + 1
        self.returns = np.zeros((len(self.reward), episodes))
        for e in range(episodes):
            self.returns[:, e] = np.where(self.episode == e, self.reward, 0.0).sum(-1)

    def regret(self) -> np.ndarray:
        """(n, T) per-pull pseudo-regret: best arm mean - pulled arm mean (bandits only)."""
        if self.arm_means is None:
            raise ValueError("regret needs info['arm_means'] from a bandit env; these trials have none")
        if (self.episode < 0).any():
            raise ValueError(f"regret needs trials of one length, got lengths {sorted(set(self.length.tolist()))}")
        pulled = np.take_along_axis(self.arm_means, self.action.astype(np.int64), axis=1)
        return self.arm_means.max(-1, keepdims=True) - pulled


# what the last step of a trial says of how it ended: a goal task's `success`, a cue task's `cue` and `cue_step`
FINAL_INFO = ("success", "cue", "cue_step")


def _final_info(info: dict, i: int) -> dict:
    """Env i's FINAL_INFO values in a vector env's `info` (those it reported at this step)."""
    return {k: np.asarray(info[k][i]).item() for k in FINAL_INFO if k in info and info.get(f"_{k}", np.ones(i + 1, bool))[i]}


def _info_rows(info: dict, key: str, n: int) -> np.ndarray | None:
    """info[key] of a vector env as an (n, ...) array, or None if no env reported it."""
    if key not in info:
        return None
    return np.asarray(info[key]).reshape(n, *np.asarray(info[key]).shape[1:])


def run_trials(policy: Policy, env_id: str, trials: int, seed: int = 0, num_envs: int = 8, **options) -> Trials:
    """Run `trials` whole trials of `env_id` with `policy` on `num_envs` vectorised envs.

    Env i is seeded seed + i, so two policies given the same arguments meet the same trials.
    """
    import envs as memwm_envs

    if trials < 1:
        raise ValueError(f"run_trials needs at least one trial, got {trials}")
    num_envs = min(num_envs, trials)
    per_env = math.ceil(trials / num_envs)
    vec = memwm_envs.make_vector(env_id, num_envs, seed=seed, asynchronous=False, **options)  # cheap envs: no processes
    try:
        obs, info = vec.reset(seed=[seed + i for i in range(num_envs)])
        done: list[list[dict]] = [[] for _ in range(num_envs)]
        current = [_new_trial() for _ in range(num_envs)]
        while min(len(d) for d in done) < per_env:
            action = np.asarray(policy.act(obs))
            last = np.asarray(obs["is_last"])
            episode = _info_rows(info, "episode", num_envs)
            means = _info_rows(info, "arm_means", num_envs)
            obs, reward, _, _, info = vec.step(action)
            if hasattr(policy, "observe"):
                policy.observe(action, np.asarray(reward, np.float64))
            for i in range(num_envs):
                if last[i]:  # the action after a trial's last observation goes nowhere
                    continue
                trial = current[i]
                trial["reward"].append(float(reward[i]))
                trial["episode"].append(int(episode[i]) if episode is not None else 0)
                trial["action"].append(action[i])
                if means is not None and trial["arm_means"] is None:
                    trial["arm_means"] = means[i]
                if obs["is_last"][i]:
                    trial["final_info"] = _final_info(info, i)
                    done[i].append(trial)
                    current[i] = _new_trial()
    finally:
        vec.close()
    chosen = [t for rank in range(per_env) for d in done for t in d[rank : rank + 1]][:trials]
    T = max(len(t["reward"]) for t in chosen)

    def padded(key: str, fill) -> np.ndarray:
        rows = [np.asarray(t[key]) for t in chosen]
        out = np.full((len(rows), T, *rows[0].shape[1:]), fill, dtype=np.result_type(rows[0].dtype, type(fill)))
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    arm_means = None if chosen[0]["arm_means"] is None else np.stack([t["arm_means"] for t in chosen])
    return Trials(
        reward=padded("reward", 0.0),
        episode=padded("episode", -1),
        action=padded("action", -1),
        arm_means=arm_means,
        final_info=[t["final_info"] for t in chosen],
    )


def _new_trial() -> dict:
    return {"reward": [], "episode": [], "action": [], "arm_means": None, "final_info": {}}


# ---------------------------------------------------------------------------------------------- metrics and plot
def in_context_metrics(trials: Trials) -> dict[str, float]:
    """Return by episode index, trial return, in-context gain and later/first ratio (names in the module doc)."""
    R = trials.returns.mean(0)  # (episodes,)
    n = len(R)
    k = max(1, n // 4)
    if n <= MAX_CURVE_SCALARS:
        out = {f"icrl/return_ep{e + 1:02d}": float(r) for e, r in enumerate(R)}
    else:  # long trials (bandits: 100 one-pull episodes): the mean per episode over each tenth of the trial
        out = {f"icrl/return_tenth{i + 1:02d}": float(part.mean()) for i, part in enumerate(np.array_split(R, 10))}
    out["icrl/trial_return"] = float(trials.reward.sum(-1).mean())
    out["icrl/trial_length"] = float(trials.length.mean())
    out["icrl/gain"] = float(R[-k:].mean() - R[0])
    if n >= 3:
        later, first = float(R[2:].mean()), float(R[0])
        out["icrl/later_over_first"] = later / first if first else (math.copysign(math.inf, later) if later else math.nan)
    return out


def bandit_metrics(agent: Trials, thompson: Trials, ucb: Trials) -> dict[str, float]:
    """Regrets and returns of the agent and the two baselines on the same trials."""
    for name, other in (("Thompson sampling", thompson), ("UCB", ucb)):
        if not np.allclose(agent.arm_means, other.arm_means):
            raise ValueError(
                f"the {name} trials have other arm means than the agent's: the env does not draw "
                "its trials from the seed alone, so the regrets would not be comparable"
            )
    out = {"icrl/regret": float(agent.regret().sum(-1).mean())}
    for name, t in (("thompson", thompson), ("ucb", ucb)):
        out[f"icrl/regret_{name}"] = float(t.regret().sum(-1).mean())
        out[f"icrl/return_{name}"] = float(t.reward.sum(-1).mean())
    out["icrl/return_over_thompson"] = float(agent.reward.sum(-1).mean() / max(out["icrl/return_thompson"], 1e-8))
    return out


def plot(path: str | Path, agent: Trials, title: str, baselines: dict[str, Trials] | None = None) -> Path:
    """Write a PNG: mean return by episode index (± standard error); for bandits, also the mean
    reward by pull and the cumulative regret of the agent and the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baselines = baselines or {}
    bandit = agent.arm_means is not None
    fig, axes = plt.subplots(1, 2 if bandit else 1, figsize=(11 if bandit else 6, 4), squeeze=False)
    ax = axes[0, 0]
    if agent.returns.shape[1] > 1:
        x, curves, label = np.arange(1, agent.returns.shape[1] + 1), {"agent": agent.returns}, "episode index in the trial"
        curves.update({k: v.returns for k, v in baselines.items()})
    else:  # a trial of one episode (bandits): the curve over the steps (pulls) of the trial
        x, curves, label = np.arange(1, agent.reward.shape[1] + 1), {"agent": agent.reward}, "pull in the trial"
        curves.update({k: v.reward for k, v in baselines.items()})
    for name, y in curves.items():
        mean, se = y.mean(0), y.std(0) / math.sqrt(len(y))
        ax.plot(x, mean, label=name, marker="o" if len(x) <= 20 else None)
        ax.fill_between(x, mean - se, mean + se, alpha=0.2)
    ax.set_xlabel(label)
    ax.set_ylabel("mean return" if len(x) <= 20 else "mean reward")
    ax.set_title(f"{title}: {len(agent.reward)} trials")
    ax.legend()
    if bandit:
        ax = axes[0, 1]
        for name, t in {"agent": agent, **baselines}.items():
            ax.plot(np.arange(1, t.reward.shape[1] + 1), t.regret().cumsum(-1).mean(0), label=name)
        ax.set_xlabel("pull in the trial")
        ax.set_ylabel("cumulative regret")
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate(
    policy: Policy,
    env_id: str,
    trials: int = 32,
    seed: int = 10_000,
    num_envs: int = 8,
    out_dir: str | Path | None = None,
    logger=None,
    step: int = 0,
    **options,
) -> tuple[dict[str, float], Path | None]:
    """The in-context evaluation of `policy` on `env_id`: the hook `memwm eval` and the training loops call.

    Runs the trials (and, on bandits, Thompson sampling and UCB on the same trials), logs the
    metrics through `logger` (agents.logger.Logger) at `step`, writes `icrl-<step>.png` to
    `out_dir` if given, and returns (metrics, the PNG's path or None).
    """
    agent = run_trials(policy, env_id, trials, seed, num_envs, **options)
    metrics = in_context_metrics(agent)
    baselines: dict[str, Trials] = {}
    if agent.arm_means is not None:
        import envs as memwm_envs

        arms = memwm_envs.make(env_id, **options).action_space.n
        n = min(num_envs, trials)
        baselines["thompson"] = run_trials(ThompsonSampling(arms, n, seed), env_id, trials, seed, num_envs, **options)
        baselines["ucb"] = run_trials(UCB(arms, n), env_id, trials, seed, num_envs, **options)
        metrics.update(bandit_metrics(agent, baselines["thompson"], baselines["ucb"]))
    if logger is not None:
        logger.scalars(metrics)
        logger.write(step)
    path = None if out_dir is None else plot(Path(out_dir) / f"icrl-{step:09d}.png", agent, env_id, baselines)
    return metrics, path


class DreamerPolicy:
    """A Dreamer agent (agents.dreamer.Dreamer) as a `Policy`: one world-model step per env step, the
    world model's state kept across the episodes of a trial and reset where obs["is_first"].
    Samples from the actor by default (explore=True): in context, exploring is part of the policy."""

    def __init__(self, agent, device, explore: bool = True):
        self.agent, self.device, self.explore = agent, device, explore
        self.state = self.prev_action = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from agents.common import obs_to_torch

        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device)
        if self.state is None:
            self.state = self.agent.wm.initial_state(len(is_first), self.device)
            self.prev_action = torch.zeros(len(is_first), self.agent.codec.dim, device=self.device)
        self.prev_action, self.state = self.agent.policy(
            self.state, obs_to_torch(obs, self.device), self.prev_action, is_first, explore=self.explore
        )
        return self.agent.codec.to_env(self.prev_action.cpu().numpy())
