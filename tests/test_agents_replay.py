"""Replay: episodes on disk and in memory, capacity, and windows that cross episode starts."""

import numpy as np
import pytest

from agents.replay import Replay


def _episode(length, ep_id, image=True):
    """An episode whose every step records (episode id, time index) so windows can be checked."""
    t = np.arange(length)
    ep = {
        "vector": np.stack([np.full(length, ep_id, np.float32), t.astype(np.float32)], 1),
        "action": np.eye(3, dtype=np.float32)[t % 3],
        "reward": (t == length - 1).astype(np.float32),
        "is_first": t == 0,
        "is_last": t == length - 1,
        "is_terminal": t == length - 1,
    }
    if image:
        ep["image"] = np.full((length, 8, 8, 3), ep_id, np.uint8)
    return ep


def _add_by_steps(replay, episode, worker=0):
    out = None
    for i in range(len(episode["reward"])):
        out = replay.add_step({k: v[i] for k, v in episode.items()}, worker)
    return out


def test_windows_cross_episode_starts_with_is_first_exactly_at_the_resets(tmp_path):
    replay = Replay(capacity=10_000, directory=tmp_path, seed=0)
    lengths = [5, 9, 3, 12, 7]
    for i, n in enumerate(lengths):
        _add_by_steps(replay, _episode(n, i))
    batch = replay.sample(64, 10)
    assert batch["vector"].shape == (64, 10, 2) and batch["image"].shape == (64, 10, 8, 8, 3)
    assert batch["image"].dtype == np.uint8
    crossed = 0
    for seq_vec, seq_first in zip(batch["vector"], batch["is_first"]):
        ep, t = seq_vec[:, 0], seq_vec[:, 1]
        # consecutive steps: same episode and t+1, or the next episode at t=0
        for j in range(1, 10):
            if ep[j] == ep[j - 1]:
                assert t[j] == t[j - 1] + 1 and not seq_first[j]
            else:
                assert ep[j] == ep[j - 1] + 1 and t[j] == 0 and t[j - 1] == lengths[int(ep[j - 1])] - 1 and seq_first[j]
                crossed += 1
        assert seq_first[0]
    assert crossed > 0


def test_from_starts_windows_begin_at_episode_starts_in_the_share_asked():
    replay = Replay(capacity=10_000, seed=1)
    lengths = [5, 9, 3, 12, 7, 4]
    for i, n in enumerate(lengths):
        replay.add_episode(_episode(n, i))
    length = 10
    # an episode can begin a window when the stream holds `length` steps from its start: episode 4 can
    # (7 + 4 steps), the last one (4 steps, nothing after it) cannot
    eligible = {i for i in range(len(lengths)) if sum(lengths[i:]) >= length}
    assert eligible == {0, 1, 2, 3, 4}
    aligned = replay.sample(2_000, length, from_starts=1.0)
    ep0, t0 = aligned["vector"][:, 0, 0], aligned["vector"][:, 0, 1]
    assert (t0 == 0).all() and set(ep0.astype(int)) == eligible
    counts = np.bincount(ep0.astype(int), minlength=len(lengths))[sorted(eligible)]
    assert counts.min() > 300  # uniform over the eligible episodes (400 each expected), not over steps
    assert aligned["is_first"][:, 0].all()
    # the rest of each window is the ordinary stream: consecutive steps, crossing into the next episode
    ep, t = aligned["vector"][..., 0], aligned["vector"][..., 1]
    same = ep[:, 1:] == ep[:, :-1]
    assert ((t[:, 1:] == t[:, :-1] + 1) | (~same & (t[:, 1:] == 0) & (ep[:, 1:] == ep[:, :-1] + 1))).all()
    assert (aligned["is_first"][:, 1:] == ~same).all()
    # a share of one half: about half the windows begin at t = 0, far more than windows drawn anywhere do
    anywhere = (replay.sample(2_000, length)["vector"][:, 0, 1] == 0).mean()
    half = (replay.sample(2_000, length, from_starts=0.5)["vector"][:, 0, 1] == 0).mean()
    assert anywhere < 0.3 and abs(half - (0.5 + 0.5 * anywhere)) < 0.05
    with pytest.raises(ValueError, match="from_starts"):
        replay.sample(2, length, from_starts=1.5)


