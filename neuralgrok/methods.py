"""The gradient methods: one registry, from which the command line, the config, validation and the reports read.

A new method is a ``GradientTransform`` and one entry::

    register("toy", Method(build=lambda cfg: ToyScale(cfg.toy_scale), summary="the gradient times s",
                           options=(Option("toy_scale", 2.0, "toy: the factor s", check=above(0)),),
                           label="toy scaling", colour="#17becf"))

Its options become run options (``--toy-scale``, in ``RunConfig``, ``--help`` and config files),
checked as declared; its label and colour are the reports'.  Register before ``neuralgrok.config``
is imported: from a module named in the ``NEURALGROK_PLUGINS`` environment variable (comma-separated
module names; they reach grid cells and cluster jobs with the environment) or an installed
package's ``neuralgrok.methods`` entry point, both loaded when this module is.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from baselines import GradientTransform, GradNorm, GrokfastEMA, GrokfastMA, Identity, OrthoGrad
from baselines.gradnorm import SCOPES
from baselines.grokfast import REDUCTIONS

from .options import Option, above, at_least, in_range

RunConfig = Any  # a neuralgrok.config.RunConfig (built from this registry, so not imported here)


@dataclass(frozen=True)
class Method:
    """A method: how to build its transform from the run config, what it does, its options, default clipping, and
    how reports name and colour it (label: the method's name when empty)."""

    build: Callable[[RunConfig], GradientTransform]
    summary: str
    clip_grad: float = 0.0
    options: tuple[Option, ...] = ()
    check: Callable[[RunConfig], None] | None = None  # options that constrain one another; raises ConfigError
    label: str = ""
    colour: str = ""


def _neuralgrok(cfg: RunConfig) -> GradientTransform:
    from .bilevel import NeuralGrok
    return NeuralGrok.from_config(cfg)


def _builtin() -> dict[str, Method]:
    from .neuralgrok_options import OPTIONS as NEURALGROK, check_config
    return {
        "standard": Method(lambda cfg: Identity(), "the gradient as it is", colour="#4d4d4d"),
        "gradnorm": Method(lambda cfg: GradNorm(c=cfg.gradnorm_c, scope=cfg.gradnorm_scope),
                           "rescaled to norm c, per tensor or globally", colour="#9467bd",
                           options=(Option("gradnorm_c", 1.0, "gradient normalisation: target norm c", check=above(0)),
                                    Option("gradnorm_scope", "tensor", "gradient normalisation: per tensor or over the "
                                                                       "global gradient", choices=SCOPES))),
        "grokfast_ma": Method(lambda cfg: GrokfastMA(window=cfg.ma_window, lamb=cfg.ma_lamb, reduce=cfg.ma_reduce),
                              "Grokfast-MA: plus lambda times the mean of the last w gradients", colour="#1f77b4",
                              options=(Option("ma_window", 100, "Grokfast-MA: window length", check=at_least(1)),
                                       Option("ma_lamb", 5.0, "Grokfast-MA: amplification lambda", check=at_least(0)),
                                       Option("ma_reduce", "mean", "Grokfast-MA: mean or sum of the window",
                                              choices=REDUCTIONS))),
        "grokfast_ema": Method(lambda cfg: GrokfastEMA(alpha=cfg.ema_alpha, lamb=cfg.ema_lamb),
                               "Grokfast-EMA: plus lambda times an exponential average of the gradients",
                               colour="#2ca02c",
                               options=(Option("ema_alpha", 0.98, "Grokfast-EMA: momentum alpha in [0, 1)",
                                               check=in_range(0, 1)),
                                        Option("ema_lamb", 2.0, "Grokfast-EMA: amplification lambda",
                                               check=at_least(0)))),
        "orthograd": Method(lambda cfg: OrthoGrad(), "⊥Grad: without its component along the weights, at its own norm",
                            colour="#e6a817"),
        "neuralgrok": Method(_neuralgrok, "NeuralGrok: rescaled entry by entry by a meta-learnt amplifier",
                             clip_grad=1.0, options=NEURALGROK, check=check_config, colour="#d62728"),
    }


METHODS: dict[str, Method] = _builtin()
_FROZEN: list[bool] = [False]  # set once neuralgrok.config has built RunConfig from the registry


def register(name: str, method: Method) -> None:
    """Adds a method to the registry (before ``neuralgrok.config`` is imported when it has options)."""
    if name in METHODS:
        raise ValueError(f"a method named {name!r} is registered already")
    taken = {o.name for m in METHODS.values() for o in m.options}
    clash = [o.name for o in method.options if o.name in taken]
    if clash:
        raise ValueError(f"method {name!r}: option(s) {', '.join(clash)} belong to another method")
    if _FROZEN[0] and method.options:
        raise RuntimeError(f"method {name!r} has options, so it must be registered before neuralgrok.config is "
                           f"imported: from a NEURALGROK_PLUGINS module or a neuralgrok.methods entry point")
    METHODS[name] = method


def label_of(name: str) -> str:
    """The reports' name for a registered method (its own name unless it gives a label)."""
    return (METHODS[name].label or name) if name in METHODS else name


def rank_of(name: str) -> int:
    """A method's place in tables and figures: the registry's order, with room after each for its variants."""
    return 2 * list(METHODS).index(name) if name in METHODS else 2 * len(METHODS)


def build_transform(cfg: RunConfig) -> GradientTransform:
    """The gradient transform that ``cfg.method`` applies between backward and step."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[cfg.method].build(cfg)


def _load_plugins() -> None:
    for name in filter(None, (s.strip() for s in os.environ.get("NEURALGROK_PLUGINS", "").split(","))):
        importlib.import_module(name)
    for entry in entry_points(group="neuralgrok.methods"):
        entry.load()


_load_plugins()
