"""Replay: finished episodes on disk and in memory, sampled as fixed-length sequences that may cross episode starts.

Each step is stored as DreamerV3 stores it: the observation, the reward and flags that arrived
with it (`is_first`, `is_last`, `is_terminal`), and `action`, the action taken AFTER seeing it.
Episodes are written to `<directory>/` as compressed .npz files as soon as they finish
(temporary file, then rename, so a SIGKILL leaves either the whole file or none) and kept in
memory as they came (images stay uint8). The buffer holds at most `capacity` steps: the oldest
episodes are dropped from memory (their files stay on disk). A sampled sequence is a window of
`length` consecutive steps of the stream of stored episodes; where it crosses into the next
episode, `is_first` marks the reset, which every world model honours. A window starts at a
uniformly drawn step (DreamerV3), or, for the share `from_starts` of a batch, at the start of a
uniformly drawn episode: a task whose cue opens the episode and whose query closes it teaches
memory only through windows that hold both, which a window starting anywhere rarely does.
Two rules need no knowledge of the task:
- `whole_episodes`: a window never cuts an episode it could hold whole: a start drawn inside an episode that fits
  in the window from its first step moves to that first step (a window without a replay context
  starts from a reset state, so a start inside an episode is an artificial reset);
- `event_share`: this share of the windows is placed to hold an event, a step with a nonzero reward
  or a termination, drawn uniformly among the events in memory, together with as much of what
  came before it as the window can hold (from its episode's start when that fits): a sparse reward
  is then seen in most batches, with the history that explains it;
- `terminal_share`: of the windows placed at an event, this share is placed at a termination: where a reward
  comes every step (CartPole's +1) every step is an event, and a termination, the one step that shows
  failure, is as rare among the events as among the steps, and rarer the better the policy gets.

Replay context (DreamerV3): a step may also hold `carry/...` arrays, the world-model state the actor
held before observing it (`State.to_arrays`: h, z, the previous action and the backbone's memory,
float32, complex memory as two floats), kept apart from the observations. `sample(context=True)`
returns the carry of each window's first step as `context/...` (B, ...) and leaves `is_first[:, 0]`
as stored, so that a window starting mid-episode continues the state the actor acted from; a window
whose first step has no carry (an older replay file, a Transformer run, whose key/value cache is too
big to store per step) starts from a reset state, as every window does without `context`.

Memory: capacity x bytes per step (for 64x64x3 images, 12 KiB) plus per-episode bookkeeping. A carry
adds 4 bytes x (h + z + action + memory sizes) a step, in memory and on disk: about 1 KiB for the tiny
preset's RSSM and S5, 6 to 9 KiB for its S4 and Mamba, 4 KiB for the small preset's RSSM and S5 but 37
and 55 KiB for its Mamba and S4 (diagonal states of width x state size per layer).
"""

from __future__ import annotations

import bisect
import collections
import os
import re
import sys
import zipfile
from pathlib import Path
from collections.abc import Callable

import numpy as np

from agents.common import FLAGS, atomic_write
from envs.dataset import episode_path

_NAME = re.compile(r"^ep-(\d+)-len(\d+)\.npz$")
CARRY = "carry/"  # per-step keys of the state the actor acted from


