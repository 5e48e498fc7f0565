"""The one config of a training run: a typed dataclass that tyro turns into `memwm train`'s flags.

Values come in layers, later ones winning:
1. the defaults below (which are the embedded default run of `memwm train` with no arguments);
2. the world-model preset (`--preset`) and the per-environment defaults (`ENV_DEFAULTS`);
3. when resuming, the run's saved `config.yaml`;
4. the flags typed on the command line, always (`typed_fields` reads their names from the
   arguments, since tyro does not say which flags were typed), so `--seq-len 32` stays 32 on a task
   whose window is longer, even though 32 is also the dataclass default.
A Python caller that passes no typed names gets the fields that differ from layer 1 counted as given.
`config.yaml` records where each value came from under `sources:` (field -> default, embedded,
preset, task, action space, saved, flag or given), and `validate` checks every size, count, rate and share.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Collection, Mapping
from typing import Any, Literal, Union

import yaml

from agents.dreamer import DreamerConfig
from agents.ppo import PPOConfig
from world_models import BACKBONES, WorldModelConfig

DEFAULT_PRESET = "tiny"
# `memwm train` with no arguments at all: the defaults below plus a wall-clock budget short enough for
# a first try on a laptop CPU (training, the evaluations and the pictures come on top). The task is
# pomdp/cartpole-positions: CartPole observing positions only, so the velocities must come from
# memory (a random policy drops the pole within a few dozen steps; the best return is 500). What it
# reaches is in benchmarks/results/README.md.
EMBEDDED_RUN = {"minutes": 8.0}
# Flags that leave it the embedded default run (another seed, folder, device or thread count).
EMBEDDED_RUN_EXTRAS = ("seed", "run", "device", "threads")


# The one set of learning defaults of `memwm train`, for every task. Short CPU runs take learning
# rates above DreamerV3's (which are tuned for millions of steps on large models), and the
# reconstruction terms are normalised by their running size (WorldModelConfig.obs_norm) so that
# one sparse reward per episode is not drowned by a loss summed over every pixel.
# The reward head reads the features before a step and the action taken (WorldModelConfig.reward_input),
# on features standardised by running statistics (feature_norm), from a random output layer
# (reward_head_init): with DreamerV3's head, a reward that is a product of the action and a remembered
# symbol is never learned, and the policy has nothing to learn from (benchmarks/results/reward-link-recall-k4/).
# Chosen by a paired ablation: benchmarks/results/ablate-recall-k8/ (the records at 9fb3cd7).
# Evaluation acts from the posterior's mode as well as the actor's (act_posterior="eval_mode"): a posterior
# that holds the observation only in part hands a sampled latent that sometimes names another observation,
# and the same checkpoints play better from its mode on every seed (benchmarks/results/eval-posterior-recall-k8/);
# collecting experience still samples it, as DreamerV3 does.
# The actor also learns from every action's one-step imagined value (DreamerConfig.all_actions), as a mirror-descent
# step (all_actions_temperature): REINFORCE's gradient dies where an actor has pushed the right action below its unimix
# floor, and count-16's slow seed then named one count for every higher one while imagination ranked the right one
# first (benchmarks/results/answers-count-16/). Chosen by paired ablations: benchmarks/results/ablate-count-16/ (the
# records at 8981396), ablate-recall-k8/, ablate-distracting-100/ and ablate-cartpole-positions/ (6065475).
# It acts only where that failure is (all_actions_below): at the starts where the actor's probability of the action
# imagination ranks first is below a tenth of the uniform policy's. Everywhere, it slowed cartpole-positions' early
# learning, where the one-step Q is mostly the critic's first guess, past make run's 8 minutes on a slower CPU; gated,
# the bar on 3 seeds of 3 there against 1 (benchmarks/results/ablate-cartpole-positions/, the records at 1afe6dc).
TRAIN_DREAMER = DreamerConfig(
    wm_lr=1e-3,
    actor_lr=3e-4,
    critic_lr=3e-4,
    act_posterior="eval_mode",
    all_actions=1.0,
    all_actions_temperature=0.05,
    all_actions_below=0.1,
)
# The representation loss weighs a tenth of DreamerV3's (rep_scale): at 0.1 a posterior that sees one small
# observation holds it only in part, its KL at the free-bits floor, and takes the rest in abruptly late in
# training, when the actor loses its inputs and the evaluation falls; at 0.01 it holds the observation from
# early on. Chosen by a paired ablation: benchmarks/results/ablate-recall-k8/ (the records at fee4bbc).
TRAIN_WM = {"obs_norm": True, "reward_input": "action", "feature_norm": True, "reward_head_init": "torch", "rep_scale": 0.01}


def train_wm_config(preset: str) -> WorldModelConfig:
    """The world-model config of a training run at `preset`: the preset's sizes and the training defaults."""
    return WorldModelConfig.preset(preset, **TRAIN_WM)


