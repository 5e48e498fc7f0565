"""`memwm compare` (agents/compare.py and its parts agents/compare_*.py) and the S4WM probes (world_models/probes.py,
metrics.py): the batches, the probes against direct computations, the report, and a tiny compare end to end."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from agents import compare as C
from agents import compare_data, compare_report, compare_training
from world_models import metrics as M
from world_models import probes as P
from world_models.saving import load_world_model

IMAGE_SPACE = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
ACT_SPACE = gym.spaces.Discrete(3)
CPU = torch.device("cpu")


def random_episode(rng: np.random.Generator, T: int, query: int, door_steps=(), reward_step: int | None = None):
    is_first = np.zeros(T, bool)
    is_first[0] = True
    phase = np.zeros(T, np.int8)
    phase[query:] = 1
    door = np.zeros(T, bool)
    door[list(door_steps)] = True
    reward = np.zeros(T, np.float32)
    reward_mask = np.zeros(T, bool)
    if reward_step is not None:
        reward[reward_step] = rng.choice([-1.0, 1.0])
        reward_mask[reward_step] = True
    return {
        "image": rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8),
        "action": rng.integers(0, 3, T),
        "reward": reward,
        "is_first": is_first,
        "is_last": np.zeros(T, bool),
        "is_terminal": np.zeros(T, bool),
        "phase": phase,
        "door_visible": door,
        "reward_decided": reward_mask,
        "cue": np.array(rng.integers(2)),
        "keys": np.arange(T + 1),
    }  # per-episode arrays, as envs.collect writes


@pytest.fixture(scope="module")
def tiny_s5():
    torch.manual_seed(0)
    return world_models.make("s5", IMAGE_SPACE, ACT_SPACE, world_models.WorldModelConfig.preset("tiny")).eval()


def test_probe_kind_maps_each_memory_family():
    assert compare_data.probe_kind("memory/rooms-4") == "imagination"
    assert compare_data.probe_kind("memory/teleport") == "imagination"
    assert compare_data.probe_kind("memory/distracting-100") == "reward"
    assert compare_data.probe_kind("memory/doors-keys-3") == "doors"
    with pytest.raises(ValueError, match="no compare probe for 'memory/other'"):
        compare_data.probe_kind("memory/other")


def test_horizon_bins_average_the_steps_of_each_bin():
    per_step = list(np.random.default_rng(0).random(37))
    bins = M.horizon_bins(per_step, bins=5)
    assert [b["start"] for b in bins][0] == 1 and bins[-1]["end"] == 37
    assert all(a["end"] + 1 == b["start"] for a, b in zip(bins, bins[1:]))  # the bins tile 1..37
    for b in bins:
        assert b["mse"] == pytest.approx(np.mean(per_step[b["start"] - 1 : b["end"]]))
    assert len(M.horizon_bins(per_step[:3], bins=10)) == 3  # never more bins than steps


def test_sequence_batches_start_at_episode_starts_and_repeat_for_the_same_seed():
    rng = np.random.default_rng(1)
    eps = [random_episode(rng, T, 3) for T in (5, 7, 6)]
    a = [next(compare_data.sequence_batches(eps, 4, 9, ACT_SPACE, CPU, seed=3)) for _ in range(1)][0]
    b = next(compare_data.sequence_batches(eps, 4, 9, ACT_SPACE, CPU, seed=3))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["action"], b["action"])
    assert a["image"].shape == (4, 9, 64, 64, 3)
    lengths = {len(ep["action"]) for ep in eps}
    for row in range(4):
        assert a["is_first"][row, 0]
        # each row is an episode from its start, then the start of another one (flagged is_first)
        second = int(a["is_first"][row, 1:].nonzero()[0, 0]) + 1
        assert second in lengths
        first = next(ep for ep in eps if torch.equal(torch.as_tensor(ep["image"][:second]), a["image"][row, :second]))
        assert len(first["action"]) == second


def test_sequence_batches_shorter_than_the_episodes_are_windows_inside_one_episode():
    rng = np.random.default_rng(5)
    eps = [random_episode(rng, T, 3) for T in (8, 12)]
    batch = next(compare_data.sequence_batches(eps, 6, 5, ACT_SPACE, CPU, seed=0))
    assert batch["image"].shape == (6, 5, 64, 64, 3) and batch["is_first"][:, 0].all()
    for row in batch["image"].numpy():
        assert any(np.array_equal(row, ep["image"][o : o + 5]) for ep in eps for o in range(len(ep["action"]) - 4))


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    rng = np.random.default_rng(6)
    eps = [random_episode(rng, 6, 3) for _ in range(4)]
    config = world_models.WorldModelConfig.preset("tiny")

    def run(steps, folder):
        torch.manual_seed(0)
        wm = world_models.make("s5", IMAGE_SPACE, ACT_SPACE, config)
        torch.manual_seed(1)
        out = compare_training.train_world_model(
            wm,
            compare_data.sequence_batches(eps, 2, 6, ACT_SPACE, CPU, seed=0),
            steps,
            1e-3,
            "t",
            folder,
            log_every=1,
            save_every=2,
            settings={"s": 1},
        )
        return wm, out

    straight, curve = run(4, tmp_path / "straight")
    run(2, tmp_path / "stopped")  # "interrupted" after 2 steps
    resumed, resumed_curve = run(4, tmp_path / "stopped")
    assert [r["step"] for r in resumed_curve["curve"]] == [0, 1, 2, 3]
    assert [r["loss"] for r in resumed_curve["curve"]] == [r["loss"] for r in curve["curve"]]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_imagination_probe_mse_per_step_equals_a_direct_computation(tiny_s5):
    rng = np.random.default_rng(2)
    eps = [random_episode(rng, 10, 4) for _ in range(2)] + [random_episode(rng, 12, 6)]
    got = P.run_probes(tiny_s5, "imagination", eps, ACT_SPACE, CPU)
    # reference: each episode alone, observe its context, img_step the prior with its actions, decode, MSE
    errs: dict[int, list[float]] = {}
    with torch.no_grad():
        for ep in eps:
            T, q = len(ep["action"]), int(np.flatnonzero(ep["phase"])[0])
            img = torch.as_tensor(ep["image"])[None]
            act = torch.eye(3)[torch.as_tensor(ep["action"])][None]
            first = torch.as_tensor(ep["is_first"])[None]
            _, _, _, state = tiny_s5.observe({"image": img[:, :q]}, act[:, :q], first[:, :q], sample=False)
            for k in range(1, T - q + 1):
                state, feat, _ = tiny_s5.img_step(state, act[:, q - 2 + k], sample=False)
                pred = tiny_s5.decode(feat)["image"]
                errs.setdefault(k, []).append(float(((pred - img[:, q - 1 + k].float() / 255) ** 2).mean()))
    expected = [np.mean(errs[k]) for k in sorted(errs)]
    assert len(got["mse_per_step"]) == 6
    np.testing.assert_allclose(got["mse_per_step"], expected, rtol=1e-4)
    assert got["mse_bins"][0]["mse"] == pytest.approx(expected[0], rel=1e-4)


def test_reward_probe_classifies_the_decided_steps_to_the_nearest_paid_reward(tiny_s5, monkeypatch):
    rng = np.random.default_rng(3)
    eps = [random_episode(rng, 10, 4, reward_step=s) for s in (2, 8, 9, 9)]  # one decided inside the context
    for ep, r in zip(eps, (1.0, -1.0, 1.0, -1.0)):
        ep["reward"][ep["reward_decided"]] = r
    truth = torch.as_tensor(np.stack([ep["reward"] for ep in eps]))

    # a reward head with the right sign except on the last episode: inference 3/4 right, imagination 2/3
    monkeypatch.setattr(tiny_s5, "reward", lambda feat, actions: truth * torch.tensor([1.0, 0.9, 0.2, -0.5])[:, None])
    got = P.run_probes(tiny_s5, "reward", eps, ACT_SPACE, CPU)
    assert got["reward_acc_inference"] == pytest.approx(3 / 4)
    assert got["reward_acc_imagination"] == pytest.approx(2 / 3)


def test_reward_accuracy_of_a_constant_guess_is_the_share_of_its_class():
    true = np.random.default_rng(7).choice([-1.0, 1.0], 200)
    assert M.reward_accuracy(np.full(200, 0.004), true) == pytest.approx(np.mean(true == 1.0))
    assert M.reward_accuracy(-0.3 * true, true) == 0.0
    assert M.reward_accuracy(np.array([0.6, 0.1]), np.array([1.0, 1.0])) == 0.5  # one value paid: 0 is the alternative


def test_door_probe_averages_the_imagined_door_frames_only(tiny_s5):
    rng = np.random.default_rng(4)
    eps = [random_episode(rng, 10, 4, door_steps=(1, 6, 8)) for _ in range(2)]
    got = P.run_probes(tiny_s5, "doors", eps, ACT_SPACE, CPU)
    # the door frames after the context are imagination steps 3 and 5 (frames 6 and 8)
    assert got["door_mse"] == pytest.approx(np.mean([got["mse_per_step"][2], got["mse_per_step"][4]]), rel=1e-5)


def test_results_table_has_one_row_per_backbone():
    run = {
        "speed": {"params": 1000, "train_step_ms": 1.5, "imagine_ms_per_step": 0.2},
        "probes": {
            "reward_acc_inference": 1.0,
            "reward_acc_imagination": 0.5,
            "query_mse": 0.01,
            "mse_bins": [{"start": 1, "end": 2, "mse": 0.01}],
        },
        "curve": [{"step": 0, "loss": 2.0}],
    }
    results = {"task": "memory/distracting-100", "probe": "reward", "settings": {"steps": 1}, "backbones": {"rssm": run, "s5": run}}
    lines = [line for line in compare_report.results_table(results).splitlines() if line.startswith("| ")]
    assert len(lines) == 3 and lines[1].startswith("| rssm |") and lines[2].startswith("| s5 |")
    assert "50.0%" in lines[2]


def test_settings_saved_before_a_setting_existed_match_its_old_value():
    new = {"steps": 3, "reward_scale": 1.0}
    assert C.same_settings({"steps": 3}, new)  # a run made before --reward-scale trained with 1.0
    assert not C.same_settings({"steps": 3}, {**new, "reward_scale": 100.0})
    assert not C.same_settings({"steps": 4, "reward_scale": 1.0}, new) and not C.same_settings(None, new)


def test_reward_data_keeps_the_episodes_of_one_arm_so_the_reward_follows_the_cue(tmp_path):
    data = compare_data.ensure_data("memory/distracting-8", tmp_path, 5, 3, seed=0, policy="random")
    assert [len(data["train"]), len(data["eval"])] == [5, 3]
    for ep in data["train"] + data["eval"]:
        decided = int(np.flatnonzero(ep["reward_decided"])[0])
        assert decided == len(ep["action"]) - 1 and np.argmax(ep["action"][decided - 1]) == compare_data.REWARD_ARM == 0
        assert ep["reward"][decided] == (1.0 if int(ep["cue"]) == 0 else -1.0)  # arm 0 is red: +1 iff the cue is red
    assert json.loads((tmp_path / "meta.json").read_text())["arm"] == 0
    assert P.junction_arm({**data["train"][0], "action": np.argmax(data["train"][0]["action"], -1)}) == 0  # int actions


def test_compare_rejects_unknown_backbones_and_budgets(tmp_path):
    with pytest.raises(ValueError, match="unknown backbones \\['gru'\\]"):
        C.run_compare(task="distracting-100", backbones="s5,gru", out=tmp_path)
    with pytest.raises(ValueError, match="--steps must be at least 1, got 0"):
        C.run_compare(task="distracting-100", backbones="s5", steps=0, out=tmp_path)
    with pytest.raises(ValueError, match="unknown compare task 'rooms-3'"):
        C.run_compare(task="rooms-3", out=tmp_path)
    with pytest.raises(ValueError, match="--reward-scale must be > 0, got 0"):
        C.run_compare(task="distracting-100", backbones="s5", reward_scale=0.0, out=tmp_path)


TINY = dict(
    task="doors-keys-3",
    backbones="rssm,transformer,s5",
    preset="tiny",
    steps=2,
    episodes=3,
    eval_episodes=2,
    batch_size=2,
    seq_len=16,
    reward_scale=7.0,
)


@pytest.fixture(scope="module")
def tiny_compare(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return out, C.run_compare(**TINY, out=out)


def test_tiny_compare_writes_every_file_with_finite_values(tiny_compare):
    out, results = tiny_compare
    names = TINY["backbones"].split(",")
    for f in ("results.json", "results.md", "mse_vs_horizon.png", "train_loss.png", "speed.png", "door_mse.png"):
        assert (out / f).stat().st_size > 0, f
    for name in names:
        for f in ("model.pt", "metrics.json", "imagination.gif"):
            assert (out / name / f).stat().st_size > 0, f"{name}/{f}"
    saved = json.loads((out / "results.json").read_text())
    assert saved["probe"] == "doors" and list(saved["backbones"]) == names
    for name in names:
        m = saved["backbones"][name]
        values = [
            m["probes"]["door_mse"],
            m["probes"]["query_mse"],
            *m["probes"]["mse_per_step"],
            m["speed"]["train_step_ms"],
            m["speed"]["imagine_ms_per_step"],
            *(r["loss"] for r in m["curve"]),
        ]
        assert np.all(np.isfinite(values)) and m["speed"]["params"] > 0
        assert m["speed"]["train_wall_s"] > 0 and m["speed"]["load"] >= 0 and all("load" in r for r in m["curve"])
        assert load_world_model(out / name / "model.pt", "cpu").wm.config.reward_scale == 7.0  # compare's loss weight reached the model
    rows = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ") and "backbone" not in line]
    assert [r.split("|")[1].strip() for r in rows] == names
    # the parameter counts match across backbones (the preset sizes them to the RSSM's)
    params = [saved["backbones"][n]["speed"]["params"] for n in names]
    assert max(params) / min(params) < 1.15


def test_compare_rerun_reuses_the_data_and_finished_backbones(tiny_compare):
    out, results = tiny_compare
    stamps = {p: p.stat().st_mtime_ns for p in [*out.glob("*/model.pt"), *out.glob("data/*/*.npz")]}
    again = C.run_compare(**{**TINY, "backbones": "s5"}, out=out)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained or recollected
    assert again["backbones"]["s5"] == results["backbones"]["s5"]
    assert list(again["backbones"]) == ["s5"]
    # probes that changed since a backbone was trained are run again on its saved model, without training
    metrics = json.loads((out / "s5" / "metrics.json").read_text())
    (out / "s5" / "metrics.json").write_text(json.dumps({**metrics, "probe_version": 1, "probes": {}}))
    reprobed = C.run_compare(**{**TINY, "backbones": "s5"}, out=out)
    new, old = reprobed["backbones"]["s5"]["probes"], results["backbones"]["s5"]["probes"]
    assert new["door_mse"] == pytest.approx(old["door_mse"], rel=1e-5)
    np.testing.assert_allclose(new["mse_per_step"], old["mse_per_step"], rtol=1e-5)
    assert (out / "s5" / "model.pt").stat().st_mtime_ns == stamps[out / "s5" / "model.pt"]
    with pytest.raises(ValueError, match="holds a data set for"):
        C.run_compare(**{**TINY, "episodes": 4}, out=out)