class Replay:
    """A capacity-bounded episode store with fixed-length sequence sampling.

    capacity: most steps held in memory; directory: where episodes are written (None: memory only);
    log: where a skipped unreadable file is reported (default: stderr);
    resume_at: the number of episodes the replay had stored at the checkpoint a run resumes from: the
    files of later episodes (written by the stopped process after that checkpoint) are deleted, so
    the replay is the one the checkpoint saw. None: every file is kept and loaded.
    """

    def __init__(
        self,
        capacity: int,
        directory: str | os.PathLike | None = None,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
        resume_at: int | None = None,
    ):
        if capacity < 1:
            raise ValueError(f"replay capacity must be a positive number of steps, got {capacity}")
        self.capacity = int(capacity)
        self.directory = None if directory is None else Path(directory)
        self.rng = np.random.default_rng(seed)
        self.episodes: collections.deque[dict[str, np.ndarray]] = collections.deque()
        self._ends: list[int] = []  # cumulative end index of each episode in the stream
        self._events = np.zeros(0, np.int64)  # stream indices of steps with a nonzero reward or a termination
        self._terminals = np.zeros(0, np.int64)  # stream indices of terminations
        self.num_steps = 0  # steps held in memory
        self.num_episodes = 0  # episodes ever added (also the next file's index)
        self._pending: dict[int, list[dict[str, np.ndarray]]] = collections.defaultdict(list)
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.skipped_files = 0  # episode files on disk that could not be read at load
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load(resume_at)

    # ------------------------------------------------------------------ adding
    def add_step(self, step: dict[str, np.ndarray], worker: int = 0) -> dict[str, np.ndarray] | None:
        """Append one step of environment `worker`; when it is the episode's last, store and return the episode."""
        steps = self._pending[worker]
        if step["is_first"] and steps:
            steps.clear()  # an unfinished episode (the env was reset): its steps are not kept
        steps.append({k: np.asarray(v) for k, v in step.items()})
        if not step["is_last"]:
            return None
        episode = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        steps.clear()
        self.add_episode(episode)
        return episode

    def add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """Store a whole episode: dict of (T, ...) arrays with `action`, `reward` and the flags."""
        missing = [k for k in ("action", "reward", *FLAGS) if k not in episode]
        if missing:
            raise ValueError(f"an episode needs keys action, reward, {', '.join(FLAGS)}; missing {missing}")
        lengths = {k: len(v) for k, v in episode.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"every array of an episode must have the same length, got {lengths}")
        if self.directory is not None:
            path = episode_path(self.directory, self.num_episodes, len(episode["reward"]))  # ep-<index>-len<T>.npz
            atomic_write(path, lambda f: np.savez_compressed(f, **episode))  # as envs.dataset writes them; DiskFull when full
        self.num_episodes += 1
        self._append(episode)

    def _append(self, episode: dict[str, np.ndarray]) -> None:
        length = len(episode["reward"])
        self.episodes.append(episode)
        self.num_steps += length
        while self.num_steps > self.capacity and len(self.episodes) > 1:
            self.num_steps -= len(self.episodes.popleft()["reward"])
        self._ends = list(np.cumsum([len(e["reward"]) for e in self.episodes]))
        firsts = [0, *self._ends[:-1]]
        self._events = np.concatenate(
            [np.flatnonzero((e["reward"] != 0) | e["is_terminal"]) + f for e, f in zip(self.episodes, firsts)]
        ).astype(np.int64)
        self._terminals = np.concatenate([np.flatnonzero(e["is_terminal"]) + f for e, f in zip(self.episodes, firsts)]).astype(np.int64)

    def _load(self, resume_at: int | None) -> None:
        """Reload the newest episodes (up to capacity) written by an earlier run in the same directory.

        A file that cannot be read (a truncated copy, a disk error) is skipped with one line through
        `self.log` and counted in `self.skipped_files`; the earlier files fill its place.
        """
        files = sorted((int(m[1]), int(m[2]), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))
        if resume_at is not None:
            for index, _, path in files:
                if index >= resume_at:
                    path.unlink(missing_ok=True)
            files = [f for f in files if f[0] < resume_at]
            self.num_episodes = resume_at
        if not files:
            return
        if resume_at is None:
            self.num_episodes = files[-1][0] + 1  # past every file, readable or not: none is ever overwritten
        chosen, total = [], 0
        for _, length, path in reversed(files):
            if total >= self.capacity:
                break
            episode = self._read(path)
            if episode is None:
                continue
            chosen.append(episode)
            total += length
        for episode in reversed(chosen):
            self._append(episode)

    def _read(self, path: Path) -> dict[str, np.ndarray] | None:
        """The episode in `path`, or None (reported and counted) if the file cannot be read as one."""
        try:
            with np.load(path) as data:
                episode = {k: data[k] for k in data.files}  # reads every member: a torn one fails here, not later
            lengths = {len(v) for v in episode.values()}
            if any(k not in episode for k in ("action", "reward", *FLAGS)) or len(lengths) != 1:
                raise ValueError(f"not an episode (keys {sorted(episode)}, lengths {sorted(lengths)})")
        except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, TypeError) as e:
            self.skipped_files += 1
            reason = str(e).splitlines()[0] if str(e) else ""
            self.log(f"memwm: skipping replay file {path} that cannot be read ({type(e).__name__}: {reason})")
            return None
        return episode

    # ------------------------------------------------------------------ sampling
    def __len__(self) -> int:
        return self.num_steps

    def sample(
        self,
        batch_size: int,
        length: int,
        from_starts: float = 0.0,
        event_share: float = 0.0,
        whole_episodes: bool = False,
        context: bool = False,
        terminal_share: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """A batch of windows: dict of (batch_size, length, ...) arrays; is_first marks every episode start inside.

        from_starts: the share of the windows (drawn per window) that begin at an episode's first step,
        the episode drawn uniformly among those with `length` steps of stream from their start.
        event_share: the share of the windows placed to hold a rewarded or terminal step (when memory
        holds one) and the steps before it, from its episode's first step when they fit in `length`.
        whole_episodes: a window that starts inside an episode it can hold whole starts at its first step.
        terminal_share: of the windows placed at an event, the share placed at a termination (when memory holds one).
        context: add `context/...` (batch_size, ...), the carry of each window's first step (zeros where it
        has none, and then is_first[:, 0] is set); without it every window starts with is_first set.
        """
        if self.num_steps < length:
            raise ValueError(f"replay holds {self.num_steps} steps, fewer than the sequence length {length}")
        for name, share in (("from_starts", from_starts), ("event_share", event_share), ("terminal_share", terminal_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share of the batch in [0, 1], got {share}")
        last = self.num_steps - length  # the latest start of a window that fits in the stream
        ends = np.asarray(self._ends)
        starts = self.rng.integers(0, last + 1, size=batch_size)
        if event_share > 0 and len(self._events):
            events = self._events[self.rng.integers(0, len(self._events), size=batch_size)]
            placed = self.rng.random(batch_size) < event_share
            if terminal_share > 0 and len(self._terminals):  # drawn only then: without it, the batches of before
                at_end = self.rng.random(batch_size) < terminal_share
                events = np.where(at_end, self._terminals[self.rng.integers(0, len(self._terminals), size=batch_size)], events)
            starts = np.where(placed, np.clip(events - length + 1, 0, last), starts)
        # the episode each window is about: its event's (placed windows), else its start's
        about = np.where(placed, events, starts) if event_share > 0 and len(self._events) else starts
        episode = np.searchsorted(ends, about, side="right")
        first = np.where(episode > 0, ends[np.maximum(episode - 1, 0)], 0)  # that episode's first step
        # begin at that first step when the window can hold the episode whole, or (placed windows)
        # the steps from its first step up to the event
        reach = (ends[episode] - first <= length) & whole_episodes
        if event_share > 0 and len(self._events):
            reach |= placed & (events - first < length)
        starts = np.where(reach & (first <= last), first, starts)
        if from_starts > 0:
            firsts = np.concatenate([[0], ends[:-1]])  # each episode's first step in the stream
            firsts = firsts[firsts <= last]  # never empty: the first episode starts at 0
            aligned = self.rng.random(batch_size) < from_starts
            starts = np.where(aligned, firsts[self.rng.integers(0, len(firsts), size=batch_size)], starts)
        seqs, carries = zip(*(self._window(int(s), length, context) for s in starts))
        batch = {k: np.stack([s[k] for s in seqs]) for k in seqs[0]}
        shapes = next((c for c in carries if c), None)  # the carry keys and shapes, from any window that has one
        if shapes is not None:
            for k, v in shapes.items():  # (batch_size, ...); a window without one starts at its reset
                batch["context/" + k[len(CARRY) :]] = np.stack([c.get(k, np.zeros_like(v)) for c in carries])
        return batch

    def _window(self, start: int, length: int, context: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Steps [start, start+length) of the stream of episodes in memory, and with `context` the carry of
        its first step (empty if it has none: then, as without `context`, the first step counts as a start)."""
        i = bisect.bisect_right(self._ends, start)
        offset = start - (self._ends[i - 1] if i > 0 else 0)
        first = self.episodes[i]
        carry = {k: v[offset] for k, v in first.items() if k.startswith(CARRY)} if context else {}
        parts, need = [], length
        while need > 0:
            ep = self.episodes[i]
            take = min(need, len(ep["reward"]) - offset)
            parts.append({k: v[offset : offset + take] for k, v in ep.items() if not k.startswith(CARRY)})
            need -= take
            i, offset = i + 1, 0
        seq = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if not carry:
            seq["is_first"] = seq["is_first"].copy()
            seq["is_first"][0] = True  # the model has no state from before the window
        return seq, carry
