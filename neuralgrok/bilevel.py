"""NeuralGrok as a gradient transform: the amplifier, its meta step and schedule, and saving and loading it.

The inner step sees ``g' = G_φ(g)``.  Every T steps (``meta_every``) the update also
takes a meta step: with the inner gradient g held constant it forms the look-ahead
``θ' = θ − η·U(G_φ(g))`` (U: the inner optimizer's rule, or plain SGD), takes the loss
of θ' on the outer slice, and computes ∂L(θ')/∂φ; the amplifier's optimizer steps on
it when the update is committed.  Only first-order derivatives through the base model
are needed.  With a horizon K > 1 the look-ahead is K steps long: steps 2..K use
G_φ of the training gradient at the parameters reached (fresh batches of their own), and
∂L(θ_K)/∂φ is taken through all K steps, second derivatives included unless
``first_order``.  The inner step reuses the transformed gradient of the meta step instead
of evaluating the amplifier again.

``order="after"`` takes the meta step as both public codes do instead: after the model's
optimizer step, at θ_{t+1}, from the gradient of the same batch recomputed there
(``Context.batch_grads``), once every T steps counted from the first (after steps T, 2T, …).
The look-ahead and meta-gradient are the same computation.  ``weight_decay`` is the amplifier
optimizer's (Adam's, added to the gradient); both public codes pass it the model's.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from baselines import Context, GradientTransform, Update

from .amplifier import SOFTMAX_AXES, AmplifierMLP, amplify
from .amplifier_files import AMPLIFIER_FILE, AMPLIFIER_META, flags_for, read_amplifier
from .errors import AmplifierFileError

ORDERS = ("before", "after")  # --meta-order: the meta step at θ_t before the model's step, or at θ_{t+1} after it


class NeuralGrok(GradientTransform):
    """Transforms gradients with a learnt amplifier and meta-trains it on the outer slice."""

    uses_outer_slice = True  # the trainer holds the outer slice back from the inner steps

    def __init__(self, hidden=(128, 128), c: float = 1.0, mode: str = "piecewise", meta_lr: float = 1e-4,
                 betas=(0.9, 0.98), frozen: bool = False, meta_every: int = 4, lookahead: str = "sgd",
                 horizon: int = 1, first_order: bool = False, order: str = "before", weight_decay: float = 0.0,
                 softmax: str = "tensor"):
        if order not in ORDERS:
            raise ValueError(f"meta-step order must be one of {', '.join(ORDERS)}, got {order!r}")
        if softmax not in SOFTMAX_AXES:
            raise ValueError(f"amplifier softmax axis must be one of {', '.join(SOFTMAX_AXES)}, got {softmax!r}")
        self.hidden, self.c, self.mode, self.frozen = tuple(hidden), float(c), mode, frozen
        self.meta_every, self.lookahead = meta_every, lookahead
        self.horizon, self.first_order = horizon, first_order
        self.order, self.softmax = order, softmax
        self.mlp = self.make_amplifier()
        self.opt = torch.optim.Adam(self.mlp.parameters(), lr=meta_lr, betas=tuple(betas), weight_decay=weight_decay)
        self.last_outer_loss: float | None = None
        self.meta_steps = 0

    @classmethod
    def from_config(cls, cfg, **extra) -> "NeuralGrok":
        ng = cls(hidden=cfg.amp_hidden, c=cfg.amp_c, mode=cfg.amp_eval, meta_lr=cfg.meta_lr,
                 betas=(cfg.meta_beta1, cfg.meta_beta2), frozen=cfg.freeze_amplifier, meta_every=cfg.meta_every,
                 lookahead=cfg.lookahead, horizon=cfg.meta_horizon, first_order=cfg.meta_first_order,
                 order=cfg.meta_order, weight_decay=cfg.meta_weight_decay, softmax=cfg.amp_softmax, **extra)
        if cfg.amplifier:
            ng.load_amplifier(cfg.amplifier)
        return ng

    def make_amplifier(self) -> torch.nn.Module:
        """The learnt network (a subclass with other inputs builds its own)."""
        return AmplifierMLP(self.hidden)

    # -- the transform ------------------------------------------------------------
    def update(self, grads: list[torch.Tensor], ctx: Context) -> Update:
        """The amplified gradients; on a meta step (every ``meta_every`` steps, given an outer loss) also φ's step.

        The amplifier's optimizer steps only when the update is committed, and the
        update is not ``ok`` when the outer loss or its meta-gradient is not finite.
        """
        if self.order == "after" or not self._meta_due(ctx, ctx.step):
            with torch.no_grad():
                new, stats = self._apply(grads, ctx.params, ctx.log)
            return Update(new, self._stats(stats, self.last_outer_loss) if ctx.log else {})
        return self._meta_update(grads, ctx)

    def after_step(self, ctx: Context) -> Update:
        """With ``order="after"``, the meta step at the parameters just reached, from this batch's gradient there."""
        if self.order != "after" or not self._meta_due(ctx, ctx.step + 1):
            return Update([])
        if ctx.batch_grads is None:
            raise ValueError("a meta step after the model's step needs Context.batch_grads")
        return self._meta_update(ctx.batch_grads(ctx.params), ctx)

    def _meta_due(self, ctx: Context, count: int) -> bool:
        """A meta step is due at ``count`` (steps taken before it) every ``meta_every``, given an outer loss."""
        return not self.frozen and ctx.outer_loss is not None and count % self.meta_every == 0

    def _meta_update(self, grads: list[torch.Tensor], ctx: Context) -> Update:
        """The meta step: ∂L_outer(θ')/∂φ summed over processes, with θ' the look-ahead through G_φ(g)."""
        raw = [g.detach() for g in grads]
        new, stats = self._apply(raw, ctx.params, ctx.log)
        if self.horizon == 1:
            ahead = ctx.lookahead(new, self.lookahead)
        else:
            ahead = ctx.unroll(new, lambda params: self._unrolled_update(ctx, params), self.horizon, self.lookahead)
        loss = ctx.outer_loss(ahead)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.mlp.parameters())
        for p in params:
            p.grad = ctx.reduce(p.grad)
        loss = ctx.reduce(loss.detach()).item()
        ok = math.isfinite(loss) and bool(torch.stack([p.grad.norm() for p in params]).isfinite().all())

        def commit() -> None:
            self.opt.step()
            self._after_meta_step()
            self.meta_steps += 1
            self.last_outer_loss = loss
        return Update([g.detach() for g in new], self._stats(stats, loss) if ctx.log else {}, commit, ok)

    def _after_meta_step(self) -> None:
        """A hook after each committed meta step (a subclass may project the amplifier's weights here)."""

    def _unrolled_update(self, ctx: Context, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """G_φ of the training gradient at ``params``: the update of an unrolled step after the first.

        Second order by default: the gradient keeps its graph, so ∂L/∂φ also flows through
        how φ moved the parameters this gradient is taken at (Hessian-vector products).
        """
        if self.first_order:
            grads = torch.autograd.grad(ctx.inner_loss(params), params)
        else:
            with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no second derivative
                grads = torch.autograd.grad(ctx.inner_loss(params), params, create_graph=True)
        return self._apply(list(grads), params, False, through_input=not self.first_order)[0]

    def _apply(self, grads: list[torch.Tensor], params: list[torch.Tensor] | None, with_stats: bool,
               through_input: bool = False) -> tuple[list[torch.Tensor], dict | None]:
        """G_φ(grads) at ``params``, with the amplifier's monitoring statistics only when asked (they cost a pass)."""
        if with_stats:
            return amplify(self.mlp, grads, self.c, self.mode, return_stats=True, through_input=through_input,
                           softmax=self.softmax)
        return amplify(self.mlp, grads, self.c, self.mode, through_input=through_input, softmax=self.softmax), None

    def _stats(self, stats: dict, outer_loss: float | None) -> dict:
        return {"outer_loss": outer_loss, "amp_pn_std": stats["pn_std"], "amp_pn_max": stats["pn_max"],
                "norm_ratio": stats["norm_ratio"]}

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"mlp": {k: v.clone() for k, v in self.mlp.state_dict().items()}, "opt": self.opt.state_dict(),
                "last_outer_loss": self.last_outer_loss, "meta_steps": self.meta_steps}

    def load_state_dict(self, state: dict) -> None:
        self.mlp.load_state_dict(state["mlp"])
        self.opt.load_state_dict(state["opt"])
        self.last_outer_loss, self.meta_steps = state["last_outer_loss"], state["meta_steps"]

    def save(self, folder: str | Path) -> None:
        """Writes ``amplifier.safetensors`` and ``amplifier.json`` (its shape and c) into ``folder``."""
        from safetensors.torch import save
        from .runfolder import write_atomic, write_json
        folder = Path(folder)
        tensors = {k: v.detach().contiguous() for k, v in self.mlp.state_dict().items()}
        write_atomic(folder / AMPLIFIER_FILE, save(tensors, metadata={"hidden": ",".join(map(str, self.hidden))}))
        write_json(folder / AMPLIFIER_META, self.meta_info())

    def meta_info(self) -> dict:
        """What ``amplifier.json`` records beside the weights."""
        return {"hidden": list(self.hidden), "c": self.c, "meta_steps": self.meta_steps}

    def load_amplifier(self, path: str | Path) -> dict:
        """Loads learnt amplifier weights (a file, a run folder, ``builtin:NAME``); checks they fit; returns its record."""
        tensors, meta, file = read_amplifier(path)
        expected = {k: tuple(v.shape) for k, v in self.mlp.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in tensors.items()}
        if meta and (meta.get("features", ["g"]) != list(getattr(self, "features", ("g",)))
                     or meta.get("form", "mlp") != getattr(self, "form", "mlp")):
            raise AmplifierFileError(f"{path} holds an amplifier learnt with {flags_for(meta)}; give those options")
        if expected != found:
            hidden = _hidden_from_shapes(found)
            raise AmplifierFileError(f"amplifier file {file} holds hidden sizes {hidden}, but this run uses "
                                     f"--amp-hidden {','.join(map(str, self.hidden))}")
        self.mlp.load_state_dict(tensors)
        return meta


def _hidden_from_shapes(shapes: dict[str, tuple]) -> str:
    weights = [s for k, s in sorted(shapes.items()) if k.endswith("weight") and len(s) == 2]
    return ",".join(str(s[0]) for s in weights[:-1]) or "unknown"

