"""What a run survives: SIGKILLs at random moments and in the middle of writes, damaged files of each kind,
a second writer, a full disk. `python -m benchmarks.faults` (a few minutes at preset tiny on a CPU).

Each scenario drives `memwm train` as a user would, in child processes, on a tiny run:

- kills: N SIGKILLs, cycling through a random moment, the middle of a checkpoint write and the
  middle of a replay episode write (the child kills itself halfway through writing the file, so
  the moment is hit exactly); after each kill every file under a final name must parse, and the
  next start resumes. Steps lost = steps the killed process had reached (its metrics.jsonl,
  logged every act) minus the step it resumes from, read against the checkpoint interval.
- damaged files: the newest checkpoint truncated or overwritten, a replay episode truncated or
  overwritten, a torn last line of metrics.jsonl, the lock file overwritten; the run must resume
  and finish, skipping (and counting) what it cannot read. An overwritten config.yaml (the run's
  settings, which nothing else holds whole) must stop with a one-line error naming it.
- a second writer: `memwm train` on a run folder another process is training must exit 2 with
  one line naming the holder, while the first finishes.
- a full disk: the run folder on a small tmpfs (where the machine lets us mount one, else skipped
  with the reason) must stop with a one-line error, leave no partial file under a final name,
  and keep its last checkpoint loadable.

Writes a record `benchmarks/results/faults/<start>-<commit>.json` (benchmarks/record.py) and prints
the table that benchmarks/results/README.md shows.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from benchmarks import record


@dataclass
class Args:
    kills: int = 6  # SIGKILLs, cycling through random moment, mid-checkpoint, mid-replay-write
    env: str = "memory/distracting-16"
    backbone: str = "rssm"
    steps: int = 1200  # env steps of the killed run
    checkpoint_every: int = 200
    seed: int = 0
    workdir: str = ""  # where the runs go ("" = a temporary folder, removed at the end)


TINY = [
    "--preset",
    "tiny",
    "--num-envs",
    "1",
    "--prefill",
    "60",
    "--batch-size",
    "2",
    "--seq-len",
    "8",
    "--train-ratio",
    "2",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--video-every",
    "-1",
    "--no-tensorboard",
    "--threads",
    "1",
]

# The child: `memwm train` with a fault armed. MODE "checkpoint" or "replay" makes the `at`-th write of that
# kind write half of its bytes into the temporary file and SIGKILL the process there.
CHILD = textwrap.dedent("""
    import os, signal, sys
    mode, at, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if mode in ("checkpoint", "replay"):
        import agents.checkpoint, agents.replay
        module = agents.checkpoint if mode == "checkpoint" else agents.replay
        real, calls = module.atomic_write, [0]
        def torn(path, data):
            calls[0] += 1
            if calls[0] < at:
                return real(path, data)
            def half(f):
                import io
                buffer = io.BytesIO()
                data(buffer)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, half)
        module.atomic_write = torn
    from agents.cli import main
    main(["train", *args])
""")


def train(run: Path, args: Args, steps: int, fault: str = "none", at: int = 0, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        fault,
        str(at),
        "--env",
        args.env,
        "--backbone",
        args.backbone,
        "--run",
        str(run),
        "--steps",
        str(steps),
        "--checkpoint-every",
        str(args.checkpoint_every),
        "--seed",
        str(args.seed),
        "--log-every",
        "1",
        *TINY,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=record.REPO)


def start(run: Path, args: Args, steps: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        "none",
        "0",
        "--env",
        args.env,
        "--backbone",
        args.backbone,
        "--run",
        str(run),
        "--steps",
        str(steps),
        "--checkpoint-every",
        str(args.checkpoint_every),
        "--seed",
        str(args.seed),
        "--log-every",
        "1",
        *TINY,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=record.REPO)


# ---------------------------------------------------------------------------------------- the run folder


def checkpoint_step(run: Path) -> int:
    """The step a resume starts from: the newest loadable checkpoint's (0 without one)."""
    from agents import checkpoint

    found = checkpoint.load(run / "checkpoints", log=lambda m: None) if (run / "checkpoints").exists() else None
    return int(found[0]["counters"]["step"]) if found else 0


def logged(run: Path) -> list[dict]:
    from agents.logger import read_metrics

    return read_metrics(run)


def reached_step(run: Path, records_before: int, started_from: int) -> int:
    """The last step the latest process logged (it logs every act), or where it started if it logged nothing."""
    new = logged(run)[records_before:]
    return int(new[-1]["step"]) if new else started_from


