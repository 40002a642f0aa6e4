"""The run configuration: one typed, validated dataclass; command-line flags and config files map onto it."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError, PresetError
from .losses import LOSSES
from .methods import METHODS, _FROZEN
from .mlp import ARCH as MLP_ARCH
from .model import ARCHS, ATTENTION_KERNELS
from .optim import OPTIMIZERS
from .options import Option
from .presets import PAPERS, preset_options
from .tasks import LAYOUTS
from .tracking import LOG_WITH

PRECISIONS = ("no", "bf16", "fp16")


def opt(default, help: str, group: str, **kw):
    return field(default=default, metadata=dict(help=help, group=group, **kw))


@dataclass
class BaseConfig:
    """The options of every run; each method's own options (``methods.py``) are added to it as :class:`RunConfig`."""

    # a published setup
    paper: str = opt("", "apply a published code's settings for --task and --method beneath the config file and the "
                         "flags: neuralgrok-main, neuralgrok-src or grokfast (`neuralgrok presets` lists every value "
                         "and its source)", "task", choices=PAPERS)
    # task and data
    task: str = opt("a*b", "paper task name or expression over a..e with + - * / (see `neuralgrok tasks`)", "task")
    p: int | None = opt(None, "modulus (default: the task's own: 7 for mod7_five, 120 for the S5 tasks, else 97)",
                        "task")
    operand_range: str = opt("", "operand ranges overriding the defaults, e.g. 'b=0:96,c=1:10' (inclusive)", "task")
    layout: str = opt("infix", "token layout: infix ('a op b =', as Grokfast's code and NeuralGrok's neuralgrad "
                               "branch) or postfix (operands, operators, '=', as NeuralGrok's main branch)", "task",
                      choices=LAYOUTS)
    train_frac: float = opt(0.5, "fraction of the table used for training; the rest is the test set", "task")
    inner_outer_ratio: float = opt(49.0, "train split into inner:outer = RATIO:1 (outer = NeuralGrok's held-out slice)",
                                   "task")
    # model
    arch: str = opt("reference", "model: reference (the Grokfast and NeuralGrok public codes' decoder, which their "
                                 "published numbers came from), prenorm (the usual pre-norm residual block) or mlp (Prieto et al.'s MLP on "
                                 "one-hot operands, --mlp-hidden)", "model",
                    choices=(*ARCHS, MLP_ARCH))
    mlp_hidden: tuple[int, ...] = opt((200, 200), "with --arch mlp: hidden sizes, comma-separated (ReLU, no biases)",
                                      "model")
    n_layers: int = opt(2, "transformer layers", "model")
    d_model: int = opt(128, "transformer width", "model")
    n_heads: int = opt(4, "attention heads", "model")
    dropout: float = opt(0.0, "transformer dropout probability", "model")
    attention: str = opt("auto", "attention kernel: auto (PyTorch's pick; on CPU the flash kernel) or math (the "
                                 "composite kernel: the same function, other rounding; on CPU in bf16 a 2.25x faster "
                                 "step at 12 input tokens, none at 10: experiments/results/bench/attention/)",
                         "model", choices=ATTENTION_KERNELS)
    init_scale: float = opt(1.0, "multiply every initial weight by this (Omnigrok's alpha)", "model")
    # optimisation
    optimizer: str = opt("adam", "inner optimizer: adam (L2 weight decay, as the published code), adamw (decoupled), sgd",
                         "optim", choices=OPTIMIZERS)
    lr: float = opt(1e-3, "learning rate", "optim")
    beta1: float = opt(0.9, "Adam beta1", "optim")
    beta2: float = opt(0.98, "Adam beta2", "optim")
    eps: float = opt(1e-8, "Adam epsilon", "optim")
    weight_decay: float = opt(1e-3, "weight decay (L2 for adam and sgd, decoupled for adamw); 1e-3 as in NeuralGrok",
                              "optim")
    loss: str = opt("softmax", "answer loss: softmax cross-entropy (float32), softmax64 (the same in float64, which "
                               "delays softmax collapse) or stablemax (Prieto et al. 2025; no softmax collapse)",
                    "optim", choices=LOSSES)
    weight_norm: float = opt(0.0, "after every step, rescale all weights to this global L2 norm (Omnigrok's "
                                  "constant-norm training; 0: off)", "optim")
    warmup_steps: int = opt(10, "linear learning-rate warm-up steps", "optim")
    batch_size: int = opt(512, "global batch size", "optim")
    mixed_precision: str = opt("no", "autocast precision for forward passes (bf16, or fp16 with loss scaling on a GPU; "
                                     "transforms and AGE stay float32)", "optim", choices=PRECISIONS)
    clip_grad: float | None = opt(None, "clip the global gradient norm after the transform (0: off; "
                                        "default 1.0 for neuralgrok, off otherwise)", "optim")
    # method
    method: str = opt("standard", "gradient method: " + "; ".join(f"{k}: {m.summary}" for k, m in METHODS.items()),
                      "method", choices=tuple(METHODS))
    # run
    seed: int = opt(0, "seed for the split, initialisation and batch order", "run")
    max_steps: int = opt(20000, "training steps at most", "run")
    eval_every: int = opt(10, "evaluate (and log a metrics line) every N steps", "run")
    eval_exact_from: float = opt(0.95, "test accuracy is exact whenever it may reach this value (or --stop-acc); below "
                                       "it, evaluation stops as soon as the errors prove it lower and logs the "
                                       "estimate on the rows seen (test_rows); 0: always the whole test split", "run")
    train_eval_rows: int = opt(512, "train loss and accuracy on this fixed random subset of the training split "
                                    "(0: the whole split)", "run")
    stop_acc: float = opt(0.99, "stop once test accuracy has held at or above this ...", "run")
    stop_patience: int = opt(5, "... for this many consecutive evaluations", "run")
    run_on: bool = opt(False, "ignore the early stop and run all max_steps", "run")
    label: str = opt("", "name of this run's method in reports (default: the method)", "run")
    family: str = opt("", "a swept cell's method name in reports without its swept value (neuralgrok grid sets it)",
                      "run")
    swept: str = opt("", "the option a grid swept to make this cell (its value is that option's; neuralgrok grid "
                         "sets it)", "run")
    log_with: str = opt("none", "also send the config and every metrics line to these trackers (TensorBoard under "
                                "RUN/tensorboard/); metrics.jsonl stays the record", "run", choices=LOG_WITH)
    age_per_tensor: bool = opt(False, "also log AGE per parameter tensor (age_tensors, age_raw_tensors)", "run")
    snapshot_steps: str = opt("", "save the model's weights for analysis at these steps, under RUN/snapshots/: "
                                  "'100,200', 'every:N' or 'log' (about 8 a decade); empty: none", "run")
    checkpoint_every: int = opt(500, "write a checkpoint every N steps (also on SIGTERM/SIGINT/SIGUSR2 and at the end)", "run")
    keep_checkpoints: int = opt(2, "checkpoints kept in the run folder (the newest)", "run")
    max_bad_steps: int = opt(10, "stop after this many consecutive steps with a non-finite loss or gradient", "run")
    flush_denormal: bool = opt(False, "flush subnormal floats to zero on the CPU while training "
                                      "(torch.set_flush_denormal): after softmax collapse, subnormal values made a "
                                      "step 8x slower here; changes results only through values below "
                                      "1.2e-38", "run")


