"""The in-context loop on real icrl/* trials: memory kept across the episodes of a trial and reset
only at the trial start, and tiny end-to-end runs of both agents (PPO and Dreamer)."""

import json

import numpy as np
import pytest
import torch

import envs
from agents.config import TrainConfig
from agents.ppo import PPO, PPOConfig
from agents.ppo_agent import Collector
from agents.ppo_net import index_state
from world_models import WorldModelConfig
from world_models.imagine import model_obs_space

# dark-room trials of 3 episodes of 3 steps: 9 steps, then the env's reset step
ROOM = {"episode_steps": 3, "episodes": 3}


def ppo_on(env_id: str, backbone: str, n: int, rollout: int, **options):
    vec = envs.make_vector(env_id, n, seed=0, asynchronous=False, **options)
    ppo = PPO(model_obs_space(vec.single_observation_space), vec.single_action_space, backbone, PPOConfig(rollout=rollout))
    return vec, ppo, Collector(ppo, vec)


@pytest.mark.parametrize("backbone", ["s5", "rssm", "transformer"])
def test_memory_persists_across_episodes_and_resets_at_the_next_trial(backbone):
    vec, ppo, collector = ppo_on("icrl/dark-room", backbone, 2, 7, **ROOM)
    backbone_ = ppo.model.backbone
    collector.collect(seed=0)
    r, _ = collector.collect()  # the second chunk starts mid-trial, from a carried state
    r2, _ = collector.collect()  # and the third crosses into the next trial
    obs = {k: torch.cat([r.obs[k], r2.obs[k]], 1) for k in r.obs}
    is_first = torch.cat([r.is_first, r2.is_first], 1)  # (2, 14)
    episode_start = obs["vector"][..., -1].bool()  # the env marks each episode's first observation
    assert (episode_start & ~is_first).any(), "the chunks hold an episode start inside a trial"
    assert is_first.any(), "the chunks hold a trial start"
    assert not (is_first & ~episode_start).any()

    with torch.no_grad():
        x = ppo.model.encode(obs)
        _, states = backbone_(x, is_first, r.state0, all_states=True) if backbone != "transformer" else (None, None)
        for b in range(2):
            state = index_state(r.state0, slice(b, b + 1))
            for t in range(is_first.shape[1]):
                carried, _ = backbone_.step(x[b : b + 1, t], torch.tensor([False]), state)
                fresh, _ = backbone_.step(x[b : b + 1, t], torch.tensor([True]), state)
                y, new_state = backbone_.step(x[b : b + 1, t], is_first[b : b + 1, t], state)
                if is_first[b, t]:  # a trial start: the memory is reset
                    torch.testing.assert_close(y, fresh)
                    assert not torch.allclose(y, carried)
                else:  # inside a trial, episode starts included: the state at the end of the last step goes on
                    torch.testing.assert_close(y, carried)
                    if episode_start[b, t]:
                        assert not torch.allclose(y, fresh)
                if states is not None:  # the update's forward pass sees the same memory as acting
                    for k in new_state:
                        torch.testing.assert_close(new_state[k][0], states[k][b, t], rtol=1e-4, atol=1e-5)
                state = new_state
    vec.close()


