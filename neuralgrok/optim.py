"""Inner optimizers whose update rule is written once and used both to step and to look ahead.

``InnerOptimizer.step()`` applies the rule in place; ``InnerOptimizer.lookahead()``
applies the same rule out of place, differentiably in the gradients, leaving the
parameters and the moment estimates untouched. The NeuralGrok meta step uses the
latter to differentiate the loss after one step through the amplifier.

State is kept flat: one vector per moment for the whole parameter group, so a step
is a handful of vectorised operations whatever the number of tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
LOOKAHEADS = ("sgd", "inner")  # the look-ahead rules: plain SGD, or the optimizer's own


@dataclass(frozen=True)
class Hyper:
    """One parameter group's hyperparameters as the rule reads them."""

    kind: str
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float


def update_rule(h: Hyper, param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor | None,
                v: torch.Tensor | None, step: int):
    """One step of ``h.kind`` on flat vectors: returns (new_param, new_m, new_v).

    ``step`` counts steps including this one (1 on the first).  Out of place and
    differentiable in ``grad``; matches ``torch.optim.Adam`` (L2 weight decay added
    to the gradient), ``torch.optim.AdamW`` (decoupled decay) and plain ``torch.optim.SGD``.
    """
    if h.kind == "sgd":
        if h.weight_decay:
            grad = grad + h.weight_decay * param
        return param - h.lr * grad, m, v
    b1, b2 = h.betas
    if h.kind == "adamw":
        param = param * (1 - h.lr * h.weight_decay)
    elif h.weight_decay:
        grad = grad + h.weight_decay * param
    m = torch.lerp(m, grad, 1 - b1)
    v = v * b2 + (1 - b2) * grad * grad
    denom = _sqrt(v) / math.sqrt(1 - b2 ** step) + h.eps
    return param - (h.lr / (1 - b1 ** step)) * m / denom, m, v


def _sqrt(v: torch.Tensor) -> torch.Tensor:
    """``√v``; under autograd its derivative at v = 0 (a zero gradient entry, first step) is 0, not ∞·0 = NaN."""
    if not v.requires_grad:
        return v.sqrt()
    positive = v > 0
    return torch.where(positive, v, torch.ones_like(v)).sqrt() * positive


def flatten(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like) -> list[torch.Tensor]:
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in like]), like)]


class InnerOptimizer(torch.optim.Optimizer):
    """Adam (L2 decay), AdamW (decoupled decay) or SGD over flat state, with a look-ahead."""

    def __init__(self, params, kind: str = "adam", lr: float = 1e-3, betas=(0.9, 0.98), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")
        super().__init__(params, dict(kind=kind, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @staticmethod
    def _hyper(group) -> Hyper:
        return Hyper(group["kind"], group["lr"], tuple(group["betas"]), group["eps"], group["weight_decay"])

    def _state(self, group) -> dict:
        """The group's flat state, kept on its first parameter (so state_dict saves it)."""
        state = self.state[group["params"][0]]
        if not state:
            n = sum(p.numel() for p in group["params"])
            state["step"] = 0
            if group["kind"] != "sgd":
                ref = group["params"][0]
                state["exp_avg"] = torch.zeros(n, dtype=ref.dtype, device=ref.device)
                state["exp_avg_sq"] = torch.zeros(n, dtype=ref.dtype, device=ref.device)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"]]
            if any(p.grad is None for p in params):
                raise RuntimeError("InnerOptimizer needs a gradient for every parameter")
            state = self._state(group)
            state["step"] += 1
            new_p, m, v = update_rule(self._hyper(group), flatten(params), flatten(p.grad for p in params),
                                      state.get("exp_avg"), state.get("exp_avg_sq"), state["step"])
            torch._foreach_copy_(params, unflatten(new_p, params))
            if m is not None:
                state["exp_avg"], state["exp_avg_sq"] = m, v
        return loss

    def lookahead(self, grads: list[torch.Tensor], rule: str = "inner") -> list[torch.Tensor]:
        """Parameters after one step with ``grads``, without changing anything.

        ``rule='inner'`` uses this optimizer's own rule and current moments; ``'sgd'``
        uses ``θ − lr·g`` (the NeuralGrok paper's look-ahead), with the current lr.
        The result is differentiable in ``grads``; the parameters enter as constants.
        """
        out, offset = [], 0
        for group in self.param_groups:
            params = group["params"]
            k = len(params)
            g = flatten(grads[offset:offset + k])
            theta = flatten(p.detach() for p in params)
            h = self._hyper(group)
            if rule == "sgd":
                new = theta - h.lr * g
            elif rule == "inner":
                state = self._state(group)
                new, _, _ = update_rule(h, theta, g, state.get("exp_avg"), state.get("exp_avg_sq"), state["step"] + 1)
            else:
                raise ValueError(f"unknown look-ahead rule {rule!r}; choose one of {', '.join(LOOKAHEADS)}")
            out += unflatten(new, params)
            offset += k
        return out


    def unroll(self, first: list[torch.Tensor], later, steps: int, rule: str = "inner") -> list[torch.Tensor]:
        """Parameters after ``steps`` steps from the current state, without changing anything.

        The first step uses ``first``; step k > 1 uses ``later(params)``, the gradients at the
        parameters reached so far. Each step applies this optimizer's rule (``'inner'``,
        carrying its moments and step count forward) or ``θ − lr·g`` (``'sgd'``), at the current
        learning rate. Differentiable in every gradient given (and, through ``later``, in the
        parameters it is evaluated at); ``steps = 1`` is :meth:`lookahead`. One parameter group.
        """
        if len(self.param_groups) != 1:
            raise ValueError("unroll supports one parameter group")
        if rule not in LOOKAHEADS:
            raise ValueError(f"unknown look-ahead rule {rule!r}; choose one of {', '.join(LOOKAHEADS)}")
        group = self.param_groups[0]
        params, h, state = group["params"], self._hyper(group), self._state(group)
        theta, m, v = flatten(p.detach() for p in params), state.get("exp_avg"), state.get("exp_avg_sq")
        g = flatten(first)
        for k in range(steps):
            if k:
                g = flatten(later(unflatten(theta, params)))
            if rule == "sgd":
                theta = theta - h.lr * g
            else:
                theta, m, v = update_rule(h, theta, g, m, v, state["step"] + k + 1)
        return unflatten(theta, params)


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up: step s (from 0) uses lr·min(1, (s+1)/warmup_steps)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
