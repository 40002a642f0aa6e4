"""Gradient-normalisation baseline: rescale gradients to a fixed L2 norm ``c``."""
from __future__ import annotations

import math
from numbers import Real

import torch

from .transform import Context, GradientTransform, Grads, Update


SCOPES = ("tensor", "global")


class GradNorm(GradientTransform):
    """``g' = c·g / (‖g‖₂ + eps)``, per tensor (``scope='tensor'``) or with one norm over
    the concatenation of all tensors (``scope='global'``).

    A gradient whose norm is 0 stays 0.  Norms are computed in at least float32.
    Stateless.
    """

    def __init__(self, c: float = 1.0, scope: str = "tensor", eps: float = 0.0):
        if isinstance(c, bool) or not isinstance(c, Real) or not math.isfinite(float(c)) or c <= 0:
            raise ValueError(f"c must be a finite number > 0, got {c!r}")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(float(eps)) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        self.c, self.scope, self.eps = float(c), scope, float(eps)

    def update(self, grads: Grads, ctx: Context) -> Update:
        if not grads:
            return Update([])
        dtype = torch.float32
        for g in grads:
            dtype = torch.promote_types(dtype, g.dtype)
        try:
            norms = list(torch._foreach_norm(grads, 2, dtype=dtype))
        except TypeError:  # torch without the dtype argument
            norms = list(torch._foreach_norm([g.to(dtype) for g in grads], 2))
        if self.scope == "global":
            total = torch.linalg.vector_norm(torch.stack([n.to(grads[0].device) for n in norms]))
            norms = [total.to(g.device) for g in grads]
        scales = [
            torch.where(n > 0, self.c / (n + self.eps), torch.zeros_like(n)).to(g.dtype)
            for n, g in zip(norms, grads)
        ]
        return Update(list(torch._foreach_mul(grads, scales)))