def unparsable(run: Path) -> list[str]:
    """Files under a final name that do not parse: checkpoints, replay episodes, config.yaml, metrics lines but a torn last one."""
    import yaml

    bad = []
    for path in sorted((run / "checkpoints").glob("ckpt-*.pt")):
        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception:
            bad.append(str(path.relative_to(run)))
    for path in sorted((run / "replay").rglob("ep-*.npz")):
        try:
            with np.load(path) as data:
                [data[k] for k in data.files]
        except (zipfile.BadZipFile, EOFError, ValueError, OSError):
            bad.append(str(path.relative_to(run)))
    if (run / "config.yaml").exists():
        try:
            yaml.safe_load((run / "config.yaml").read_text())
        except yaml.YAMLError:
            bad.append("config.yaml")
    if (run / "metrics.jsonl").exists():
        lines = (run / "metrics.jsonl").read_text(errors="replace").splitlines()
        for line in lines[:-1]:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                bad.append("metrics.jsonl")
                break
    return bad


def one_line(stderr: str) -> str:
    """The last line of a child's stderr without its progress bar."""
    lines = [line.split("\r")[-1].strip() for line in stderr.strip().splitlines()]
    return lines[-1] if lines else ""


def skipped_files(stderr: str) -> int:
    return stderr.count("skipping replay file")


def has_traceback(stderr: str) -> bool:
    return "Traceback (most recent call last)" in stderr


# ---------------------------------------------------------------------------------------- scenarios


def kills(root: Path, args: Args, rng: random.Random) -> dict:
    run = root / "killed"
    moments = ["random", "mid-checkpoint", "mid-replay-write"]
    events = []
    for k in range(args.kills):
        moment = moments[k % len(moments)]
        before, records_before = checkpoint_step(run), len(logged(run))
        if moment == "random":
            proc = start(run, args, args.steps)
            time.sleep(rng.uniform(3.0, 9.0))  # past the start-up (imports, envs) into training, before the end
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stderr = proc.stderr.read()
        else:
            fault = "checkpoint" if moment == "mid-checkpoint" else "replay"
            at = rng.randint(1, 3) if fault == "checkpoint" else rng.randint(3, 30)
            stderr = train(run, args, args.steps, fault, at).stderr
        reached, resume_from = reached_step(run, records_before, before), checkpoint_step(run)
        events.append(
            {
                "moment": moment,
                "reached": reached,
                "resumes_from": resume_from,
                "previous_checkpoint": before,
                "steps_lost": max(0, reached - resume_from),
                "unparsable": unparsable(run),
                "temporary_files": len(list(run.rglob("*.tmp"))),
                "traceback": has_traceback(stderr),
            }
        )
        print(
            f"  kill {k + 1} ({moment}): reached step {reached}, resumes from {resume_from}, "
            f"unparsable files {events[-1]['unparsable'] or 'none'}",
            flush=True,
        )
    final = train(run, args, args.steps)
    finished = final.returncode == 0 and checkpoint_step(run) == args.steps and not list(run.rglob("*.tmp"))
    lost = [e["steps_lost"] for e in events]
    return {
        "kills": len(events),
        "survived": sum(not e["unparsable"] and not e["traceback"] for e in events) if finished else 0,
        "steps_lost": lost,
        "steps_lost_mean": float(np.mean(lost)) if lost else 0.0,
        "steps_lost_max": max(lost, default=0),
        "checkpoint_every": args.checkpoint_every,
        "runs_finished": int(finished),
        "final_returncode": final.returncode,
        "files_skipped": skipped_files(final.stderr),
        "events": events,
        "final_error": "" if final.returncode == 0 else one_line(final.stderr),
    }


def damaged(root: Path, args: Args, rng: random.Random) -> dict:
    """Each kind of damage on its own copy of a finished short run, then a resume to more steps."""
    base = root / "damaged-base"
    short = 2 * args.checkpoint_every
    first = train(base, args, short)
    if first.returncode != 0:
        return {"error": f"the base run failed: {one_line(first.stderr)}"}

    def newest_checkpoint(run):
        return sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]

    def an_episode(run):
        return sorted((run / "replay").rglob("ep-*.npz"))[-1]

    damage = {
        "checkpoint truncated": lambda run: _truncate(newest_checkpoint(run)),
        "checkpoint overwritten": lambda run: newest_checkpoint(run).write_bytes(rng.randbytes(4096)),
        "replay episode truncated": lambda run: _truncate(an_episode(run)),
        "replay episode overwritten": lambda run: an_episode(run).write_bytes(rng.randbytes(512)),
        "metrics.jsonl torn last line": lambda run: open(run / "metrics.jsonl", "a").write('{"step": 99, "episode/ret'),
        "run.lock overwritten": lambda run: (run / "run.lock").write_bytes(rng.randbytes(256)),
        "config.yaml overwritten": lambda run: (run / "config.yaml").write_bytes(rng.randbytes(256)),
    }
    rows = {}
    for kind, harm in damage.items():
        run = root / ("damaged-" + kind.replace(" ", "-").replace(".", ""))
        shutil.copytree(base, run)
        harm(run)
        resumed = train(run, args, short + args.checkpoint_every)
        finished = resumed.returncode == 0 and checkpoint_step(run) == short + args.checkpoint_every
        error = "" if resumed.returncode == 0 else one_line(resumed.stderr)
        # a file that holds the run's settings cannot be guessed: the expected outcome is a one-line error naming it
        refused = resumed.returncode == 2 and error.startswith("memwm train: error: ") and not has_traceback(resumed.stderr)
        rows[kind] = {
            "runs_finished": int(finished),
            "one_line_error": refused,
            "files_skipped": skipped_files(resumed.stderr),
            "fell_back": "falling back to" in resumed.stderr,
            "traceback": has_traceback(resumed.stderr),
            "error": error,
        }
        outcome = "finished" if finished else ("one-line error: " + error if refused else "FAILED " + error)
        print(f"  {kind}: {outcome}, files skipped {rows[kind]['files_skipped']}", flush=True)
    return rows


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def second_writer(root: Path, args: Args) -> dict:
    run = root / "two-writers"
    first = start(run, args, 10 * args.steps)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ((run / "run.lock").exists() and (run / "run.lock").read_text().strip()):
            time.sleep(0.1)
        time.sleep(1.0)
        before = sorted(p.name for p in run.iterdir())
        second = train(run, args, args.steps, timeout=120)
        message = one_line(second.stderr)
        refused = second.returncode == 2 and f"pid {first.pid} " in message and not has_traceback(second.stderr)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    print(f"  second writer: exit {second.returncode}: {message}", flush=True)
    return {
        "refused": refused,
        "returncode": second.returncode,
        "message": message,
        "files_before": before,
        "first_still_running": first.returncode == -signal.SIGKILL,
    }