@dataclass(frozen=True)
class TrainConfig:
    """`memwm train`: train a Dreamer agent; with no arguments, a short memory-task run that fits a laptop CPU."""

    env: str = "pomdp/cartpole-positions"  # environment id (`memwm envs` lists them)
    env_options: dict[str, Union[int, float, bool, str]] = field(default_factory=dict)  # constructor options of the env, e.g. length 16
    backbone: str = "s5"  # world-model sequence backbone: rssm, transformer, s4, s5, mamba
    preset: Literal["tiny", "small", "medium", "large"] = DEFAULT_PRESET  # world-model sizes
    steps: int = 1_000_000  # environment steps to train for (a resume continues up to this); --minutes also stops it
    minutes: float = 0.0  # also stop after this much wall-clock time (0: no limit); running again resumes
    run: str = ""  # run folder; "" = runs/<env>-<backbone>-<seed>
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_envs: int = 4  # parallel environments while acting
    async_envs: bool = False  # one process per environment (worth it when stepping the env is slow)
    train_ratio: float = 32.0  # replayed steps trained on per environment step
    prefill: int = 2_000  # environment steps of random actions before training starts
    # sequences per update: on a CPU an update costs in proportion to its batch, so a small batch gives
    # more updates per minute (DreamerV3's 16 suits a GPU, where a larger batch costs little more)
    batch_size: int = 8
    seq_len: int = 32  # steps per sequence
    replay_capacity: int = 200_000  # steps kept in memory (images are 12 KiB a step)
    replay_from_starts: float = 0.0  # share of replayed sequences that begin at an episode start (the rest anywhere)
    replay_event_share: float = (
        0.5  # share of replayed sequences placed to hold a nonzero reward or a termination, with the steps before it
    )
    # of the sequences placed at an event, the share placed at a termination: where every step is rewarded (CartPole's
    # +1) every step is an event, and a failure is as rare among them as among all steps. 0.5 stops CartPole's late
    # fall in a paired ablation (benchmarks/results/ablate-cartpole-positions/, the records at c1adf9b), but learning
    # settings are every task's (no per-task tuning), and on recall-k8, whose rewarded steps outnumber its windows'
    # reach, it moves the windows towards episodes' ends and the late evaluations fall on 3 seeds of 3
    # (benchmarks/results/ablate-recall-k8/, the records at e61feb4): 0 stays the default.
    replay_terminal_share: float = 0.0
    replay_whole_episodes: bool = True  # a sequence never cuts an episode it can hold whole (it starts at the episode's first step)
    # a replayed sequence that starts mid-episode starts from the world-model state the actor acted from, stored with
    # every step (DreamerV3's replay context; recurrent backbones: a Transformer's key/value cache is too big to store)
    # Chosen by a paired ablation: benchmarks/results/ablate-cartpole-positions/ (the records at 1deb05b).
    replay_context: bool = True
    eval_every: int = 2_500  # environment steps between evaluations (0: only at the end)
    eval_episodes: int = 8  # episodes per evaluation (goal tasks: at least 32, from the environment's entry)
    video_every: int = 10_000  # environment steps between videos (0: only at the end; -1: never)
    log_every: int = 500  # environment steps between logged training scalars
    checkpoint_every: int = 2_500  # environment steps between checkpoints
    # restart every episode at each checkpoint, so that a resumed run equals the run that never stopped
    # (the unfinished episodes are dropped)
    exact_resume: bool = False
    threads: int = 0  # torch CPU threads; 0 = torch's default
    precision: Literal["32", "bf16"] = (
        "32"  # bf16: autocast the forward passes to bfloat16 (as DreamerV3); fast only with bf16 units (CPU avx512_bf16/AMX, recent GPUs)
    )
    # torch.compile the learner's dense networks (`Dreamer.compile_networks`): the same model and updates up to float
    # rounding, compiled at the first update. Measured on a CPU only, where it does not pay: benchmarks.throughput
    # --compile (benchmarks/results/throughput-vs-sheeprl/); no GPU has measured it yet. Off.
    compile: bool = False
    tensorboard: bool = True
    wm: WorldModelConfig = field(default_factory=lambda: train_wm_config(DEFAULT_PRESET))
    dreamer: DreamerConfig = field(default_factory=lambda: TRAIN_DREAMER)
    # the learner, and the settings of recurrent PPO (agents/ppo.py) when it is ppo
    agent: Literal["dreamer", "ppo"] = "dreamer"
    ppo: PPOConfig = field(default_factory=PPOConfig)

    @property
    def run_dir(self) -> Path:
        if self.run:
            return Path(self.run)
        return Path("runs") / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', self.env)}-{self.backbone}-{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) dict such as a saved config.yaml; unknown keys are an error."""
        return _from_dict(cls, data, "")