def test_capacity_drops_oldest_episodes_and_memory_is_capacity_times_step_size(tmp_path):
    replay = Replay(capacity=30, directory=tmp_path)
    for i in range(10):
        replay.add_episode(_episode(10, i))
    assert len(replay) == 30
    ids = sorted({int(e["vector"][0, 0]) for e in replay.episodes})
    assert ids == [7, 8, 9]
    step_bytes = sum(v[0].nbytes for v in _episode(1, 0).values())
    held = sum(v.nbytes for e in replay.episodes for v in e.values())
    assert held == 30 * step_bytes
    assert len(list(tmp_path.glob("ep-*.npz"))) == 10  # files stay on disk


def test_reload_from_disk_restores_newest_episodes_and_counter(tmp_path):
    replay = Replay(capacity=25, directory=tmp_path)
    for i in range(6):
        replay.add_episode(_episode(10, i))
    again = Replay(capacity=25, directory=tmp_path)
    assert again.num_episodes == 6
    assert [int(e["vector"][0, 0]) for e in again.episodes] == [3, 4, 5][-len(again.episodes) :]
    np.testing.assert_array_equal(again.episodes[-1]["image"], replay.episodes[-1]["image"])
    again.add_episode(_episode(4, 6))
    assert (tmp_path / "ep-0000006-len4.npz").exists()


def test_unfinished_episodes_are_not_written_and_workers_are_separate(tmp_path):
    replay = Replay(capacity=100, directory=tmp_path)
    a, b = _episode(6, 0), _episode(4, 1)
    for i in range(4):
        replay.add_step({k: v[i] for k, v in a.items()}, worker=0)
        replay.add_step({k: v[i] for k, v in b.items()}, worker=1)
    assert replay.num_episodes == 1 and len(replay) == 4  # only worker 1 finished
    assert [p.name for p in tmp_path.iterdir()] == ["ep-0000000-len4.npz"]
    np.testing.assert_array_equal(replay.episodes[0]["vector"], b["vector"])


def test_temporary_files_are_ignored_on_reload(tmp_path):
    replay = Replay(capacity=100, directory=tmp_path)
    replay.add_episode(_episode(5, 0))
    (tmp_path / "ep-0000001-len5.npz.tmp").write_bytes(b"torn")
    assert len(Replay(capacity=100, directory=tmp_path)) == 5


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="capacity"):
        Replay(capacity=0)
    replay = Replay(capacity=100)
    with pytest.raises(ValueError, match="missing"):
        replay.add_episode({"reward": np.zeros(3)})
    replay.add_episode(_episode(5, 0))
    with pytest.raises(ValueError, match="fewer than the sequence length"):
        replay.sample(2, 8)


def _mid_rewards(length, ep_id, at):
    """An episode of `length` steps whose only event (a reward, no termination) is at step `at`."""
    ep = _episode(length, ep_id, image=False)
    ep["reward"] = (np.arange(length) == at).astype(np.float32)
    ep["is_terminal"] = np.zeros(length, bool)
    return ep


def test_whole_episodes_windows_start_at_the_first_step_of_every_episode_they_can_hold():
    replay = Replay(capacity=10_000, seed=3)
    lengths = [6, 25, 4, 9, 30, 8]
    for i, n in enumerate(lengths):
        replay.add_episode(_episode(n, i, image=False))
    length = 10
    batch = replay.sample(3_000, length, whole_episodes=True)
    ep0, t0 = batch["vector"][:, 0, 0].astype(int), batch["vector"][:, 0, 1].astype(int)
    short = np.array([lengths[e] <= length for e in ep0])
    assert (t0[short] == 0).all()  # an episode that fits is never cut
    assert (t0[~short] > 0).mean() > 0.5  # long episodes are still entered anywhere
    # the same draws without the rule cut short episodes
    plain = replay.sample(3_000, length)
    p_ep, p_t = plain["vector"][:, 0, 0].astype(int), plain["vector"][:, 0, 1].astype(int)
    assert (p_t[np.array([lengths[e] <= length for e in p_ep])] > 0).any()


