"""Answer losses: softmax cross-entropy (float32 or float64), and StableMax cross-entropy (Prieto et al. 2025), which avoids softmax collapse."""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("softmax", "softmax64", "stablemax")


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """StableMax's replacement for exp: ``x + 1`` for x ≥ 0 and ``1 / (1 − x)`` for x < 0 (positive, increasing)."""
    return torch.where(x >= 0, x + 1, 1 / (1 - x.clamp(max=0)))  # the clamp keeps the unused branch finite


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    """``log(s(x_i) / Σ_j s(x_j))`` over the last dimension, in float64 as the reference code computes it."""
    s = stablemax_s(logits.double())
    return torch.log(s) - torch.log(s.sum(-1, keepdim=True))


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, loss: str = "softmax",
                  reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits`` (B, V) against ``target`` (B,) under ``loss``; float32 result.

    ``softmax`` is ``F.cross_entropy`` in float32; ``softmax64`` the same in float64, where the
    correct class's gradient does not round to zero as soon (Prieto et al.'s no-collapse
    baseline); ``stablemax`` is ``−log StableMax(logits)[target]``, in float64.
    The prediction (arg max) is the same under both, since s is increasing.
    """
    if loss == "softmax":
        return F.cross_entropy(logits.float(), target, reduction=reduction)
    if loss == "softmax64":
        return F.cross_entropy(logits.double(), target, reduction=reduction).float()
    if loss == "stablemax":
        return F.nll_loss(log_stablemax(logits), target, reduction=reduction).float()
    raise ValueError(f"unknown loss {loss!r}: choose from {', '.join(LOSSES)}")