def full_disk(root: Path, args: Args) -> dict:
    disk = root / "small-disk"
    disk.mkdir()
    size_mb = 14  # room for config, replay and two checkpoints of a tiny model, not for a third beside them
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = (mounted.stderr.strip().splitlines() or ["mount failed"])[0]
        print(f"  full disk: skipped, cannot mount a tmpfs here ({reason})", flush=True)
        return {"skipped": f"cannot mount a {size_mb} MiB tmpfs here: {reason}"}
    try:
        run = disk / "run"
        result = train(run, args, 20 * args.steps)
        message = one_line(result.stderr)
        leftovers = sorted(str(p.relative_to(run)) for p in run.rglob("*.tmp"))
        step = checkpoint_step(run)
        row = {
            "returncode": result.returncode,
            "message": message,
            "one_line_error": "disk is full" in message and not has_traceback(result.stderr),
            "unparsable": unparsable(run),
            "temporary_files_left": leftovers,
            "last_checkpoint_loads": step > 0,
            "last_checkpoint_step": step,
            "tmpfs_mib": size_mb,
        }
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    print(
        f"  full disk: exit {row['returncode']}: {message}; last checkpoint step {step}, unparsable {row['unparsable'] or 'none'}",
        flush=True,
    )
    return row


def main(args: Args) -> Path:
    started = record.start()
    rng = random.Random(args.seed)
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="memwm-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"kills ({args.kills}, checkpoint every {args.checkpoint_every} steps):", flush=True)
        payload = {"settings": vars(args) | {"tiny_flags": TINY}, "kills": kills(root, args, rng)}
        print("damaged files:", flush=True)
        payload["damaged"] = damaged(root, args, rng)
        print("second writer:", flush=True)
        payload["second_writer"] = second_writer(root, args)
        print("full disk:", flush=True)
        payload["full_disk"] = full_disk(root, args)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    path = record.write_result("faults", payload, started=started, device="cpu")
    print(table(payload))
    print(f"result: {path}")
    return path


def table(payload: dict) -> str:
    k = payload["kills"]
    lines = [
        "| scenario | kills survived | steps lost per kill (interval) | files skipped | runs finished |",
        "| --- | --- | --- | --- | --- |",
        f"| SIGKILL x{k['kills']} (random, mid-checkpoint, mid-replay-write) | {k['survived']}/{k['kills']} | "
        f"mean {k['steps_lost_mean']:.0f}, max {k['steps_lost_max']} ({k['checkpoint_every']}) "
        f"| {k['files_skipped']} | {k['runs_finished']}/1 |",
    ]
    for kind, row in payload["damaged"].items():
        if isinstance(row, dict):
            finished = f"{row['runs_finished']}/1" + (
                "" if row["runs_finished"] else " (one-line error, exit 2)" if row["one_line_error"] else " (FAILED)"
            )
            lines.append(f"| {kind} | - | - | {row['files_skipped']} | {finished} |")
    w = payload["second_writer"]
    lines.append(f"| second writer | - | - | - | refused (exit {w['returncode']}): {'yes' if w['refused'] else 'NO'} |")
    d = payload["full_disk"]
    if "skipped" in d:
        lines.append(f"| full disk | skipped: {d['skipped']} | | | |")
    else:
        ok = d["one_line_error"] and not d["unparsable"] and not d["temporary_files_left"] and d["last_checkpoint_loads"]
        lines.append(
            f"| full disk ({d['tmpfs_mib']} MiB tmpfs) | - | - | - | stopped with one line, last checkpoint "
            f"(step {d['last_checkpoint_step']}) loads: {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(tyro.cli(Args))
