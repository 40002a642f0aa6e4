"""The gradient methods: one registry from which the command line, config validation and the trainer read.

A new method is a ``GradientTransform`` (``baselines/`` or ``neuralgrok/``) and one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from baselines import GradientTransform, GradNorm, GrokfastEMA, GrokfastMA, Identity, OrthoGrad

if TYPE_CHECKING:
    from .config import RunConfig


def _neuralgrok(cfg: "RunConfig") -> GradientTransform:
    from .bilevel import NeuralGrok
    return NeuralGrok.from_config(cfg)


@dataclass(frozen=True)
class Method:
    """How to build a method's transform from the run config, what it does, and its default gradient clipping."""

    build: Callable[["RunConfig"], GradientTransform]
    summary: str
    clip_grad: float = 0.0


METHODS: dict[str, Method] = {
    "standard": Method(lambda cfg: Identity(), "the gradient as it is"),
    "gradnorm": Method(lambda cfg: GradNorm(c=cfg.gradnorm_c, scope=cfg.gradnorm_scope),
                       "rescaled to norm c, per tensor or globally"),
    "grokfast_ma": Method(lambda cfg: GrokfastMA(window=cfg.ma_window, lamb=cfg.ma_lamb, reduce=cfg.ma_reduce),
                          "Grokfast-MA: plus lambda times the mean of the last w gradients"),
    "grokfast_ema": Method(lambda cfg: GrokfastEMA(alpha=cfg.ema_alpha, lamb=cfg.ema_lamb),
                           "Grokfast-EMA: plus lambda times an exponential average of the gradients"),
    "orthograd": Method(lambda cfg: OrthoGrad(), "⊥Grad: without its component along the weights, at its own norm"),
    "neuralgrok": Method(_neuralgrok, "NeuralGrok: rescaled entry by entry by a meta-learnt amplifier",
                         clip_grad=1.0),
}


def build_transform(cfg: "RunConfig") -> GradientTransform:
    """The gradient transform that ``cfg.method`` applies between backward and step."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[cfg.method].build(cfg)
