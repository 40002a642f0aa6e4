"""⊥Grad (Prieto et al. 2025): each tensor's gradient without its component along the tensor's weights, at its own norm."""
from __future__ import annotations

from typing import Iterable

import torch

from .transform import Context, GradientTransform, Grads, Update

EPS = 1e-30  # the reference code's guard against a zero weight or a gradient parallel to the weights


class OrthoGrad(GradientTransform):
    """``g⊥ = g − (w·g / (w·w + ε))·w``, then ``g' = g⊥ · ‖g‖ / (‖g⊥‖ + ε)``, per parameter tensor.

    The weights are the step's ``ctx.params`` (the trainer passes its live parameters),
    or else the ``params`` given here (for a loop of one's own: ``OrthoGrad(model.parameters())``);
    they are read at every call, so the transform sees the current ``w``. Removing the
    gradient's radial part stops the "naive loss minimisation" of Prieto et al., where
    past memorisation the loss falls by scaling the weights up without changing
    predictions. Dot products are taken in float64. Stateless.
    """

    def __init__(self, params: Iterable[torch.Tensor] | None = None):
        self.params = None if params is None else list(params)

    def update(self, grads: Grads, ctx: Context) -> Update:
        params = ctx.params if ctx.params is not None else self.params
        if params is None:
            raise ValueError("OrthoGrad needs the weights: OrthoGrad(model.parameters()) or a Context with params")
        if len(grads) != len(params):
            raise ValueError(f"OrthoGrad got {len(params)} parameters but {len(grads)} gradients")
        return Update([_orthogonal(g, w.detach()) for g, w in zip(grads, params)])


def _orthogonal(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    g64, w64 = g.reshape(-1).double(), w.reshape(-1).double()
    ortho = g64 - (torch.dot(w64, g64) / (torch.dot(w64, w64) + EPS)) * w64
    out = ortho * (g64.norm() / (ortho.norm() + EPS))
    return out.reshape(g.shape).to(g.dtype)
