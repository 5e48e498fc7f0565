"""Data parallelism (agents/distributed.py): collectives on two gloo ranks against local references,
`torchrun -m agents.cli train` with two ranks (weights equal on both, a resume from rank 0's
checkpoint on both), and `memwm compare` with its backbones split across two ranks."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from agents import distributed
from agents.logger import RankLogger

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- collectives on two ranks


class _Net(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(5, 3, generator=g))
        self.b = nn.Parameter(torch.randn(7, generator=g))
        self.only_rank0 = nn.Parameter(torch.randn(3, generator=g))  # used in the loss on rank 0 only
        self.unused = nn.Parameter(torch.randn(2, generator=g))  # used on no rank
        self.register_buffer("stat", torch.randn((), generator=g))

    def loss(self, rank: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(1000 + rank)  # each rank's own data
        x, y = torch.randn(4, 3, generator=g), torch.randn(4, 7, generator=g)
        out = torch.tanh(x @ self.a.T).sum(-1, keepdim=True) * self.b  # (4, 7)
        loss = ((out - y) ** 2).mean()
        return loss + (self.only_rank0**3).sum() if rank == 0 else loss


class _FakeLogger:
    def __init__(self):
        self.pending, self.written = {}, []

    def scalars(self, values, prefix=""):
        self.pending.update({prefix + k: v for k, v in values.items()})

    def write(self, step):
        self.written.append((step, dict(self.pending)))
        self.pending.clear()

    def close(self):
        pass


def _collectives(rank: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert distributed.init(torch.device("cpu")) == torch.device("cpu")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (rank, 2, rank == 0)
    assert distributed.rank_seed(7) == 7 + rank * distributed.SEED_STRIDE
    assert distributed.shard(Path(tmp) / "replay") == (Path(tmp) / "replay" if rank == 0 else Path(tmp) / "replay" / "rank-1")

    # rank 0's weights and buffers everywhere
    net = _Net(seed=100 + rank)
    distributed.broadcast_state(net)
    for (name, got), want in zip(net.state_dict().items(), _Net(seed=100).state_dict().values()):
        assert torch.equal(got, want), name
    distributed.check_in_sync(net)

    # the averaged gradient is the mean of the ranks' gradients, computed here for both ranks
    net.loss(rank).backward()
    distributed.average_gradients(net.parameters(), bucket_bytes=32)  # several small buckets
    grads = []
    for r in range(2):
        ref = _Net(seed=100)
        ref.loss(r).backward()
        grads.append({n: p.grad for n, p in ref.named_parameters()})
    for name in ("a", "b"):
        torch.testing.assert_close(dict(net.named_parameters())[name].grad, (grads[0][name] + grads[1][name]) / 2)
    torch.testing.assert_close(net.only_rank0.grad, grads[0]["only_rank0"] / 2)  # no gradient on rank 1 counts as zero
    assert net.unused.grad is None  # no gradient on any rank stays None, as in one process

    assert distributed.all_mean(torch.tensor([float(rank), 2.0])).tolist() == [0.5, 2.0]
    assert distributed.all_true(True) and not distributed.all_true(rank == 0)
    assert distributed.gather_objects(rank * 10) == ([0, 10] if rank == 0 else None)

    # rank 0 writes every rank's scalars, averaged over ranks and over the writes since the last sync
    fake = _FakeLogger()
    log = RankLogger(lambda: fake)
    assert (log.logger is fake) == (rank == 0)
    log.scalar("episode/return", rank + 1)
    log.write(3)
    log.scalars({"return": torch.tensor(10.0 * (rank + 1))}, prefix="episode/")
    log.write(5)
    log.scalar("train/loss", rank)
    log.sync(8)
    if rank == 0:
        assert fake.written == [(8, {"episode/return": (1 + 10 + 2 + 20) / 4, "train/loss": 0.5})]

    # weights that drift apart are caught on every rank
    with torch.no_grad():
        net.b[0] += rank
    with pytest.raises(RuntimeError, match="differ between ranks"):
        distributed.check_in_sync(net)
    distributed.shutdown()


def test_two_gloo_ranks_broadcast_average_gradients_and_log_the_mean(tmp_path):
    mp.spawn(_collectives, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)


def test_one_process_helpers_are_no_ops(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    net = _Net(seed=0)
    net.loss(0).backward()
    before = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
    assert distributed.init(torch.device("cpu")) == torch.device("cpu") and not torch.distributed.is_initialized()
    distributed.average_gradients(net.parameters())
    distributed.broadcast_state(net)
    distributed.check_in_sync(net)
    for n, p in net.named_parameters():
        assert (p.grad is None and before[n] is None) or torch.equal(p.grad, before[n])
    assert distributed.rank_seed(3) == 3 and distributed.shard(tmp_path) == tmp_path
    x = torch.randn(3)
    assert distributed.all_mean(x) is x and distributed.all_true(True) and distributed.gather_objects(5) == [5]


def test_bad_torchrun_variables_are_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        distributed.world_size()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 and WORLD_SIZE=2"):
        distributed.init(torch.device("cpu"))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RuntimeError, match="not initialised"):
        distributed.all_true(True)
    with pytest.raises(ValueError, match="--agent ppo does not train data-parallel"):
        distributed.require_one_process("--agent ppo")


# --------------------------------------------------------------------------- torchrun -m agents.cli train

FLAGS = [
    "--env",  # 8-step episodes: every rank's replay holds whole episodes (training waits for them) from the start
    "memory/recall-k1",
    "--env-options",
    "queries",
    "7",
    "--backbone",
    "s5",
    "--preset",
    "tiny",
    "--num-envs",
    "2",
    "--prefill",
    "16",
    "--batch-size",
    "2",
    "--seq-len",
    "8",
    "--train-ratio",
    "8",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--video-every",
    "-1",
    "--log-every",
    "16",
    "--checkpoint-every",
    "32",
    "--no-tensorboard",
    "--threads",
    "1",
    "--dreamer.horizon",
    "3",
]

# Resume under torchrun through the run loop itself, each rank writing what it loaded and where it ended.
RESUME_SCRIPT = """
import json, sys
from pathlib import Path
import tyro
from agents import checkpoint, distributed
from agents.config import TrainConfig
from agents.runs import build_dreamer
from agents.train import build