# What a task defines comes from its entry in the environment registry (`envs.spec(id)`): the
# replay window follows its memory horizon, the evaluation episodes are its own. Learning rates,
# loss weights, train ratio and return normalisation are the same for every task.
MIN_WINDOW, MAX_WINDOW = 32, 512  # replay windows: short enough to batch, long enough to learn dynamics


def window_for(memory_horizon: int | None) -> int:
    """The replay window (seq_len) of a task: its memory horizon plus two steps, in multiples of 8,
    within [MIN_WINDOW, MAX_WINDOW]; MIN_WINDOW when the horizon is unknown."""
    if memory_horizon is None:
        return MIN_WINDOW
    return int(min(MAX_WINDOW, max(MIN_WINDOW, -(-(memory_horizon + 2) // 8) * 8)))


# Per-task exceptions, by id prefix (every matching prefix applies, longer ones over shorter ones),
# for what the registry's facts do not settle.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    # The episode bound of MiniGrid Memory is a timeout: a policy that walks the corridor makes its
    # choice 10-40 steps after seeing the object, and a shorter window gives more updates per step.
    "minigrid/memory-": {"seq_len": 64},
}


def env_defaults(env: str) -> dict[str, Any]:
    """The per-task settings of `env`: from its registry facts, then the matching ENV_DEFAULTS entries, the longest last."""
    import envs

    spec = envs.spec(env)
    out: dict[str, Any] = {"seq_len": window_for(spec.memory_horizon), "eval_episodes": spec.eval_episodes}
    for prefix in sorted((p for p in ENV_DEFAULTS if env.startswith(p)), key=len):
        out.update(ENV_DEFAULTS[prefix])
    return out


def layered_defaults(env: str, preset: str) -> TrainConfig:
    """Layer 2: the defaults with the preset's world-model sizes and the environment's defaults."""
    base = TrainConfig(env=env, preset=preset, wm=train_wm_config(preset))
    return apply_overrides(base, env_defaults(env))


def fit_action_space(config: TrainConfig, act_space, sources: Mapping[str, str] | None = None) -> tuple[TrainConfig, dict[str, str]]:
    """The config for the environment's action space, and where each value came from: the all-actions policy
    gradient (DreamerConfig.all_actions) enumerates the actions of one discrete choice (ActionCodec.enumerable), so
    on any other space a weight from the defaults becomes 0 (source "action space") and a typed one is refused
    (ValueError)."""
    from agents.actions import ActionCodec

    sources = dict(sources or {})
    if not config.dreamer.all_actions or ActionCodec(act_space).enumerable:
        return config, sources
    if sources.get("dreamer.all_actions") in ("flag", "given"):
        raise ValueError(f"--dreamer.all-actions needs a Discrete action space; {config.env} acts in {act_space}")
    return apply_overrides(config, {"dreamer.all_actions": 0.0}), {**sources, "dreamer.all_actions": "action space"}


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Replace fields named "field" or "wm.field" / "dreamer.field"; unknown names are an error."""
    flat, nested = {}, {group: {} for group in GROUPS}
    for name, value in overrides.items():
        group, _, sub = name.partition(".")
        if sub:
            if group not in nested:
                raise ValueError(f"unknown config group {group!r} in {name!r}; known: {', '.join(GROUPS)}")
            nested[group][sub] = value
        else:
            flat[name] = value
    config = _replace(config, flat, "")
    for group, values in nested.items():
        if values:
            config = dataclasses.replace(config, **{group: _replace(getattr(config, group), values, group + ".")})
    return config


# ---------------------------------------------------------------------------------------------- which flags were typed
GROUPS = {"wm": WorldModelConfig, "dreamer": DreamerConfig, "ppo": PPOConfig}  # TrainConfig's nested configs


def flag_fields() -> dict[str, str]:
    """Every flag of `memwm train` and the field it sets: "--seq-len" -> "seq_len", "--wm.hidden" -> "wm.hidden",
    and for a boolean both forms, "--no-tensorboard" -> "tensorboard", "--wm.no-obs-norm" -> "wm.obs_norm"."""
    out = {}
    for name, default in _flat(TrainConfig()).items():
        group, _, leaf = name.rpartition(".")
        prefix = f"{group}." if group else ""
        out[f"--{prefix}{leaf.replace('_', '-')}"] = name
        if isinstance(default, bool):
            out[f"--{prefix}no-{leaf.replace('_', '-')}"] = name
    return out


def typed_fields(args: list[str]) -> frozenset[str]:
    """The fields that the flags in `args` (the arguments after `memwm train`) set, e.g. {"seq_len", "wm.hidden"}.

    Reads `--name value`, `--name=value` and the boolean `--name` / `--no-name`; tyro takes `_` for `-` in a
    name, and so does this. Arguments after a bare `--` are values, not flags.
    """
    flags = flag_fields()
    typed = set()
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            name = "--" + name[2:].replace("_", "-")
            if name in flags:
                typed.add(flags[name])
    return frozenset(typed)


# ---------------------------------------------------------------------------------------------- the layers
Typed = Collection[str] | Mapping[str, str] | None  # typed field names, or field name -> source


def resolve(given: TrainConfig, saved: dict[str, Any] | None = None, typed: Typed = None) -> TrainConfig:
    """The run's config: the typed fields of `given` over the saved config (resume) over layered defaults."""
    return resolve_sources(given, saved, typed)[0]


def resolve_sources(given: TrainConfig, saved: dict[str, Any] | None = None, typed: Typed = None) -> tuple[TrainConfig, dict[str, str]]:
    """(the run's config, where each value came from: field -> source), validated.

    given: what tyro parsed; saved: the run's config.yaml when resuming; typed: the fields whose value in
    `given` wins (`typed_fields` of the command line; a mapping names their source, a collection means
    "flag"). Without `typed`, the fields of `given` that differ from the dataclass defaults win ("given").
    """
    given_flat, generic_flat = _flat(given), _flat(TrainConfig())
    if typed is None:
        typed = {k: "given" for k, v in given_flat.items() if v != generic_flat[k]}
    elif not isinstance(typed, Mapping):
        typed = dict.fromkeys(typed, "flag")
    unknown = sorted(set(typed) - set(given_flat))
    if unknown:
        raise ValueError(f"unknown config field {unknown[0]}; known: {', '.join(sorted(given_flat))}")
    if saved is not None:  # a resumed run keeps everything it saved (env, backbone, preset included) unless typed
        below = TrainConfig.from_dict(saved)
        below_sources = dict.fromkeys(given_flat, "saved")
    else:
        below = layered_defaults(given.env, given.preset)
        below_sources = _layer_sources(given.env, given.preset)
    below_flat = _flat(below)
    values = {k: given_flat[k] if k in typed else below_flat[k] for k in given_flat}
    sources = {k: typed.get(k) or below_sources[k] for k in given_flat}
    config = _unflat(values)
    validate(config)
    return config, sources


def _layer_sources(env: str, preset: str) -> dict[str, str]:
    """Where each value of `layered_defaults(env, preset)` comes from: task, preset or default."""
    from world_models.config import PRESETS

    task = env_defaults(env)
    sources = {}
    for name in _flat(TrainConfig()):
        group, _, leaf = name.partition(".")
        if name in task:
            sources[name] = "task"
        elif group == "wm" and leaf in PRESETS[preset]:
            sources[name] = "preset"
        else:
            sources[name] = "default"
    return sources


def _flat(config) -> dict[str, Any]:
    """{"seq_len": 32, ..., "wm.hidden": 64, ...}: the fields of a TrainConfig, nested ones as group.field."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in GROUPS:
            out.update({f"{f.name}.{k}": v for k, v in dataclasses.asdict(value).items()})
        else:
            out[f.name] = value
    return out


def _unflat(values: dict[str, Any]) -> TrainConfig:
    top = {k: v for k, v in values.items() if "." not in k}
    for group, cls in GROUPS.items():
        top[group] = cls(**{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(group + ".")})
    return TrainConfig(**top)


# ---------------------------------------------------------------------------------------------- validation
# Every size, count, rate and share of a run, checked in one place (`validate`): field -> its range.
# A number field of TrainConfig or of its groups that is none of these is listed in UNBOUNDED.
RANGES: dict[str, str] = {
    **dict.fromkeys(
        ("steps", "num_envs", "batch_size", "seq_len", "replay_capacity", "eval_episodes", "log_every", "checkpoint_every"), "positive"
    ),
    "train_ratio": "positive",  # replayed steps per environment step: 0 would act without ever training
    **dict.fromkeys(("minutes", "prefill", "eval_every", "threads", "seed"), ">= 0"),
    "video_every": ">= -1",
    **dict.fromkeys(("replay_from_starts", "replay_event_share", "replay_terminal_share"), "share"),
    # the world model: sizes (width 0 = fit to the RSSM's parameter count; mlp_layers 0 = linear heads)
    **{f"wm.{n}": "positive" for n in ("deter", "hidden", "layers", "cnn_depth", "stoch", "classes", "heads", "context")},
    **{f"wm.{n}": "positive" for n in ("ssm_state", "s4_state", "mamba_state", "mamba_expand", "probe_stride", "min_std")},
    **{f"wm.{n}": "positive" for n in ("dt_min", "dt_max")},
    **{f"wm.{n}": ">= 0" for n in ("width", "mlp_layers", "free_bits", "barlow_scale", "barlow_lambda")},
    **{f"wm.{n}": ">= 0" for n in ("dyn_scale", "rep_scale", "image_scale", "vector_scale", "reward_scale", "cont_scale")},
    **{f"wm.{n}": "share" for n in ("unimix", "obs_norm_decay", "feature_norm_decay")},
    "wm.reward_bins": "bins",
    # the actor-critic (hidden and layers 0 = the world model's)
    **{f"dreamer.{n}": "positive" for n in ("horizon", "min_std", "max_std", "wm_lr", "actor_lr", "critic_lr", "wm_eps", "ac_eps")},
    **{f"dreamer.{n}": "positive" for n in ("wm_grad_clip", "ac_grad_clip")},
    **{
        f"dreamer.{n}": ">= 0"
        for n in (
            "hidden",
            "layers",
            "entropy",
            "slow_critic_reg",
            "actor_out_scale",
            "repval",
            "explore",
            "all_actions",
            "all_actions_temperature",
            "all_actions_below",
        )
    },
    **{f"dreamer.{n}": "share" for n in ("gamma", "lam", "unimix", "slow_critic_decay", "retnorm_decay", "retnorm_low", "retnorm_high")},
    "dreamer.critic_bins": "bins",
    # recurrent PPO
    **{f"ppo.{n}": "positive" for n in ("rollout", "lr", "epochs", "minibatches", "clip", "max_grad_norm", "hidden", "width")},
    **{f"ppo.{n}": ">= 0" for n in ("vf_coef", "ent_coef", "target_kl")},
    **{f"ppo.{n}": "share" for n in ("gamma", "gae_lambda")},
}
UNBOUNDED = ("ppo.init_log_std",)  # a log standard deviation: any real number
_RULES = {  # range -> (holds, how the error says it)
    "positive": (lambda v: v > 0, "must be positive"),
    ">= 0": (lambda v: v >= 0, "must be >= 0"),
    ">= -1": (lambda v: v >= -1, "must be >= -1 (-1: never)"),
    "share": (lambda v: 0 <= v <= 1, "is a share in [0, 1]"),
    "bins": (lambda v: v >= 2, "must be >= 2 (bins of a two-hot distribution)"),
}


def validate(config: TrainConfig) -> None:
    """Raise ValueError naming the first bad field and its range (env ids are checked by `envs.make`)."""
    if config.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {config.backbone!r}; known: {', '.join(BACKBONES)}")
    values = _flat(config)
    for name, kind in RANGES.items():
        value = values[name]
        holds, says = _RULES[kind]
        if not (math.isfinite(value) and holds(value)):
            hint = " (replayed steps trained on per environment step; 0 would never train)" if name == "train_ratio" else ""
            raise ValueError(f"{name} {says}{hint}, got {value}")
    pairs = [("replay_capacity", "seq_len"), ("wm.dt_max", "wm.dt_min"), ("dreamer.max_std", "dreamer.min_std")]
    pairs.append(("dreamer.retnorm_high", "dreamer.retnorm_low"))
    for high, low in pairs:
        if values[high] < values[low]:
            raise ValueError(f"{high} ({values[high]}) must be at least {low} ({values[low]})")


def save_yaml(config: TrainConfig, path: str | os.PathLike, sources: dict[str, str] | None = None) -> None:
    """Write `config` (and, under `sources:`, where each value came from) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = config.to_dict()
    if sources is not None:
        data[SOURCES] = dict(sources)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


SOURCES = "sources"  # the key of config.yaml that says where each value came from (absent in older files)


def load_sources(path: str | os.PathLike) -> dict[str, str]:
    """Where each value of the config.yaml at `path` came from; {} for a file written before they were recorded."""
    return dict(load_yaml(path).get(SOURCES) or {})


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # a damaged file: one line, not a parser's traceback
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} cannot be read as YAML ({reason}); restore it, or delete it to use this "
            f"command's settings (a resume still checks them against the checkpoint)"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a memwm config (expected a mapping, got {type(data).__name__})")
    return data


def _replace(obj, values: dict[str, Any], prefix: str):
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config field {prefix}{unknown[0]}; known: {', '.join(prefix + n for n in sorted(names))}")
    return dataclasses.replace(obj, **values)


def _from_dict(cls, data: dict[str, Any], prefix: str):
    if cls is TrainConfig:
        data = {k: v for k, v in data.items() if k != SOURCES}  # provenance, not a field
    values = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in data.items():
        if name not in fields:
            raise ValueError(f"unknown config field {prefix}{name}; known: {', '.join(prefix + n for n in sorted(fields))}")
        sub = GROUPS.get(name) if cls is TrainConfig else None
        values[name] = _from_dict(sub, value, f"{name}.") if sub is not None else value
    return cls(**values)