def _option_field(o: Option) -> tuple[str, object, dataclasses.Field]:
    return o.name, o.type, opt(o.default, o.help, o.group, **({"choices": o.choices} if o.choices else {}),
                               option=o)


def _run_config() -> type:
    """BaseConfig plus every registered method's options, in the registry's order."""
    _FROZEN[0] = True  # a method with options registered after this would have none of them here
    extra = [_option_field(o) for m in METHODS.values() for o in m.options]
    cls = dataclasses.make_dataclass("RunConfig", extra, bases=(BaseConfig,))
    cls.__module__ = __name__  # (make_dataclass takes module= only from Python 3.12)
    return cls


RunConfig = _run_config()
RunConfig.__doc__ = "One run's configuration: BaseConfig's options and every registered method's (methods.py)."


# Options a resumed run may change: they do not alter the steps already taken.
RESUMABLE_CHANGES = ("max_steps", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "snapshot_steps", "log_with")


# Values that options added later had before they existed: a config.json written without
# the key was trained with this value, so re-running or resuming it keeps it.
LEGACY_VALUES = {"arch": "prenorm", "layout": "postfix", "eval_exact_from": 0.0, "train_eval_rows": 0}


_HINTS = typing.get_type_hints(RunConfig)  # the fields' real types, from their annotations