if __name__ == "__main__":  # env workers may start by forkserver, which imports this file again
    config = tyro.cli(TrainConfig, args=sys.argv[2:])
    loop = build(config)
    record = {"start_step": loop.counters["step"], "start": distributed.state_digest(loop.agent.module)}
    payload, path = checkpoint.load(loop.run_dir / "checkpoints")
    saved, _ = build_dreamer(loop.agent.config, loop.agent.device)
    saved.load_state_dict(payload["agent"])
    record.update(checkpoint=path.name, checkpoint_digest=distributed.state_digest(saved))
    loop.run()
    record.update(end_step=loop.counters["step"], updates=loop.counters["updates"], end=distributed.state_digest(loop.agent.module))
    Path(sys.argv[1], f"rank-{distributed.rank()}.json").write_text(json.dumps(record))
"""


def _torchrun(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    errors = "\n".join(line for line in proc.stderr.splitlines() if "[rank" in line or "memwm" in line)
    assert proc.returncode == 0, proc.stdout[-2000:] + errors[:8000]
    return proc


def test_torchrun_train_keeps_ranks_equal_and_resumes_both_from_rank0_checkpoint(tmp_path):
    run = tmp_path / "run"
    # `--` keeps torchrun from reading memwm's flags (its own --run-path would swallow --run)
    _torchrun(["-m", "agents.cli", "--", "train", *FLAGS, "--steps", "48", "--async-envs", "--run", str(run)])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000032.pt", "ckpt-000000048.pt"]
    assert list(run.glob("replay/ep-*.npz")) and list(run.glob("replay/rank-1/ep-*.npz"))  # a replay shard per rank
    assert not list(run.rglob("rank-1/*.pt")) and not (run / "replay" / "rank-1" / "metrics.jsonl").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "perf/env_steps_per_s" in r] == [16, 32, 48]  # one record per log point
    assert any("episode/return" in r for r in records) and any("train/loss" in r for r in records)

    out = tmp_path / "ranks"
    out.mkdir()
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    proc = _torchrun(["--", str(script), str(out), *FLAGS, "--steps", "80", "--run", str(run)])
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]
    assert proc.stderr.count("memwm: resuming") == 2  # both ranks said so
    for r in ranks:  # both loaded rank 0's newest checkpoint
        assert r["checkpoint"] == "ckpt-000000048.pt" and r["start_step"] == 48 and r["start"] == r["checkpoint_digest"]
        assert r["end_step"] == 80 and r["updates"] > 17
    assert ranks[0]["end"] == ranks[1]["end"] != ranks[0]["start"]  # trained, and still equal bit for bit


# --------------------------------------------------------------------------- torchrun -m agents.cli compare

COMPARE = dict(task="doors-keys-3", preset="tiny", steps=2, episodes=3, eval_episodes=2, batch_size=2, seq_len=16, device="cpu")


def test_torchrun_compare_splits_backbones_across_ranks_with_single_process_results(tmp_path):
    from agents.compare import run_compare as compare

    out = tmp_path / "two"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in COMPARE.items()]
    _torchrun(["-m", "agents.cli", "--", "compare", *flags, "--backbones", "rssm,s5", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert list(results["backbones"]) == ["rssm", "s5"] and not list(out.glob(".rank-*"))
    assert (out / "s5" / "model.pt").exists() and (out / "results.md").exists()
    torch.set_num_threads(1)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "data").symlink_to(out / "data")  # the same data set, not collected again
    alone = compare(**COMPARE, backbones="s5", out=tmp_path / "one")["backbones"]["s5"]  # s5 trained on rank 1 above
    assert results["backbones"]["s5"]["settings"] == alone["settings"]
    assert results["backbones"]["s5"]["probes"]["door_mse"] == pytest.approx(alone["probes"]["door_mse"], rel=1e-4)
    assert [r["loss"] for r in results["backbones"]["s5"]["curve"]] == pytest.approx([r["loss"] for r in alone["curve"]], rel=1e-4)