@pytest.mark.parametrize("backbone", ["s5", "rssm"])
def test_update_replays_the_memory_of_acting(backbone):
    """Re-running a collected chunk from its stored initial state reproduces the log-probs and values
    taken while acting, across a chunk boundary, episode starts and a trial start."""
    vec, ppo, collector = ppo_on("icrl/dark-room", backbone, 3, 11, **ROOM)
    collector.collect(seed=0)
    r, _ = collector.collect()
    assert r.is_first.any() and r.state0[next(iter(r.state0))].abs().sum() > 0
    with torch.no_grad():
        dist, value, _ = ppo.model(r.obs, r.is_first, r.state0)
    torch.testing.assert_close(dist.log_prob(r.action), r.logp, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(value, r.value, rtol=1e-4, atol=1e-4)
    # the action at a trial's last observation goes nowhere (the env resets): exactly those steps carry no loss
    np.testing.assert_array_equal(r.mask[:, :-1].numpy(), ~r.is_first[:, 1:].numpy())
    assert not r.mask.all()
    vec.close()


def read_metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_ppo_run_end_to_end_then_memwm_eval(tmp_path):
    from agents import icrl
    from agents.cli import main
    from agents.common import evaluation_seed

    run = tmp_path / "ppo"
    main(
        [
            "train",
            "--agent",
            "ppo",
            "--backbone",
            "s5",
            "--env",
            "icrl/bandit-5",
            "--steps",
            "300",
            "--run",
            str(run),
            "--num-envs",
            "2",
            "--ppo.rollout",
            "50",
            "--ppo.minibatches",
            "2",
            "--eval-episodes",
            "2",
            "--eval-every",
            "200",
            "--log-every",
            "100",
            "--threads",
            "1",
        ]
    )
    assert (run / "config.yaml").exists() and list((run / "checkpoints").glob("ckpt-*.pt"))
    records = read_metrics(run)
    assert any("ppo/value_loss" in r for r in records) and any("episode/return" in r for r in records)
    evals = [r for r in records if "icrl/regret" in r]
    assert len(evals) == 2  # the one at step 200 and the final one
    # the baselines' regrets are those of evaluation k's own trials (seeds apart from training, new each time)
    for k, record in enumerate(evals):
        seed = evaluation_seed(0, k, 2)
        thompson = icrl.run_trials(icrl.ThompsonSampling(5, 2, seed), "icrl/bandit-5", 2, seed, num_envs=2)
        ucb = icrl.run_trials(icrl.UCB(5, 2), "icrl/bandit-5", 2, seed, num_envs=2)
        assert record["icrl/regret_thompson"] == pytest.approx(float(thompson.regret().sum(-1).mean()))
        assert record["icrl/regret_ucb"] == pytest.approx(float(ucb.regret().sum(-1).mean()))
    assert len(list((run / "icrl").glob("*.png"))) == 2

    main(["eval", "--run", str(run), "--episodes", "3"])
    records = read_metrics(run)
    assert "icrl/return_over_thompson" in records[-1] and "icrl/return_tenth01" in records[-1]
    assert len(list((run / "icrl").glob("*.png"))) == 2  # the final eval's plot was rewritten at the same step

    # a resume continues the run
    main(["train", "--run", str(run), "--steps", "400", "--threads", "1"])
    steps = [r["step"] for r in read_metrics(run)]
    assert max(steps) >= 400


def test_tiny_dreamer_run_on_trials_replays_across_episode_boundaries(tmp_path):
    from agents.replay import Replay
    from agents.train import train

    run = tmp_path / "dreamer"
    config = TrainConfig(
        env="icrl/dark-room",
        env_options=dict(ROOM),
        backbone="s5",
        steps=160,
        run=str(run),
        num_envs=2,
        prefill=60,
        batch_size=2,
        seq_len=16,
        train_ratio=4.0,
        eval_episodes=2,
        eval_every=0,
        video_every=-1,
        log_every=40,
        checkpoint_every=1000,
        threads=1,
        wm=WorldModelConfig.preset("tiny"),
    )
    summary = train(config)
    assert np.isfinite(summary["eval/return"])
    records = read_metrics(run)
    assert any("train/loss/vector" in r for r in records)
    assert any("icrl/gain" in r for r in records) and list((run / "icrl").glob("*.png"))

    # a stored episode is a whole trial: one start, episode starts inside it, no reset at them
    replay = Replay(10_000, run / "replay")
    trial = replay.episodes[0]
    assert len(trial["reward"]) == 10  # 9 steps and the final observation
    starts = np.flatnonzero(trial["vector"][:, -1])
    np.testing.assert_array_equal(starts, [0, 3, 6])
    np.testing.assert_array_equal(np.flatnonzero(trial["is_first"]), [0])
    # and replayed windows span the episode boundaries inside a trial: resets only after a trial's last step
    batch = replay.sample(16, 8)
    np.testing.assert_array_equal(batch["is_first"][:, 1:], batch["is_last"][:, :-1])
    inner = batch["vector"][:, 1:, -1].astype(bool) & ~batch["is_first"][:, 1:]
    assert inner.any()

    # the run cannot be continued by the other learner
    from agents.checkpoint import CheckpointMismatch
    import dataclasses

    with pytest.raises(CheckpointMismatch, match="agent='dreamer'"):
        train(dataclasses.replace(config, agent="ppo", steps=400))