def is_tuple(f: dataclasses.Field) -> bool:
    return typing.get_origin(_HINTS[f.name]) is tuple


def is_optional(f: dataclasses.Field) -> bool:
    return type(None) in typing.get_args(_HINTS[f.name])


def field_type(f: dataclasses.Field) -> type:
    """The field's value type: ``float`` for ``float | None``, the element type for ``tuple[int, ...]``."""
    hint = _HINTS[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    return args[0] if args else hint


def coerce(f: dataclasses.Field, value: Any) -> Any:
    """Converts a value from a flag or a config file to the field's type, or raises ConfigError."""
    name = f.name.replace("_", "-")
    if value is None and is_optional(f):
        return None
    try:
        if is_tuple(f):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(int(x) for x in items if str(x).strip() != "")
        t = field_type(f)
        if t is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, bool):
                return value
            raise ValueError
        if t is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if t is int and isinstance(value, (bool, float)):
            raise ValueError
        return t(value)
    except (ValueError, TypeError):
        raise ConfigError(f"--{name} expects {'comma-separated integers' if is_tuple(f) else field_type(f).__name__}, "
                          f"got {value!r}") from None


def load_file(path: str | Path) -> dict[str, Any]:
    """Reads a TOML, YAML or JSON config file into {field name: value}, naming unknown keys."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        if path.suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":  # a run folder's config.json: re-runs that run
            data = {**LEGACY_VALUES, **json.loads(text)}
        else:
            raise ConfigError(f"config file {path} must end in .toml, .yaml, .yml or .json")
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser error becomes one line
        raise ConfigError(f"cannot parse config file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of option = value")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in {path}: {', '.join(unknown)}")
    return data


def build(overrides: dict[str, Any]) -> RunConfig:
    """A validated RunConfig from defaults updated by ``overrides`` (field name -> value)."""
    by_name = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(overrides) - set(by_name))
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
    merged = {**_preset(overrides), **overrides}
    cfg = RunConfig(**{k: coerce(by_name[k], v) for k, v in merged.items()})
    return resolve(cfg)


def _preset(overrides: dict[str, Any]) -> dict[str, Any]:
    """The options ``--paper`` sets for the task and method that ``overrides`` name (or the defaults)."""
    paper = overrides.get("paper", "")
    if paper and paper not in PAPERS:
        raise ConfigError(f"--paper must be one of {', '.join(p for p in PAPERS if p)}, got {paper!r}")
    try:
        return preset_options(paper, str(overrides.get("task", RunConfig.task)),
                              str(overrides.get("method", RunConfig.method)))
    except PresetError as e:
        raise ConfigError(str(e)) from None


def resolve(cfg: RunConfig) -> RunConfig:
    """Fills method-dependent defaults and validates every value; raises ConfigError."""
    if cfg.clip_grad is None:
        cfg.clip_grad = METHODS[cfg.method].clip_grad if cfg.method in METHODS else 0.0
    if cfg.p is None:
        from .tasks import default_p
        cfg.p = default_p(cfg.task)
    validate(cfg)
    return cfg


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def validate(cfg: RunConfig) -> None:
    for f in fields(RunConfig):
        v = getattr(cfg, f.name)
        choices = f.metadata.get("choices")
        _check(choices is None or v in choices,
               f"--{f.name.replace('_', '-')} must be one of {', '.join(choices or ())}, got {v!r}")
        _check(not isinstance(v, float) or math.isfinite(v), f"--{f.name.replace('_', '-')} must be finite, got {v}")
        option = f.metadata.get("option")
        problem = option.check(v) if option is not None and option.check is not None else None
        _check(problem is None, f"{option.flag if option else ''} {problem}")
    positive_ints = ("p", "n_layers", "d_model", "n_heads", "batch_size", "max_steps", "eval_every",
                     "stop_patience", "checkpoint_every", "keep_checkpoints", "max_bad_steps")
    for name in positive_ints:
        _check(getattr(cfg, name) >= 1, f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    _check(cfg.d_model % cfg.n_heads == 0, f"--d-model {cfg.d_model} is not divisible by --n-heads {cfg.n_heads}")
    _check(0.0 < cfg.train_frac < 1.0, f"--train-frac must be in (0, 1), got {cfg.train_frac}")
    _check(cfg.inner_outer_ratio > 0, f"--inner-outer-ratio must be > 0, got {cfg.inner_outer_ratio}")
    _check(0.0 <= cfg.dropout < 1.0, f"--dropout must be in [0, 1), got {cfg.dropout}")
    _check(0.0 <= cfg.eval_exact_from <= 1.0, f"--eval-exact-from must be in [0, 1], got {cfg.eval_exact_from}")
    _check(cfg.train_eval_rows >= 0, f"--train-eval-rows must be >= 0 (0: whole split), got {cfg.train_eval_rows}")
    _check(cfg.init_scale > 0, f"--init-scale must be > 0, got {cfg.init_scale}")
    _check(cfg.weight_norm >= 0, f"--weight-norm must be >= 0 (0: off), got {cfg.weight_norm}")
    from .snapshots import snapshot_schedule
    snapshot_schedule(cfg.snapshot_steps, cfg.max_steps)  # raises ConfigError naming a bad spec
    _check(cfg.lr > 0, f"--lr must be > 0, got {cfg.lr}")
    for name in ("beta1", "beta2"):
        _check(0.0 <= getattr(cfg, name) < 1.0, f"--{name} must be in [0, 1), got {getattr(cfg, name)}")
    _check(cfg.eps > 0, f"--eps must be > 0, got {cfg.eps}")
    _check(cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    _check(cfg.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {cfg.warmup_steps}")
    _check(cfg.clip_grad >= 0, f"--clip-grad must be >= 0 (0 turns clipping off), got {cfg.clip_grad}")
    _check(0.0 < cfg.stop_acc <= 1.0, f"--stop-acc must be in (0, 1], got {cfg.stop_acc}")
    _check(len(cfg.mlp_hidden) >= 1 and all(h >= 1 for h in cfg.mlp_hidden),
           f"--mlp-hidden must be one or more sizes >= 1, got {','.join(map(str, cfg.mlp_hidden)) or 'nothing'}")
    _check_arch_options(cfg)
    for method in METHODS.values():  # every method's cross-checks (an option of one may be misused with another)
        if method.check is not None:
            method.check(cfg)
    _check(bool(re.fullmatch(r"[\w .+\-*/()=:]*", cfg.label)), f"--label has characters that cannot name a run: {cfg.label!r}")


def _check_arch_options(cfg: RunConfig) -> None:
    """Model options of the other kind of model are errors, not silently ignored."""
    default = RunConfig()
    if cfg.arch == MLP_ARCH:
        changed = [f"--{n.replace('_', '-')}" for n in ("n_layers", "d_model", "n_heads", "dropout", "attention")
                   if getattr(cfg, n) != getattr(default, n)]
        _check(not changed, f"{', '.join(changed)} set the transformer; --arch mlp takes --mlp-hidden")
    else:
        _check(cfg.mlp_hidden == default.mlp_hidden, f"--mlp-hidden sets --arch mlp, not {cfg.arch}")


def differing_keys(a: RunConfig, b: RunConfig, ignore=RESUMABLE_CHANGES) -> list[str]:
    """Option names whose values differ between two configs, as flags."""
    return ["--" + f.name.replace("_", "-") for f in fields(RunConfig)
            if f.name not in ignore and getattr(a, f.name) != getattr(b, f.name)]


def to_json(cfg: RunConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2)


def from_json(text: str) -> RunConfig:
    """A run folder's ``config.json`` as a RunConfig (options it predates take their :data:`LEGACY_VALUES`)."""
    data = json.loads(text)
    return build({**LEGACY_VALUES, **data})
