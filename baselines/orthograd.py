"""⊥Grad (Prieto et al. 2025): each tensor's gradient without its component along the tensor's weights, at its own norm."""
from __future__ import annotations

from typing import Iterable

import torch

from .transform import GradientTransform, Grads

EPS = 1e-30  # the reference code's guard against a zero weight or a gradient parallel to the weights


class OrthoGrad(GradientTransform):
    """``g⊥ = g − (w·g / (w·w + ε))·w``, then ``g' = g⊥ · ‖g‖ / (‖g⊥‖ + ε)``, per parameter tensor.

    The weights are read from ``params`` (the live parameters, in the order of the
    gradients) at every call, so the transform sees the current ``w``. Removing the
    gradient's radial part stops the "naive loss minimisation" of Prieto et al., where
    past memorisation the loss falls by scaling the weights up without changing
    predictions. Dot products are taken in float64. Stateless.
    """

    def __init__(self, params: Iterable[torch.Tensor]):
        self.params = list(params)

    def __call__(self, grads: Grads) -> Grads:
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"OrthoGrad holds {len(self.params)} parameters but got {len(grads)} gradients")
        return [_orthogonal(g, w.detach()) for g, w in zip(grads, self.params)]


def _orthogonal(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    g64, w64 = g.reshape(-1).double(), w.reshape(-1).double()
    ortho = g64 - (torch.dot(w64, g64) / (torch.dot(w64, w64) + EPS)) * w64
    out = ortho * (g64.norm() / (ortho.norm() + EPS))
    return out.reshape(g.shape).to(g.dtype)
