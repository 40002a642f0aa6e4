"""The gradient-transform interface shared by every method, and chaining of transforms."""
from __future__ import annotations

from typing import Any

import torch

Grads = list[torch.Tensor]


class GradientTransform:
    """Maps the list of a model's gradients to a new list, keeping explicit state.

    A transform is called once per optimizer step, between ``backward()`` and
    ``step()``::

        grads = [p.grad for p in params]
        for p, g in zip(params, transform(grads)):
            p.grad = g

    It never modifies its input tensors and returns tensors of the same shapes and
    dtypes.  Everything it remembers between calls lives in ``state_dict()`` so that a
    run can be checkpointed and resumed exactly.
    """

    def __call__(self, grads: Grads) -> Grads:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got keys {sorted(state)}")


class Identity(GradientTransform):
    """Returns the gradients unchanged (standard training)."""

    def __call__(self, grads: Grads) -> Grads:
        return list(grads)


class Chain(GradientTransform):
    """Applies transforms left to right: ``Chain(a, b)(g) == b(a(g))``."""

    def __init__(self, *transforms: GradientTransform):
        self.transforms = list(transforms)

    def __call__(self, grads: Grads) -> Grads:
        for t in self.transforms:
            grads = t(grads)
        return grads

    def state_dict(self) -> dict[str, Any]:
        return {str(i): t.state_dict() for i, t in enumerate(self.transforms)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if sorted(state) != sorted(str(i) for i in range(len(self.transforms))):
            raise ValueError(f"Chain of {len(self.transforms)} transforms cannot load state with keys {sorted(state)}")
        for i, t in enumerate(self.transforms):
            t.load_state_dict(state[str(i)])
