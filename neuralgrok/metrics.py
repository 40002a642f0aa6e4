"""Training diagnostics as pure functions of tensors: absolute gradient entropy (AGE) and absolute weight entropy (AWE)."""
from __future__ import annotations

import math
from typing import Iterable, Sequence, Union

import torch

Tensors = Union[torch.Tensor, Iterable[torch.Tensor]]


def _as_list(x: Tensors) -> list[torch.Tensor]:
    """A tensor or an iterable of tensors as a list; ``None`` entries (parameters without a gradient) are dropped."""
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for t in x if t is not None]


def _sum_abs_xlogx(tensors: list[torch.Tensor], scale: float = 1.0) -> float:
    """Σ |t/scale| · ln |t/scale| over every entry, in float64; an entry of 0 contributes 0 (x·ln x → 0)."""
    total = 0.0
    for t in tensors:
        a = t.detach().abs().to(torch.float64)  # float64 whatever the gradient's dtype
        if scale != 1.0:
            a = a / scale
        total += torch.special.xlogy(a, a).sum().item()  # xlogy(0, 0) = 0, never NaN
    return total


def age(g: Tensors) -> float:
    """Absolute Gradient Entropy, ``AGE(g) = −Σ_i |g_i| · ln |g_i|``, over all entries of ``g``.

    ``g`` is one tensor or a list of tensors (taken as their concatenation, as the
    public NeuralGrok code does). Zeros contribute 0. Computed in float64; returns a
    Python float.

    AGE depends on the gradient's scale: multiplying g by s gives
    ``s·AGE(g) − s·ln(s)·‖g‖₁``. Values from methods that normalise the gradient
    (gradient normalisation, NeuralGrok) are therefore not comparable with those of
    raw gradients (standard training, Grokfast); use :func:`age_scaled`, the
    scale-free variant, to compare across methods.
    """
    return -_sum_abs_xlogx(_as_list(g))


def age_scaled(g: Tensors) -> float:
    """Scale-free AGE: the AGE of ``g / ‖g‖₁``, i.e. the Shannon entropy (nats) of the distribution |g_i| / Σ|g|.

    Unlike :func:`age`, which depends on the gradient's scale (so normalised methods
    are not comparable with raw ones), this value is unchanged when g is multiplied by
    any non-zero constant; it lies in [0, ln n] for n entries. A zero gradient gives 0.0.
    """
    tensors = _as_list(g)
    l1 = sum(t.detach().abs().to(torch.float64).sum().item() for t in tensors)
    if l1 == 0.0:
        return 0.0
    if not math.isfinite(l1):
        return math.nan
    return -_sum_abs_xlogx(tensors, scale=l1)


def awe(w: Tensors) -> float:
    """Absolute Weight Entropy, ``AWE(w) = −Σ |w| · ln |w|``, over all entries of a list of parameter tensors.

    The weight-space counterpart of :func:`age` (same formula, float64, zeros give 0);
    like AGE it depends on the scale of the weights. Returns a Python float.
    """
    return -_sum_abs_xlogx(_as_list(w))


def age_per_tensor(grads: Sequence[torch.Tensor | None], names: Sequence[str]) -> dict[str, float]:
    """AGE of each tensor separately, ``{name: AGE(grad)}`` (the older per-tensor form of the metric).

    Scale-dependent like :func:`age`; a missing gradient (``None``) gives 0.0.
    """
    grads, names = list(grads), list(names)
    if len(grads) != len(names):
        raise ValueError(f"age_per_tensor: {len(grads)} gradients but {len(names)} names")
    return {n: (0.0 if g is None else age(g)) for n, g in zip(names, grads)}
