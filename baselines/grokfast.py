"""Grokfast gradient filters: amplify the slow (low-frequency) part of each gradient's history."""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch

from .transform import Context, GradientTransform, Grads, Update


REDUCTIONS = ("mean", "sum")  # Grokfast-MA: what of the window is added


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _check_grads(name: str, grads: Grads, state: list[torch.Tensor], shapes: list[torch.Size]) -> None:
    """Raise ValueError unless ``grads`` matches the tensors the state was built for."""
    if len(grads) != len(state):
        raise ValueError(f"{name} holds state for {len(state)} tensors, got {len(grads)} gradients")
    for i, (g, s, shape) in enumerate(zip(grads, state, shapes)):
        if g.shape != shape or g.dtype != s.dtype:
            raise ValueError(
                f"{name}: gradient {i} has shape {tuple(g.shape)} and dtype {g.dtype}, "
                f"state expects shape {tuple(shape)} and dtype {s.dtype}"
            )


def _tensor_list(name: str, key: str, value: Any) -> list[torch.Tensor]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in value):
        raise ValueError(f"{name} state {key!r} must be a list of tensors, got {type(value).__name__}")
    return [t.detach().clone() for t in value]


def _keys(name: str, state: dict[str, Any], expected: set[str]) -> None:
    if set(state) != expected:
        raise ValueError(f"{name} state must have keys {sorted(expected)}, got {sorted(state)}")


class GrokfastEMA(GradientTransform):
    """Exponential-moving-average filter: ``h ← α·h + (1−α)·g``, output ``g + λ·h``.

    ``h`` starts at the first gradient, so the first output is ``g + λ·g``.
    """

    def __init__(self, alpha: float = 0.98, lamb: float = 2.0):
        alpha = _real("alpha", alpha)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        lamb = _real("lamb", lamb)
        if lamb < 0:
            raise ValueError(f"lamb must be >= 0, got {lamb}")
        self.alpha, self.lamb = alpha, lamb
        self.h: list[torch.Tensor] = []

    def update(self, grads: Grads, ctx: Context) -> Update:
        if not self.h:
            h = [g.detach().clone() for g in grads]
        else:
            _check_grads("GrokfastEMA", grads, self.h, [h.shape for h in self.h])
            h = [h if h.device == g.device else h.to(g.device) for h, g in zip(self.h, grads)]
            h = torch._foreach_mul(h, self.alpha)
            torch._foreach_add_(h, grads, alpha=1.0 - self.alpha)

        def commit() -> None:
            self.h = h
        return Update(list(torch._foreach_add(grads, h, alpha=self.lamb)), commit=commit)

    def state_dict(self) -> dict[str, Any]:
        return {"h": [h.clone() for h in self.h]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _keys("GrokfastEMA", state, {"h"})
        self.h = _tensor_list("GrokfastEMA", "h", state["h"])


class GrokfastMA(GradientTransform):
    """Moving-average filter over the last ``window`` gradients: output ``g + λ·mean(window)``.

    One ring buffer of shape ``(window, *g.shape)`` per tensor, allocated on the first call,
    plus a running sum that is recomputed exactly from the buffer every ``window`` steps.
    The window includes the current gradient.  With ``warmup=True`` the gradient passes
    unchanged until the window is full; with ``warmup=False`` the filter uses the
    gradients seen so far from the first step.  ``reduce='sum'`` adds ``λ·sum(window)``.
    """

    def __init__(self, window: int = 100, lamb: float = 5.0, reduce: str = "mean", warmup: bool = True):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        lamb = _real("lamb", lamb)
        if lamb < 0:
            raise ValueError(f"lamb must be >= 0, got {lamb}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
        if not isinstance(warmup, bool):
            raise ValueError(f"warmup must be a bool, got {warmup!r}")
        self.window, self.lamb, self.reduce, self.warmup = window, lamb, reduce, warmup
        self.buffers: list[torch.Tensor] = []
        self.sums: list[torch.Tensor] = []
        self.pos = 0  # slot the next gradient is written to
        self.count = 0  # gradients currently in the window (<= window)

    def update(self, grads: Grads, ctx: Context) -> Update:
        buffers, sums = self.buffers, self.sums
        if not buffers:
            buffers = [g.new_zeros((self.window, *g.shape)) for g in grads]
            sums = [g.new_zeros(g.shape) for g in grads]
        else:
            _check_grads("GrokfastMA", grads, sums, [s.shape for s in sums])
            if any(b.device != g.device for b, g in zip(buffers, grads)):
                buffers = [b.to(g.device) for b, g in zip(buffers, grads)]
                sums = [s.to(g.device) for s, g in zip(sums, grads)]
        pos, count = (self.pos + 1) % self.window, min(self.count + 1, self.window)
        if pos == 0:  # every `window` steps: the sum recomputed exactly, over the buffer with g in its slot
            written = [torch.cat([b[:self.pos], g.unsqueeze(0), b[self.pos + 1:]]) for b, g in zip(buffers, grads)]
            sums = [b.sum(dim=0) for b in written]
        else:
            written = None
            if self.count == self.window:
                sums = torch._foreach_sub(sums, [b[self.pos] for b in buffers])  # drop the oldest gradient
                torch._foreach_add_(sums, grads)
            else:
                sums = torch._foreach_add(sums, grads)

        def commit() -> None:
            if written is not None:
                self.buffers = written
            else:
                self.buffers = buffers
                for b, g in zip(self.buffers, grads):
                    b[self.pos].copy_(g)
            self.sums, self.pos, self.count = sums, pos, count
        if self.warmup and count < self.window:
            return Update([g.clone() for g in grads], commit=commit)
        scale = self.lamb / count if self.reduce == "mean" else self.lamb
        return Update(list(torch._foreach_add(grads, sums, alpha=scale)), commit=commit)

    def state_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "buffers": [b.clone() for b in self.buffers],
            "sums": [s.clone() for s in self.sums],
            "pos": self.pos,
            "count": self.count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name = "GrokfastMA"
        _keys(name, state, {"window", "buffers", "sums", "pos", "count"})
        if state["window"] != self.window:
            raise ValueError(f"{name} has window {self.window}, state has window {state['window']!r}")
        buffers = _tensor_list(name, "buffers", state["buffers"])
        sums = _tensor_list(name, "sums", state["sums"])
        if len(buffers) != len(sums):
            raise ValueError(f"{name} state has {len(buffers)} buffers but {len(sums)} sums")
        for i, (b, s) in enumerate(zip(buffers, sums)):
            if b.shape != (self.window, *s.shape) or b.dtype != s.dtype:
                raise ValueError(
                    f"{name} state tensor {i}: buffer shape {tuple(b.shape)} ({b.dtype}) does not match "
                    f"window {self.window} and sum shape {tuple(s.shape)} ({s.dtype})"
                )
        pos, count = state["pos"], state["count"]
        for key, v in (("pos", pos), ("count", count)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} state {key!r} must be an int, got {v!r}")
        if not buffers and (pos, count) != (0, 0):
            raise ValueError(f"{name} state without buffers must have pos 0 and count 0, got {pos}, {count}")
        if not (0 <= pos < self.window and 0 <= count <= self.window and (count == self.window or pos == count)):
            raise ValueError(f"{name} state has inconsistent pos {pos} and count {count} for window {self.window}")
        self.buffers, self.sums, self.pos, self.count = buffers, sums, pos, count
