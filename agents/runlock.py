"""One writer per run folder: a lock file `<run>/run.lock` that names its holder.

The lock is an advisory `fcntl.flock` on an open file descriptor kept for the life of the
process, so the kernel releases it when the process ends in any way (SIGKILL included) and two
processes can never both hold it. The file's text (`pid <PID> on <host> since <time>`) is only
for the messages: a second process on the same run is refused with the holder's name, and a
process that finds the lock free but the text still there (its writer was killed) says that it
takes the lock over. A clean release empties the text, so a normal resume says nothing.

The lock is taken before anything else is written to the run folder (config.yaml included): a
refused process leaves the folder as it found it. Under torchrun rank 0 holds it for all ranks.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import os
import re
import socket
import sys
from pathlib import Path
from collections.abc import Callable

NAME = "run.lock"
_HOLDER = re.compile(r"^pid \d+ on \S+ since [0-9: -]+UTC$")  # what acquire() writes


class RunLocked(ValueError):
    """Another live process holds the run folder's lock (a user error: one writer per run)."""


class RunLock:
    """The held lock of one run folder; `release()` (or the end of the process) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # nobody holds it now: the next process takes it silently
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __del__(self):
        self.release()  # a Loop dropped without running frees its folder for the next one in this process

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(run_dir: str | os.PathLike, log: Callable[[str], None] | None = None) -> RunLock:
    """Take the lock of `run_dir` (created if missing) for this process, or raise RunLocked naming its holder.

    A lock whose holder is gone (its text names a process that no longer holds it) is taken over
    with a message through `log` (default: stderr).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: a refused process changes nothing
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read(fd)
        holder = holder if _HOLDER.match(holder) else ""
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise RunLocked(
            f"run {run_dir} is in use by {holder or 'another process'} ({path}); wait for it to finish, stop it, or use another --run"
        ) from None
    previous = _read(fd)
    if previous:
        if not _HOLDER.match(previous):
            previous = "an unreadable lock text"
        log(f"memwm: taking over the lock of {run_dir}: its holder ({previous}) {_gone(previous)}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)
    return RunLock(path, fd)


def _read(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode(errors="replace").strip()


def _gone(holder: str) -> str:
    """Why a recorded holder no longer holds the lock, in words: its PID has ended, or it ran elsewhere."""
    parts = holder.split()
    if len(parts) >= 4 and parts[0] == "pid" and parts[1].isdigit() and parts[2] == "on":
        if parts[3] != socket.gethostname():
            return f"no longer holds it (it ran on {parts[3]})"
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            return "has ended without releasing it"
        except PermissionError:
            pass
    return "no longer holds it"
