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

from baselines.gradnorm import SCOPES
from baselines.grokfast import REDUCTIONS

from .amplifier import MODES, SOFTMAX_AXES
from .bilevel import ORDERS
from .errors import ConfigError, PresetError
from .feature_amplifier import FORMS, THETA_REFS, parse_features
from .losses import LOSSES
from .methods import METHODS
from .mlp import ARCH as MLP_ARCH
from .model import ARCHS
from .optim import LOOKAHEADS, OPTIMIZERS
from .presets import PAPERS, preset_options
from .tasks import LAYOUTS
from .tracking import LOG_WITH

PRECISIONS = ("no", "bf16", "fp16")


def opt(default, help: str, group: str, **kw):
    return field(default=default, metadata=dict(help=help, group=group, **kw))


@dataclass
class RunConfig:
    # a published setup
    paper: str = opt("", "apply a published code's settings for --task and --method beneath the config file and the "
                         "flags: neuralgrok-main, neuralgrok-src or grokfast (`neuralgrok presets` lists every value "
                         "and its source)", "task", choices=PAPERS)
    # task and data
    task: str = opt("a*b", "paper task name or expression over a..e with + - * / (see `neuralgrok tasks`)", "task")
    p: int = opt(97, "modulus", "task")
    operand_range: str = opt("", "operand ranges overriding the defaults, e.g. 'b=0:96,c=1:10' (inclusive)", "task")
    layout: str = opt("infix", "token layout: infix ('a op b =', as both published codes) or postfix (operands, "
                               "operators, '=')", "task",
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
    ema_alpha: float = opt(0.98, "Grokfast-EMA: momentum alpha in [0, 1)", "method")
    ema_lamb: float = opt(2.0, "Grokfast-EMA: amplification lambda", "method")
    ma_window: int = opt(100, "Grokfast-MA: window length", "method")
    ma_lamb: float = opt(5.0, "Grokfast-MA: amplification lambda", "method")
    ma_reduce: str = opt("mean", "Grokfast-MA: mean or sum of the window", "method", choices=REDUCTIONS)
    gradnorm_c: float = opt(1.0, "gradient normalisation: target norm c", "method")
    gradnorm_scope: str = opt("tensor", "gradient normalisation: per tensor or over the global gradient", "method",
                              choices=SCOPES)
    # NeuralGrok
    amp_hidden: tuple[int, ...] = opt((128, 128), "amplifier MLP hidden sizes, comma-separated", "neuralgrok")
    amp_features: str = opt("g", "what the amplifier reads per entry, comma-separated: g (the paper's scalar "
                                 "amplifier when alone), slow (an average of past gradients, which it may add), theta "
                                 "(the weight, which it may add: a learnt decay), step, tensor (a learnt per-tensor "
                                 "embedding)", "neuralgrok")
    amp_form: str = opt("mlp", "with --amp-features beyond g: mlp (a network of the features, --amp-hidden) or "
                               "coefficients (one learnt coefficient per tensor for the slow and weight terms, gain 1)",
                        "neuralgrok", choices=FORMS)
    amp_theta_ref: str = opt("rms", "with --amp-features theta: the weight term's scale: rms (the weight over its "
                                    "tensor's current rms) or init (over its rms at the run's first step, so the term "
                                    "fades with the weights as an L2 decay does)", "neuralgrok", choices=THETA_REFS)
    amp_decay_nonneg: bool = opt(False, "with --amp-form coefficients and theta: project every learnt decay "
                                        "coefficient back to >= 0 after each meta step (a decay that can only "
                                        "shrink the weights)", "neuralgrok")
    amp_slow_alpha: float = opt(0.98, "with --amp-features slow: the average's momentum (as Grokfast-EMA's alpha)",
                                "neuralgrok")
    amp_c: float = opt(1.0, "amplifier rescaling coefficient c", "neuralgrok")
    amp_eval: str = opt("piecewise", "scalar amplifier's evaluation: piecewise (exact, fast) or dense (reference)",
                        "neuralgrok", choices=MODES)
    amp_softmax: str = opt("tensor", "what the amplifier's softmax normalises over: tensor (each tensor's entries, the "
                                     "paper's and the main branch's code) or entry (each entry's single output, as the "
                                     "neuralgrad branch's code does: p = 1, so the amplifier is per-tensor gradient "
                                     "normalisation)", "neuralgrok", choices=SOFTMAX_AXES)
    meta_every: int = opt(4, "meta step every T inner steps", "neuralgrok")
    meta_order: str = opt("before", "when the meta step runs: before the model's step, at theta_t, reusing its gradient "
                                    "(the paper's algorithm), or after it, at theta_t+1, with the gradient recomputed "
                                    "on the same batch (both public codes; after steps T, 2T, ...)", "neuralgrok",
                          choices=ORDERS)
    meta_lr: float = opt(1e-4, "amplifier optimizer (Adam) learning rate", "neuralgrok")
    meta_weight_decay: float = opt(0.0, "amplifier optimizer's weight decay (L2, added to its gradient; both public "
                                        "codes pass the model's --weight-decay)", "neuralgrok")
    meta_beta1: float = opt(0.9, "amplifier Adam beta1", "neuralgrok")
    meta_beta2: float = opt(0.98, "amplifier Adam beta2", "neuralgrok")
    lookahead: str = opt("sgd", "look-ahead rule: sgd (theta - lr*g', the paper's) or inner (the inner optimizer's)",
                         "neuralgrok", choices=LOOKAHEADS)
    meta_horizon: int = opt(1, "meta-gradient through K inner steps (truncated unrolling through the inner "
                               "optimizer's rule, moments included; 1: the paper's one-step look-ahead)", "neuralgrok")
    meta_first_order: bool = opt(False, "with --meta-horizon > 1: hold the inner gradients of steps 2..K constant "
                                        "(no second derivatives through the base model)", "neuralgrok")
    meta_start_acc: float = opt(0.0, "meta steps begin once an evaluation's training accuracy reaches this (0: from "
                                     "the first step); before, the amplifier is applied as it is", "neuralgrok")
    outer_batch: int = opt(0, "outer-slice examples per meta step (0: the whole slice)", "neuralgrok")
    amplifier: str = opt("", "load a learnt amplifier: amplifier.safetensors, its run folder, or builtin:NAME (one that "
                             "ships with the package: `neuralgrok amplifiers`)", "neuralgrok")
    freeze_amplifier: bool = opt(False, "hold the loaded amplifier fixed (no meta steps)", "neuralgrok")
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
    log_with: str = opt("none", "also send the config and every metrics line to these trackers (TensorBoard under "
                                "RUN/tensorboard/); metrics.jsonl stays the record", "run", choices=LOG_WITH)
    age_per_tensor: bool = opt(False, "also log AGE per parameter tensor (age_tensors, age_raw_tensors)", "run")
    snapshot_steps: str = opt("", "save the model's weights for analysis at these steps, under RUN/snapshots/: "
                                  "'100,200', 'every:N' or 'log' (about 8 a decade); empty: none", "run")
    checkpoint_every: int = opt(500, "write a checkpoint every N steps (also on SIGTERM/SIGINT/SIGUSR2 and at the end)", "run")
    keep_checkpoints: int = opt(2, "checkpoints kept in the run folder (the newest)", "run")
    max_bad_steps: int = opt(10, "stop after this many consecutive steps with a non-finite loss or gradient", "run")


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
    positive_ints = ("p", "n_layers", "d_model", "n_heads", "batch_size", "max_steps", "eval_every",
                     "stop_patience", "ma_window", "meta_every", "checkpoint_every", "keep_checkpoints",
                     "max_bad_steps")
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
    for name in ("beta1", "beta2", "meta_beta1", "meta_beta2", "ema_alpha"):
        _check(0.0 <= getattr(cfg, name) < 1.0, f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(cfg, name)}")
    _check(cfg.eps > 0, f"--eps must be > 0, got {cfg.eps}")
    _check(cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    _check(cfg.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {cfg.warmup_steps}")
    _check(cfg.clip_grad >= 0, f"--clip-grad must be >= 0 (0 turns clipping off), got {cfg.clip_grad}")
    _check(0.0 < cfg.stop_acc <= 1.0, f"--stop-acc must be in (0, 1], got {cfg.stop_acc}")
    _check(cfg.ema_lamb >= 0 and cfg.ma_lamb >= 0, "--ema-lamb and --ma-lamb must be >= 0")
    _check(cfg.gradnorm_c > 0, f"--gradnorm-c must be > 0, got {cfg.gradnorm_c}")
    _check(len(cfg.amp_hidden) >= 1 and all(h >= 1 for h in cfg.amp_hidden),
           f"--amp-hidden must be one or more sizes >= 1, got {','.join(map(str, cfg.amp_hidden)) or 'nothing'}")
    _check(len(cfg.mlp_hidden) >= 1 and all(h >= 1 for h in cfg.mlp_hidden),
           f"--mlp-hidden must be one or more sizes >= 1, got {','.join(map(str, cfg.mlp_hidden)) or 'nothing'}")
    _check_arch_options(cfg)
    try:
        features = parse_features(cfg.amp_features, cfg.amp_form)
    except ValueError as e:
        raise ConfigError(f"--amp-features: {e}") from None
    _check(cfg.amp_theta_ref == "rms" or "theta" in features,
           f"--amp-theta-ref {cfg.amp_theta_ref} scales the weight term: it needs theta in --amp-features, "
           f"got {cfg.amp_features!r}")
    _check(not cfg.amp_decay_nonneg or (cfg.amp_form == "coefficients" and "theta" in features),
           f"--amp-decay-nonneg bounds the learnt decay coefficients: it needs --amp-form coefficients and theta in "
           f"--amp-features, got {cfg.amp_form} and {cfg.amp_features!r}")
    _check(0.0 <= cfg.amp_slow_alpha < 1.0, f"--amp-slow-alpha must be in [0, 1), got {cfg.amp_slow_alpha}")
    _check(cfg.amp_c > 0, f"--amp-c must be > 0, got {cfg.amp_c}")
    _check(cfg.meta_lr > 0, f"--meta-lr must be > 0, got {cfg.meta_lr}")
    _check(cfg.meta_weight_decay >= 0, f"--meta-weight-decay must be >= 0, got {cfg.meta_weight_decay}")
    _check(cfg.amp_softmax == "tensor" or features == ("g",),
           f"--amp-softmax {cfg.amp_softmax} sets the scalar amplifier's softmax; --amp-features {cfg.amp_features!r} "
           f"has none")
    _check(0.0 <= cfg.meta_start_acc <= 1.0, f"--meta-start-acc must be in [0, 1], got {cfg.meta_start_acc}")
    _check(cfg.meta_horizon >= 1, f"--meta-horizon must be >= 1, got {cfg.meta_horizon}")
    _check(cfg.outer_batch >= 0, f"--outer-batch must be >= 0 (0: whole slice), got {cfg.outer_batch}")
    _check(not cfg.freeze_amplifier or cfg.amplifier, "--freeze-amplifier needs --amplifier PATH")
    _check(not cfg.amplifier or cfg.method == "neuralgrok", "--amplifier is only used with --method neuralgrok")
    _check(bool(re.fullmatch(r"[\w .+\-*/()=:]*", cfg.label)), f"--label has characters that cannot name a run: {cfg.label!r}")


def _check_arch_options(cfg: RunConfig) -> None:
    """Model options of the other kind of model are errors, not silently ignored."""
    default = RunConfig()
    if cfg.arch == MLP_ARCH:
        changed = [f"--{n.replace('_', '-')}" for n in ("n_layers", "d_model", "n_heads", "dropout")
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
