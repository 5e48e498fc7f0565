"""The learning chain of a memory task, measured during training: where a Dreamer agent's learning breaks.

On tasks whose memory dependency is known (the stream tasks memory/recall-k*, memory/count-*, and
the tasks whose spec declares a cue), `measure` plays a few fresh episodes, observes them with the
world model and scores each link of the chain (world_models/chain.py). The run loop logs them at
the picture cadence (`DreamerAgent.pictures`), to TensorBoard and metrics.jsonl:

    chain/z_seen                    a linear probe's held-out accuracy at reading the symbol the observation
                                    shows from the posterior latent z_t, at the steps that show it (the
                                    representation: the posterior sees only observation t, so this is all
                                    it can hold); chain/seen_majority is the majority rate there
    chain/h_probe                   the same for the needed symbol from the backbone's output h_t, at the
                                    steps that need it (the memory); chain/probe_majority its majority rate
    chain/h_probe_k                 memory/recall-k<K>: the probe of h_t for the symbol K steps before
                                    h_t's newest input (observation t - 1 - K), which the reward arriving
                                    at step t judges: held by the backbone, whatever the heads read;
                                    chain/probe_k_majority its majority rate
    chain/reward_sign               how often the reward head's prediction is on the reward's side (below),
                                    on the scored steps; chain/reward_sign_majority its chance
    chain/imagined_rank             from the posterior state at each query step, imagine every action as
                                    the first (then the actor's mode) for the learner's horizon: how often
                                    the right action has the highest return; chain/imagined_rank_chance = 1/A
    chain/actor_right               how often the actor's mode at the query steps' states is the right action
                                    (the policy: imagination may rank it first and the actor still not take it);
                                    chain/actor_right_chance = 1/A
    chain/actor_entropy             the actor's entropy at the query steps' states (nats)
    chain/right_below_floor         how often the actor's probability of the right action, before its unimix
                                    floor, is below the floor's share (unimix / A): states where the softmax
                                    gradient (REINFORCE's) can hardly move it there (DreamerConfig.all_actions_temperature)

The needed symbol at step t is, on a stream task, its right answer `answers[t]` at the query steps
(the scripted policy's action); on a cue task, the cue at every step after it was first seen. The
seen symbol is, on a stream task, observation t's symbol `stream[t]`; on a cue task, the cue at the
steps that show it (`cue_visible` in the info where the env gives it, else its first step `cue_step`).
A cue task has one label per episode, so its probes fit on more episodes (CUE_EPISODES). A
query step is one whose action is scored: a nonzero reward comes with the next observation, or the
episode ends there (the decision step of a cue task, whose wrong choice may pay 0), and its right
action is the scripted policy's. Episodes take the scripted action with the share that makes a
right and a wrong answer equally likely (a random one otherwise), so the outcomes are both there;
a task whose scripted policy can be told to choose wrong (`scripted_action(wrong)`, minigrid/memory-*:
walk there, look at the cue, go to one end) follows it to the right or the wrong end by a coin per
episode. chain/reward_sign scores the reward head on the scored steps: which side of the midpoint
between the lowest and the highest reward there it predicts (the sign, where rewards are +-r).
h_probe_k reads only steps whose previous action was random, since a right action would give the
symbol away. Everything is drawn from `seed`: no training random stream.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import envs
from envs.collect import play_episode
from envs.memory.recall import Recall
from envs.memory.stream import StreamTask
from world_models.imagine import action_vectors
from world_models.chain import Score, first_action_returns, probe_score, rank_score, sign_score
from world_models.model import OBS_KEYS
from world_models.state import State

EPISODES = 16  # half fit the probes, half score them
CUE_EPISODES = 64  # on a cue task, where each episode is one label
STARTS = 64  # at most this many query states are imagined from (each once per action)


class LastInfo(gym.Wrapper):
    """Keeps the info of the last reset or step (the episode's `cue` and `cue_step` at its end), and whether
    the cue was in view at each observation since the reset (`visible`, from `cue_visible`; None where the env
    does not say)."""

    def reset(self, **kwargs):
        obs, self.info = self.env.reset(**kwargs)
        self.visible = [self.info.get("cue_visible")]
        return obs, self.info

    def step(self, action):
        obs, reward, terminated, truncated, self.info = self.env.step(action)
        self.visible.append(self.info.get("cue_visible"))
        return obs, reward, terminated, truncated, self.info


def tracks(env_id: str) -> bool:
    """Whether the chain is measured on `env_id`: a stream task, or a task whose spec declares a cue."""
    try:
        return issubclass(envs.spec(env_id).cls(), StreamTask) or envs.spec(env_id).cue
    except (ValueError, ImportError, AttributeError):
        return False


@dataclass
class Labelled:
    """Episodes (envs.collect.play_episode's (T, ...) arrays) with per-step labels, (T,) int, -1 where none.

    need: the symbol the step needs remembered; seen: the symbol observation t shows; answer: the right action
    at a query step; back: memory/recall-k<K> only, observation t - 1 - K's symbol where action t - 1 was random.
    """

    episodes: list[dict[str, np.ndarray]]
    need: list[np.ndarray]
    seen: list[np.ndarray]
    answer: list[np.ndarray]
    back: list[np.ndarray] | None
    num_actions: int | None  # Discrete action spaces; None otherwise


def balanced_share(num_actions: int | None) -> float:
    """The share of scripted actions that makes a right answer as likely as a wrong one among A actions
    chosen otherwise uniformly: s + (1 - s) / A = 1/2."""
    if not num_actions or num_actions <= 2:
        return 0.0
    return (num_actions / 2 - 1) / (num_actions - 1)


def play_labelled(env_id: str, options: dict, count: int, seed: int) -> Labelled:
    """`count` episodes of `env_id` on seeds seed, seed + 1, ..., with their labels (see the module doc)."""
    env = LastInfo(envs.make(env_id, **options))
    try:
        inner = env.unwrapped
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        num_actions = int(env.action_space.n) if discrete else None
        try:
            scripted = envs.scripted_policy(env)
        except ValueError:  # only some tasks have a scripted policy
            scripted = None
        share = balanced_share(num_actions) if scripted is not None else 0.0
        chooses = scripted is not None and "wrong" in inspect.signature(inner.scripted_action).parameters
        coin = np.random.default_rng(seed)
        env.action_space.seed(seed)
        out = Labelled([], [], [], [], [] if isinstance(inner, Recall) else None, num_actions)
        for i in range(count):
            right, chose = [], []
            wrong = bool(coin.random() < 0.5)  # a task whose scripted policy can choose wrong: this episode's choice

            def act(obs):
                action = scripted(obs) if scripted is not None else None
                right.append(-1 if action is None else int(action))
                if chooses:  # the scripted way there, to the right or the wrong end
                    chose.append(True)
                    return inner.scripted_action(True) if wrong else action  # the right way is already planned
                chose.append(action is not None and coin.random() < share)
                return action if chose[-1] else env.action_space.sample()

            episode = play_episode(env, act, seed + i)
            T = len(episode["reward"])
            # (T,): the step's action is scored: a reward comes with the next observation, or the episode ends there
            scored_next = np.append((episode["reward"][1:] != 0) | episode["is_terminal"][1:].astype(bool), False)
            answer = np.where(scored_next & (np.append(right, -1) >= 0), np.append(right, -1), -1)
            need, seen = np.full(T, -1, np.int64), np.full(T, -1, np.int64)
            if isinstance(inner, StreamTask):
                need[inner.first_query : inner.length] = inner.answers[inner.first_query :]
                seen[:] = inner.stream[:T]
            elif int(env.info.get("cue_step", -1)) >= 0:
                cue, first = int(env.info["cue"]), int(env.info["cue_step"])
                need[first + 1 : T - 1] = cue
                shown = np.asarray(env.visible[:T], bool) if None not in env.visible else np.arange(T) == first
                seen[shown] = cue
            out.episodes.append(episode)
            out.need.append(need)
            out.seen.append(seen)
            out.answer.append(answer.astype(np.int64))
            if out.back is not None:
                back = np.full(T, -1, np.int64)
                t = np.arange(inner.k + 1, T)
                back[t] = np.where(np.asarray(chose)[t - 1], -1, inner.stream[t - 1 - inner.k])
                out.back.append(back)
    finally:
        env.close()
    return out


def pad_episodes(arrays: list[np.ndarray], T: int, fill) -> np.ndarray:
    """(T_i, ...) arrays -> (N, T, ...): each padded at the end with `fill`, or its last row when fill is None."""
    out = []
    for a in arrays:
        pad = np.repeat(a[-1:], T - len(a), 0) if fill is None else np.full((T - len(a), *a.shape[1:]), fill, a.dtype)
        out.append(np.concatenate([a, pad]))
    return np.stack(out)


@torch.no_grad()
def measure(
    learner, env_id: str, options: dict, seed: int, device: torch.device, episodes: int | None = None, starts: int = STARTS
) -> dict[str, float]:
    """The chain's scalars (module doc) for a Dreamer learner on `episodes` fresh episodes from `seed` (None:
    EPISODES, CUE_EPISODES on a cue task); {} on a task the chain does not track. Deterministic given the seed
    and the weights (modes, no sampling)."""
    if not tracks(env_id):
        return {}
    if episodes is None:
        episodes = EPISODES if issubclass(envs.spec(env_id).cls(), StreamTask) else CUE_EPISODES
    data = play_labelled(env_id, options, episodes, seed)
    wm = learner.wm
    T = max(len(ep["reward"]) for ep in data.episodes)
    # the world model steps through all episodes at once, as when acting; a short episode's padding
    # repeats its last row and carries no label
    obs = {
        k: torch.as_tensor(pad_episodes([ep[k] for ep in data.episodes], T, None), device=device) for k in OBS_KEYS if k in data.episodes[0]
    }
    action = torch.as_tensor(
        pad_episodes([action_vectors(ep["action"], learner.codec.space) for ep in data.episodes], T, 0.0), device=device
    )
    reward = torch.as_tensor(pad_episodes([ep["reward"] for ep in data.episodes], T, 0.0), device=device)  # (N, T)
    need, seen, answer = (torch.as_tensor(pad_episodes(x, T, -1)) for x in (data.need, data.seen, data.answer))  # (N, T)
    N = len(data.episodes)
    state = wm.initial_state(N, device)
    states, feats = [], []
    with learner.autocast():
        for t in range(T):
            prev = action[:, t - 1] if t else torch.zeros_like(action[:, 0])
            state, feat = wm.step(state, prev, {k: v[:, t] for k, v in obs.items()}, torch.full((N,), t == 0, device=device), sample=False)
            states.append(state)
            feats.append(feat)
        feat = torch.stack(feats, 1).float()  # (N, T, F)
        h, z = feat[..., : wm.h_dim], feat[..., wm.h_dim :]
        scores = {"z_seen": probe_score(z, seen), "h_probe": probe_score(h, need)}
        if data.back is not None:
            scores["h_probe_k"] = probe_score(h, torch.as_tensor(pad_episodes(data.back, T, -1)))
        terminal = torch.as_tensor(pad_episodes([ep["is_terminal"].astype(bool) for ep in data.episodes], T, False), device=device)
        scores["reward_sign"] = sign_score(wm.reward(feat, action).float(), reward, reward.ne(0) | terminal)
        rows = (answer >= 0).nonzero()  # (M, 2): (episode, step) of the query steps
        if len(rows) > starts:  # evenly spread over the episodes and steps
            rows = rows[torch.linspace(0, len(rows) - 1, starts).long()]
        if len(rows) and data.num_actions:
            start = State.cat([states[int(t)][int(n) : int(n) + 1] for n, t in rows])
            cfg = learner.config
            returns = first_action_returns(
                wm,
                start,
                lambda f: learner.actor(f).mode(),
                data.num_actions,
                cfg.horizon,
                cfg.gamma,
                value=lambda f: learner.critic(f).mean,
            )
            scores["imagined_rank"] = rank_score(returns, answer[rows[:, 0], rows[:, 1]])
            policy = learner.actor(feat[rows[:, 0].to(device), rows[:, 1].to(device)])
            scores["actor_right"] = rank_score(policy.parts[0].probs.float().cpu(), answer[rows[:, 0], rows[:, 1]])
            scores["actor_entropy"] = Score(float(policy.entropy().float().mean()), float("nan"), len(rows))
            below = below_floor(policy, answer[rows[:, 0], rows[:, 1]], getattr(learner.config, "unimix", 0.0))
            scores["right_below_floor"] = Score(float(below.double().mean()), float("nan"), len(rows))
    return chain_scalars(scores)


def below_floor(policy, action: torch.Tensor, unimix: float) -> torch.Tensor:
    """(M,) bool: whether the actor's probability of `action` (M,) int, before its unimix floor, is below the floor's
    share unimix / A (where the softmax gradient can hardly move it there); policy: an ActionDist over M states."""
    base = torch.softmax(policy.parts[0].base.float(), -1).cpu()  # (M, A)
    return base.gather(1, action.long().cpu()[:, None])[:, 0] < unimix / base.shape[-1]


def chain_scalars(scores: dict[str, Score]) -> dict[str, float]:
    """The scores under their stable names (module doc); a link with nothing to score is left out."""
    chance = {
        "z_seen": "seen_majority",
        "h_probe": "probe_majority",
        "h_probe_k": "probe_k_majority",
        "reward_sign": "reward_sign_majority",
        "imagined_rank": "imagined_rank_chance",
        "actor_right": "actor_right_chance",
    }
    out = {}
    for name, score in scores.items():
        if score.count == 0:
            continue
        out[f"chain/{name}"] = score.accuracy
        if name in chance:
            out[f"chain/{chance[name]}"] = score.chance
    return out


SCALARS = (
    "chain/z_seen",
    "chain/seen_majority",
    "chain/h_probe",
    "chain/probe_majority",
    "chain/h_probe_k",
    "chain/probe_k_majority",
    "chain/reward_sign",
    "chain/reward_sign_majority",
    "chain/imagined_rank",
    "chain/imagined_rank_chance",
    "chain/actor_right",
    "chain/actor_right_chance",
    "chain/actor_entropy",
    "chain/right_below_floor",
)

__all__ = [
    "CUE_EPISODES",
    "EPISODES",
    "LastInfo",
    "Labelled",
    "SCALARS",
    "balanced_share",
    "below_floor",
    "chain_scalars",
    "pad_episodes",
    "measure",
    "play_labelled",
    "tracks",
]
