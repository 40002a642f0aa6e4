"""Builds each method's gradient transform from the run config."""
from __future__ import annotations

from baselines import GradientTransform, GradNorm, GrokfastEMA, GrokfastMA, Identity, OrthoGrad

from .config import RunConfig


def build_transform(cfg: RunConfig) -> GradientTransform:
    """The gradient transform that ``cfg.method`` applies between backward and step."""
    if cfg.method == "standard":
        return Identity()
    if cfg.method == "gradnorm":
        return GradNorm(c=cfg.gradnorm_c, scope=cfg.gradnorm_scope)
    if cfg.method == "grokfast_ma":
        return GrokfastMA(window=cfg.ma_window, lamb=cfg.ma_lamb, reduce=cfg.ma_reduce)
    if cfg.method == "grokfast_ema":
        return GrokfastEMA(alpha=cfg.ema_alpha, lamb=cfg.ema_lamb)
    if cfg.method == "orthograd":
        return OrthoGrad()  # the weights come with each step's Context
    if cfg.method == "neuralgrok":
        from .bilevel import NeuralGrok
        return NeuralGrok.from_config(cfg)
    raise ValueError(f"unknown method {cfg.method!r}")
