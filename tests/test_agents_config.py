"""TrainConfig: layered defaults (preset, environment, saved run, flags), validation, YAML round trip, tyro flags."""

import dataclasses

import pytest

from agents import config as C
from agents.config import TrainConfig, resolve
from agents.ppo import PPOConfig
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
        (dict(train_ratio=-1.0), "train_ratio must be positive"),
        (dict(train_ratio=0.0), r"train_ratio must be positive \(replayed steps trained on per environment step; 0 would never train\)"),
        (dict(replay_capacity=10, seq_len=64), r"replay_capacity \(10\) must be at least seq_len \(64\)"),
        (dict(minutes=-1.0), "minutes must be >= 0"),
        (dict(minutes=float("nan")), "minutes must be >= 0, got nan"),
        (dict(video_every=-2), "video_every must be >= -1"),
        (dict(replay_event_share=1.5), r"replay_event_share is a share in \[0, 1\], got 1.5"),
        (dict(wm=WorldModelConfig(hidden=-3)), "wm.hidden must be positive, got -3"),
        (dict(wm=WorldModelConfig(dt_min=0.5, dt_max=0.1)), r"wm.dt_max \(0.1\) must be at least wm.dt_min \(0.5\)"),
        (dict(wm=WorldModelConfig(reward_bins=1)), "wm.reward_bins must be >= 2"),
        (dict(dreamer=dataclasses.replace(C.TRAIN_DREAMER, gamma=1.5)), r"dreamer.gamma is a share in \[0, 1\]"),
        (dict(dreamer=dataclasses.replace(C.TRAIN_DREAMER, actor_lr=0.0)), "dreamer.actor_lr must be positive"),
        (dict(dreamer=dataclasses.replace(C.TRAIN_DREAMER, horizon=0)), "dreamer.horizon must be positive"),
        (dict(ppo=dataclasses.replace(PPOConfig(), lr=-1e-3)), "ppo.lr must be positive"),
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


def _typed(args):
    """What `memwm train ARGS` resolves to: tyro's parse with the typed flags named, as the CLI does."""
    return resolve(_parse_config(args), typed=C.typed_fields(args))


def test_a_typed_flag_wins_over_the_task_window():
    assert resolve(TrainConfig(env="memory/distracting-100")).seq_len == 104  # the task's window ...
    assert _typed(["--env", "memory/distracting-100", "--seq-len", "32"]).seq_len == 32  # ... unless typed
    assert _typed(["--env", "memory/distracting-100", "--seq_len=32"]).seq_len == 32


def test_a_typed_value_equal_to_the_dataclass_default_still_wins():
    """32 is TrainConfig's seq_len, 8 its eval_episodes and 64 the default preset's wm.hidden: typed, they stay."""
    cfg = _typed(["--env", "minigrid/memory-s7", "--seq-len", "32", "--eval-episodes", "8", "--preset", "small", "--wm.hidden", "64"])
    assert (cfg.seq_len, cfg.eval_episodes, cfg.wm.hidden) == (32, 8, 64)
    assert cfg.wm.deter == WorldModelConfig.preset("small").deter  # the rest of the preset applies
    untyped = _typed(["--env", "minigrid/memory-s7", "--preset", "small"])
    assert (untyped.seq_len, untyped.eval_episodes, untyped.wm.hidden) == (64, 32, WorldModelConfig.preset("small").hidden)


@pytest.mark.parametrize(
    "args, fields",
    [
        (["--wm.hidden", "3", "--dreamer.actor-lr=1e-3"], {"wm.hidden", "dreamer.actor_lr"}),
        (["--no-tensorboard", "--wm.no-obs-norm", "--exact-resume"], {"tensorboard", "wm.obs_norm", "exact_resume"}),
        (["--seq_len", "8", "--env-options", "length", "16", "--ppo.no-norm-adv"], {"seq_len", "env_options", "ppo.norm_adv"}),
        (["--run", "--", "--steps"], {"run"}),  # after a bare `--`, values only
        ([], set()),
    ],
)
def test_typed_fields_reads_every_flag_form(args, fields):
    assert C.typed_fields(args) == fields