def test_event_windows_hold_the_event_and_the_history_before_it():
    replay = Replay(capacity=10_000, seed=4)
    # (length, event step): events early in long episodes, late in long ones, in short ones
    layout = [(40, 5), (40, 35), (8, 7), (30, 20), (12, 3)]
    for i, (n, at) in enumerate(layout):
        replay.add_episode(_mid_rewards(n, i, at))
    length = 10
    batch = replay.sample(3_000, length, event_share=1.0)
    vec = batch["vector"]
    for seq in vec:
        ep, t = seq[:, 0].astype(int), seq[:, 1].astype(int)
        n, at = layout[ep[0]]
        hits = (ep == ep[0]) & (t == at)
        assert hits.any()  # every window holds an event
        if at < length:
            assert t[0] == 0  # the event is within reach of the episode's start: the window starts there
        else:
            assert t[-1] == at and ep[-1] == ep[0]  # otherwise the window ends at the event
    # events are drawn uniformly: each of the 5 is the target of about a fifth of the windows
    counts = np.bincount(vec[:, 0, 0].astype(int), minlength=len(layout))
    assert counts.min() > 450
    # a share of one half: the other half are drawn anywhere (many hold no event)
    half = replay.sample(3_000, length, event_share=0.5)
    has_event = [(np.asarray(layout)[s[:, 0].astype(int), 1] == s[:, 1]).any() for s in half["vector"]]
    assert 0.55 < np.mean(has_event) < 0.95
    with pytest.raises(ValueError, match="event_share"):
        replay.sample(2, length, event_share=-0.1)


def test_context_windows_carry_their_first_steps_state_and_keep_is_first_as_stored():
    replay = Replay(capacity=10_000, seed=4)
    for i, n in enumerate([9, 14, 6]):
        ep = _episode(n, i, image=False)
        ep["carry/h"] = np.stack([ep["vector"], -ep["vector"]], 1)  # (T, 2, 2): each step's (episode, t) as its carry
        replay.add_episode(ep)
    batch = replay.sample(64, 5, context=True)
    assert batch["context/h"].shape == (64, 2, 2) and "carry/h" not in batch
    np.testing.assert_array_equal(batch["context/h"][:, 0], batch["vector"][:, 0])  # the carry of the window's first step
    np.testing.assert_array_equal(batch["is_first"][:, 0], batch["vector"][:, 0, 1] == 0)  # a reset only at a real start
    assert not batch["is_first"][:, 0].all()
    plain = replay.sample(8, 5)  # without context: no carry, every window starts from a reset
    assert plain["is_first"][:, 0].all() and not any(k.startswith(("carry/", "context/")) for k in plain)


def _rewarded_every_step(length, ep_id, terminal):
    ep = _episode(length, ep_id, image=False)
    ep["reward"] = np.ones(length, np.float32)  # CartPole's +1 a step: every step is an event
    ep["is_terminal"] = np.arange(length) == length - 1 if terminal else np.zeros(length, bool)
    return ep


def test_terminal_share_places_that_share_of_the_event_windows_at_a_termination():
    replay = Replay(capacity=10_000, seed=5)
    layout = [(60, True), (80, False), (50, True), (90, True), (70, False)]  # long episodes, some truncated
    for i, (n, terminal) in enumerate(layout):
        replay.add_episode(_rewarded_every_step(n, i, terminal))
    length = 10

    def holds_termination(batch):
        ep, t = batch["vector"][..., 0].astype(int), batch["vector"][..., 1].astype(int)
        ends = np.array([n - 1 if terminal else -1 for n, terminal in layout])
        return (t == ends[ep]).any(axis=1)

    # every step is an event: without the share, a window holds a termination about as often as anywhere
    pooled = holds_termination(replay.sample(3_000, length, event_share=1.0))
    assert pooled.mean() < 0.2
    # all event windows at a termination: each ends there (no episode fits whole in the window)
    batch = replay.sample(3_000, length, event_share=1.0, terminal_share=1.0)
    assert holds_termination(batch).all()
    ends = [n - 1 for n, terminal in layout if terminal]
    assert set(batch["vector"][:, -1, 1].astype(int)) == set(ends)  # the three terminations, each drawn
    # half of the event windows, themselves half the batch: about a quarter more hold one than before
    quarter = holds_termination(replay.sample(4_000, length, event_share=0.5, terminal_share=0.5)).mean()
    base = holds_termination(replay.sample(4_000, length, event_share=0.5)).mean()
    assert 0.18 < quarter - base < 0.32
    with pytest.raises(ValueError, match="terminal_share"):
        replay.sample(2, length, event_share=1.0, terminal_share=1.5)


def test_terminal_share_zero_draws_the_batches_of_before():
    """Without the share the random stream is not touched: a run that leaves it at 0 replays what it did before."""
    a, b = Replay(capacity=10_000, seed=6), Replay(capacity=10_000, seed=6)
    for i, n in enumerate([40, 25, 60]):
        ep = _rewarded_every_step(n, i, terminal=i != 1)
        a.add_episode(ep)
        b.add_episode(ep)
    for _ in range(3):
        x = a.sample(16, 10, event_share=0.5, whole_episodes=True)
        y = b.sample(16, 10, event_share=0.5, whole_episodes=True, terminal_share=0.0)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
