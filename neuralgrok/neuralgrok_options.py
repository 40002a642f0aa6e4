"""NeuralGrok's run options and their checks: what ``--method neuralgrok`` adds to the run configuration."""
from __future__ import annotations

from .amplifier import MODES, SOFTMAX_AXES
from .bilevel import ORDERS
from .errors import ConfigError
from .feature_amplifier import FORMS, THETA_REFS, parse_features
from .optim import LOOKAHEADS
from .options import Option, above, at_least, in_range, sizes

G = "neuralgrok"
OPTIONS = (
    Option("amp_hidden", (128, 128), "amplifier MLP hidden sizes, comma-separated", check=sizes, group=G),
    Option("amp_features", "g", "what the amplifier reads per entry, comma-separated: g (the paper's scalar amplifier "
                                "when alone), slow (an average of past gradients, which it may add), theta (the "
                                "weight, which it may add: a learnt decay), step, tensor (a learnt per-tensor "
                                "embedding)", group=G),
    Option("amp_form", "mlp", "with --amp-features beyond g: mlp (a network of the features, --amp-hidden) or "
                              "coefficients (one learnt coefficient per tensor for the slow and weight terms, gain 1)",
           choices=FORMS, group=G),
    Option("amp_theta_ref", "rms", "with --amp-features theta: the weight term's scale: rms (the weight over its "
                                   "tensor's current rms) or init (over its rms at the run's first step, so the term "
                                   "fades with the weights as an L2 decay does)", choices=THETA_REFS, group=G),
    Option("amp_decay_nonneg", False, "with --amp-form coefficients and theta: project every learnt decay coefficient "
                                      "back to >= 0 after each meta step (a decay that can only shrink the weights)",
           group=G),
    Option("amp_init_slow", 0.0, "with --amp-form coefficients: every tensor's starting slow-gradient coefficient "
                                 "(frozen with --freeze-amplifier and no --amplifier: one shared pair, the tuned form)",
           group=G),
    Option("amp_init_decay", 0.0, "with --amp-form coefficients: every tensor's starting decay (weight-term) "
                                  "coefficient", group=G),
    Option("amp_slow_alpha", 0.98, "with --amp-features slow: the average's momentum (as Grokfast-EMA's alpha)",
           check=in_range(0, 1), group=G),
    Option("amp_c", 1.0, "amplifier rescaling coefficient c", check=above(0), group=G),
    Option("amp_eval", "piecewise", "scalar amplifier's evaluation: piecewise (exact, fast) or dense (reference)",
           choices=MODES, group=G),
    Option("amp_softmax", "tensor", "what the amplifier's softmax normalises over: tensor (each tensor's entries, the "
                                    "paper's and the main branch's code) or entry (each entry's single output, as the "
                                    "neuralgrad branch's code does: p = 1, so the amplifier is per-tensor gradient "
                                    "normalisation)", choices=SOFTMAX_AXES, group=G),
    Option("meta_every", 4, "meta step every T inner steps", check=at_least(1), group=G),
    Option("meta_order", "before", "when the meta step runs: before the model's step, at theta_t, reusing its gradient "
                                   "(the paper's algorithm), or after it, at theta_t+1, with the gradient recomputed "
                                   "on the same batch (both public codes; after steps T, 2T, ...)", choices=ORDERS,
           group=G),
    Option("meta_lr", 1e-4, "amplifier optimizer (Adam) learning rate", check=above(0), group=G),
    Option("meta_weight_decay", 0.0, "amplifier optimizer's weight decay (L2, added to its gradient; both public codes "
                                     "pass the model's --weight-decay)", check=at_least(0), group=G),
    Option("meta_beta1", 0.9, "amplifier Adam beta1", check=in_range(0, 1), group=G),
    Option("meta_beta2", 0.98, "amplifier Adam beta2", check=in_range(0, 1), group=G),
    Option("lookahead", "sgd", "look-ahead rule: sgd (theta - lr*g', the paper's) or inner (the inner optimizer's)",
           choices=LOOKAHEADS, group=G),
    Option("meta_horizon", 1, "meta-gradient through K inner steps (truncated unrolling through the inner optimizer's "
                              "rule, moments included; 1: the paper's one-step look-ahead)", check=at_least(1), group=G),
    Option("meta_first_order", False, "with --meta-horizon > 1: hold the inner gradients of steps 2..K constant (no "
                                      "second derivatives through the base model)", group=G),
    Option("meta_start_acc", 0.0, "meta steps begin once an evaluation's training accuracy reaches this (0: from the "
                                  "first step); before, the amplifier is applied as it is", check=in_range(0, 1, True),
           group=G),
    Option("outer_batch", 0, "outer-slice examples per meta step (0: the whole slice)", check=at_least(0), group=G),
    Option("amplifier", "", "load a learnt amplifier: amplifier.safetensors, its run folder, or builtin:NAME (one that "
                            "ships with the package: `neuralgrok amplifiers`)", group=G),
    Option("freeze_amplifier", False, "hold the loaded amplifier fixed (no meta steps)", group=G),
)


def check_config(cfg) -> None:
    """The options that constrain one another; ConfigError (one line) naming the conflict."""
    try:
        features = parse_features(cfg.amp_features, cfg.amp_form)
    except ValueError as e:
        raise ConfigError(f"--amp-features: {e}") from None
    conflicts = [
        (cfg.amp_theta_ref != "rms" and "theta" not in features,
         f"--amp-theta-ref {cfg.amp_theta_ref} scales the weight term: it needs theta in --amp-features, "
         f"got {cfg.amp_features!r}"),
        (cfg.amp_decay_nonneg and (cfg.amp_form != "coefficients" or "theta" not in features),
         f"--amp-decay-nonneg bounds the learnt decay coefficients: it needs --amp-form coefficients and theta in "
         f"--amp-features, got {cfg.amp_form} and {cfg.amp_features!r}"),
        (cfg.amp_softmax != "tensor" and features != ("g",),
         f"--amp-softmax {cfg.amp_softmax} sets the scalar amplifier's softmax; --amp-features {cfg.amp_features!r} "
         f"has none"),
        (cfg.freeze_amplifier and not cfg.amplifier and cfg.amp_form != "coefficients",
         "--freeze-amplifier needs --amplifier PATH (or --amp-form coefficients, frozen at its starting values)"),
        ((cfg.amp_init_slow or cfg.amp_init_decay) and cfg.amp_form != "coefficients",
         "--amp-init-slow and --amp-init-decay set the coefficient form's start: they need --amp-form coefficients"),
        (cfg.amp_init_slow and "slow" not in features, "--amp-init-slow needs slow in --amp-features"),
        (cfg.amp_init_decay and "theta" not in features, "--amp-init-decay needs theta in --amp-features"),
        (cfg.amp_decay_nonneg and cfg.amp_init_decay < 0, "--amp-decay-nonneg keeps the decay >= 0: "
                                                          "--amp-init-decay must be >= 0"),
        (bool(cfg.amplifier) and cfg.method != "neuralgrok", "--amplifier is only used with --method neuralgrok"),
    ]
    for bad, message in conflicts:
        if bad:
            raise ConfigError(message)