def test_every_flag_of_memwm_train_is_known_to_typed_fields(capsys):
    import re

    from agents.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = set(re.findall(r"--[a-z][a-z0-9._-]*", capsys.readouterr().out)) - {"--help"}
    assert shown == set(C.flag_fields())


def test_resume_keeps_a_typed_flag_and_the_saved_values_under_it():
    saved = resolve(TrainConfig(env="memory/distracting-100", batch_size=4)).to_dict()
    assert saved["seq_len"] == 104
    cfg, sources = C.resolve_sources(_parse_config(["--seq-len", "32"]), saved, C.typed_fields(["--seq-len", "32"]))
    assert (cfg.env, cfg.seq_len, cfg.batch_size) == ("memory/distracting-100", 32, 4)
    assert sources["seq_len"] == "flag" and sources["batch_size"] == sources["env"] == "saved"


def test_config_yaml_records_where_each_value_came_from(tmp_path):
    args = ["--env", "memory/distracting-100", "--steps", "77"]
    cfg, sources = C.resolve_sources(_parse_config(args), None, C.typed_fields(args))
    assert sources["steps"] == sources["env"] == "flag" and sources["seq_len"] == sources["eval_episodes"] == "task"
    assert sources["wm.hidden"] == "preset" and sources["train_ratio"] == sources["wm.obs_norm"] == "default"
    C.save_yaml(cfg, tmp_path / "config.yaml", sources)
    assert C.load_yaml(tmp_path / "config.yaml")["sources"] == sources
    assert C.load_sources(tmp_path / "config.yaml") == sources
    assert TrainConfig.from_dict(C.load_yaml(tmp_path / "config.yaml")) == cfg
    C.save_yaml(cfg, tmp_path / "old.yaml")  # a config.yaml from before sources were recorded
    assert "sources" not in C.load_yaml(tmp_path / "old.yaml") and C.load_sources(tmp_path / "old.yaml") == {}
    assert TrainConfig.from_dict(C.load_yaml(tmp_path / "old.yaml")) == cfg


def test_memwm_train_writes_the_sources_and_a_resume_keeps_its_typed_flags(tmp_path, monkeypatch):
    """Through the CLI: the typed flags reach the run's config.yaml, on the first run and on a resume."""
    import agents.train
    from agents.cli import main

    def build_only(config, typed):  # resolve and write config.yaml, train nothing
        loop = agents.train.build(config, typed)
        loop.agent.close()
        loop.lock.release()

    monkeypatch.setattr(agents.train, "train", build_only)
    run = str(tmp_path / "run")
    main(["train", "--env", "memory/distracting-100", "--seq-len", "32", "--run", run, "--num-envs", "1", "--no-tensorboard"])
    sources = C.load_sources(tmp_path / "run" / "config.yaml")
    assert sources["seq_len"] == "flag" and sources["eval_episodes"] == "task" and sources["wm.hidden"] == "preset"
    main(["train", "--run", run, "--batch-size", "4"])
    saved = C.load_yaml(tmp_path / "run" / "config.yaml")
    assert (saved["env"], saved["seq_len"], saved["batch_size"], saved["num_envs"]) == ("memory/distracting-100", 32, 4, 1)
    assert saved["sources"]["seq_len"] == "saved" and saved["sources"]["batch_size"] == "flag"


def test_every_number_field_has_a_range_in_validate():
    """A new size, count, rate or share of TrainConfig or its groups gets a range in RANGES (or says why it has none)."""
    numbers = {name for name, value in C._flat(TrainConfig()).items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    assert numbers == set(C.RANGES) | set(C.UNBOUNDED)


@pytest.mark.parametrize("preset", ["tiny", "small", "medium", "large"])
def test_the_defaults_of_every_preset_and_task_are_valid(preset):
    for env_id in ["memory/distracting-100", "minigrid/memory-s7", "icrl/bandit-10", "gym:Pendulum-v1"]:
        C.validate(resolve(TrainConfig(env=env_id, preset=preset)))
