"""TrainConfig: layered defaults (preset, environment, saved run, flags), validation, YAML round trip, tyro flags."""

import dataclasses

import pytest

from agents import config as C
from agents.config import TrainConfig, resolve
from world_models import WorldModelConfig


def _parse_config(args):
    """The TrainConfig tyro reads from `memwm train ARGS` (the subcommand's flags are TrainConfig's fields)."""
    import tyro

    return tyro.cli(TrainConfig, args=args)


def test_preset_sets_the_world_model_sizes_and_given_fields_win():
    cfg = resolve(_parse_config(["--env", "minigrid/memory-s7", "--preset", "small", "--wm.cnn-depth", "12", "--steps", "77"]))
    small = C.train_wm_config("small")
    assert cfg.wm == dataclasses.replace(small, cnn_depth=12) and cfg.wm.hidden == WorldModelConfig.preset("small").hidden
    assert cfg.steps == 77 and cfg.env == "minigrid/memory-s7" and cfg.preset == "small"


def test_no_arguments_is_the_embedded_default_run():
    cfg = resolve(_parse_config([]))
    assert cfg.env == TrainConfig().env and cfg.wm == C.train_wm_config(TrainConfig().preset)
    assert cfg.run_dir.parts[0] == "runs" and C.EMBEDDED_RUN["minutes"] < 10


def test_environment_defaults_apply_unless_given(monkeypatch):
    monkeypatch.setitem(C.ENV_DEFAULTS, "memory/distracting-1", {"train_ratio": 7.0, "dreamer.horizon": 5, "wm.hidden": 48})
    cfg = resolve(TrainConfig(env="memory/distracting-16"))
    assert (cfg.train_ratio, cfg.dreamer.horizon, cfg.wm.hidden) == (7.0, 5, 48)
    given = TrainConfig(env="memory/distracting-16", train_ratio=3.0)
    assert resolve(given).train_ratio == 3.0


def test_resume_keeps_the_saved_config_under_given_flags():
    saved = resolve(TrainConfig(env="minigrid/memory-s7", preset="small", batch_size=4, seed=3)).to_dict()
    cfg = resolve(TrainConfig(steps=999), saved)
    assert cfg.env == "minigrid/memory-s7" and cfg.preset == "small" and cfg.batch_size == 4 and cfg.seed == 3
    assert cfg.wm == C.train_wm_config("small") and cfg.steps == 999


def test_yaml_round_trip(tmp_path):
    cfg = resolve(TrainConfig(env="gym:Pendulum-v1", env_options={"g": 9.0}, preset="small"))
    C.save_yaml(cfg, tmp_path / "config.yaml")
    assert TrainConfig.from_dict(C.load_yaml(tmp_path / "config.yaml")) == cfg


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(backbone="lstm"), "unknown backbone 'lstm'; known: rssm"),
        (dict(batch_size=0), "batch_size must be positive, got 0"),
        (dict(train_ratio=-1.0), "train_ratio must be >= 0"),
        (dict(replay_capacity=10, seq_len=64), "replay_capacity"),
        (dict(minutes=-1.0), "minutes must be >= 0"),
    ],
)
def test_bad_values_raise_value_errors_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        resolve(TrainConfig(**change))


def test_unknown_fields_in_saved_configs_or_overrides_are_named():
    with pytest.raises(ValueError, match="unknown config field wm.hiden"):
        TrainConfig.from_dict({"wm": {"hiden": 3}})
    with pytest.raises(ValueError, match="unknown config field dreamer.gama"):
        C.apply_overrides(TrainConfig(), {"dreamer.gama": 0.9})


def test_learning_settings_are_the_same_for_every_task():
    """Only what a task defines (its replay window, evaluation episodes, action repeat) differs between tasks."""
    task_fields = {"seq_len", "eval_episodes", "env", "run_dir"}
    ids = [
        "pomdp/cartpole-positions",
        "memory/distracting-100",
        "minigrid/memory-s7",
        "dmc/cartpole-swingup",
        "icrl/bandit-10",
        "gym:Pendulum-v1",
        "memory-maze/9x9",
    ]
    configs = [resolve(TrainConfig(env=i)) for i in ids]
    for cfg in configs[1:]:
        a, b = configs[0].to_dict(), cfg.to_dict()
        differ = {k for k in a if a[k] != b[k]} - task_fields
        assert not differ, (cfg.env, differ)
    assert all(c.wm.obs_norm and c.dreamer == C.TRAIN_DREAMER for c in configs)
    import envs

    goals = [c for c in configs if envs.spec(c.env).goal]
    assert goals and all(c.eval_episodes >= 32 for c in goals)


def test_replay_window_follows_the_registry_memory_horizon():
    import envs

    for env_id in ["memory/distracting-100", "memory/distracting-400", "memory/recall-k16", "memory/teleport", "pomdp/cartpole-positions"]:
        horizon = envs.spec(env_id).memory_horizon
        cfg = resolve(TrainConfig(env=env_id))
        assert cfg.seq_len >= min(horizon, C.MAX_WINDOW) and cfg.seq_len % 8 == 0 and cfg.seq_len >= C.MIN_WINDOW
        assert cfg.eval_episodes == envs.spec(env_id).eval_episodes
    assert C.window_for(None) == C.MIN_WINDOW and C.window_for(10_000) == C.MAX_WINDOW and C.window_for(102) == 104
