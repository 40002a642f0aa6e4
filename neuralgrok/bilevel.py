"""NeuralGrok, the whole method: its amplifier (a form it is given), meta step, schedule, held-out data and state.

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

What it needs from a training loop it asks for through the generic transform interface: two
example streams (``held_out``, the outer slice the loop keeps out of the steps, and ``train``,
fresh batches for the unrolled steps), ``Context.loss`` on them, the optimizer's look-ahead, and
the evaluation rows (``observe``), from which it starts its meta steps once the training accuracy
reaches ``start_acc`` (``--meta-start-acc``).  The amplifier's form (``forms.py``) is a part:
the paper's scalar network, or one that reads more features.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from baselines import Context, GradientTransform, Stream, Update

from .amplifier_files import AMPLIFIER_FILE, AMPLIFIER_META, flags_for, read_amplifier
from .errors import AmplifierFileError, ConfigError
from .forms import FeatureForm, ScalarForm

ORDERS = ("before", "after")  # --meta-order: the meta step at θ_t before the model's step, or at θ_{t+1} after it


class NeuralGrok(GradientTransform):
    """Transforms gradients with a learnt amplifier and meta-trains it on a held-out slice of the training data.

    ``form`` is the amplifier (:class:`~neuralgrok.forms.ScalarForm` by default, built from ``hidden``,
    ``mode`` and ``softmax``; or a :class:`~neuralgrok.forms.FeatureForm`).
    """

    def __init__(self, form: ScalarForm | FeatureForm | None = None, *, hidden=(128, 128), mode: str = "piecewise",
                 softmax: str = "tensor", c: float = 1.0, meta_lr: float = 1e-4, betas=(0.9, 0.98),
                 weight_decay: float = 0.0, frozen: bool = False, meta_every: int = 4, lookahead: str = "sgd",
                 horizon: int = 1, first_order: bool = False, order: str = "before", start_acc: float = 0.0,
                 outer_batch: int = 0):
        if order not in ORDERS:
            raise ValueError(f"meta-step order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.form = form if form is not None else ScalarForm(hidden, mode, softmax)
        self.mlp = self.form.net  # the learnt parameters
        self.c, self.frozen, self.meta_every, self.lookahead = float(c), frozen, meta_every, lookahead
        self.horizon, self.first_order, self.order = horizon, first_order, order
        self.start_acc, self.outer_batch = start_acc, outer_batch
        self.opt = torch.optim.Adam(self.mlp.parameters(), lr=meta_lr, betas=tuple(betas), weight_decay=weight_decay)
        self.last_outer_loss: float | None = None
        self.meta_steps = 0
        self.meta_started = start_acc <= 0  # set for good at the first evaluation fitting that well
        self._taken = None  # the last committed step's prepared inputs, for a meta step after it

    @classmethod
    def from_config(cls, cfg) -> "NeuralGrok":
        from .feature_amplifier import parse_features
        if cfg.amp_features == "g":
            form = ScalarForm(cfg.amp_hidden, cfg.amp_eval, cfg.amp_softmax)
        else:
            form = FeatureForm(parse_features(cfg.amp_features, cfg.amp_form), cfg.amp_hidden, cfg.amp_slow_alpha,
                               cfg.amp_form, cfg.amp_theta_ref, cfg.amp_decay_nonneg,
                               {"slow": cfg.amp_init_slow, "theta": cfg.amp_init_decay})
        ng = cls(form, c=cfg.amp_c, meta_lr=cfg.meta_lr, betas=(cfg.meta_beta1, cfg.meta_beta2),
                 weight_decay=cfg.meta_weight_decay, frozen=cfg.freeze_amplifier, meta_every=cfg.meta_every,
                 lookahead=cfg.lookahead, horizon=cfg.meta_horizon, first_order=cfg.meta_first_order,
                 order=cfg.meta_order, start_acc=cfg.meta_start_acc, outer_batch=cfg.outer_batch)
        if cfg.amplifier:
            ng.load_amplifier(cfg.amplifier)
        return ng

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.form.hidden

    # -- what it asks of the loop -----------------------------------------------------
    def streams(self) -> dict[str, Stream]:
        """The outer slice (all of it per meta step unless ``outer_batch``), and fresh training batches."""
        return {"held_out": Stream("held_out", self.outer_batch, seed=1), "train": Stream("train", None, seed=2)}

    def attach(self, processes: int, names: tuple[str, ...] = ()) -> None:
        if self.horizon > 1 and processes > 1:
            raise ConfigError(f"--meta-horizon {self.horizon} runs on one process (the unrolled steps' gradients are "
                              f"not reduced across processes); use --meta-horizon 1 with {processes}")
        self.form.attach(tuple(names))

    def observe(self, row: dict) -> None:
        self.meta_started = self.meta_started or row["train_acc"] >= self.start_acc

    # -- the transform ------------------------------------------------------------
    def update(self, grads: list[torch.Tensor], ctx: Context) -> Update:
        """The amplified gradients; on a meta step (every ``meta_every`` steps, once started) also φ's step.

        Nothing changes until the update is committed, and it is not ``ok`` when the outer loss
        or its meta-gradient is not finite.
        """
        prepared = self.form.prepare(grads, ctx)
        if self.order == "after" or not self._meta_due(ctx, ctx.step):
            with torch.no_grad():
                new, stats = self.form.apply(grads, ctx.params, prepared, self.c, ctx.log)
            return Update(new, self._stats(stats, self.last_outer_loss) if ctx.log else {},
                          lambda: self._advance(prepared))
        return self._meta_update(grads, ctx, prepared)

    def after_step(self, ctx: Context) -> Update:
        """With ``order="after"``, the meta step at the parameters just reached, from this batch's gradient there."""
        if self.order != "after" or not self._meta_due(ctx, ctx.step + 1):
            return Update([])
        if ctx.batch_grads is None:
            raise ValueError("a meta step after the model's step needs Context.batch_grads")
        return self._meta_update(ctx.batch_grads(ctx.params), ctx, self._taken, advance=False)

    def _meta_due(self, ctx: Context, count: int) -> bool:
        """A meta step is due at ``count`` (steps taken before it) every ``meta_every``, once started, in a loop that
        offers held-out data (``Context.loss``; without it, as in a loop of one's own, the amplifier is applied as is)."""
        return not self.frozen and self.meta_started and ctx.loss is not None and count % self.meta_every == 0

    def _advance(self, prepared) -> None:
        self.form.commit(prepared)
        self._taken = prepared

    def meta_gradient(self, grads: list[torch.Tensor], ctx: Context) -> list[torch.Tensor]:
        """∂L_outer(θ')/∂φ that a meta step at this step would take (nothing changes)."""
        return self._meta_gradient(grads, ctx, self.form.prepare(grads, ctx))[3]

    def _meta_gradient(self, grads, ctx: Context, prepared):
        """(G_φ(g), its statistics, the outer loss, ∂L_outer(θ')/∂φ summed over processes), θ' the look-ahead."""
        raw = [g.detach() for g in grads]
        new, stats = self.form.apply(raw, ctx.params, prepared, self.c, ctx.log)
        if self.horizon == 1:
            ahead = ctx.lookahead(new, self.lookahead)
        else:
            ahead = ctx.unroll(new, lambda params: self._unrolled_update(ctx, params, prepared), self.horizon,
                               self.lookahead)
        loss = ctx.loss("held_out", ahead)
        params = list(self.mlp.parameters())
        return new, stats, loss, [ctx.reduce(g) for g in torch.autograd.grad(loss, params)]

    def _meta_update(self, grads: list[torch.Tensor], ctx: Context, prepared, advance: bool = True) -> Update:
        """The meta step: the amplified gradients now, φ's step on the meta-gradient when committed."""
        new, stats, loss, meta_grads = self._meta_gradient(grads, ctx, prepared)
        loss = ctx.reduce(loss.detach()).item()
        ok = math.isfinite(loss) and bool(torch.stack([g.norm() for g in meta_grads]).isfinite().all())
        params = list(self.mlp.parameters())

        def commit() -> None:
            for p, g in zip(params, meta_grads):
                p.grad = g
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.form.after_meta_step()
            self.meta_steps += 1
            self.last_outer_loss = loss
            if advance:
                self._advance(prepared)
        return Update([g.detach() for g in new], self._stats(stats, loss) if ctx.log else {}, commit, ok)

    def _unrolled_update(self, ctx: Context, params: list[torch.Tensor], prepared) -> list[torch.Tensor]:
        """G_φ of the training gradient at ``params``: the update of an unrolled step after the first.

        Second order by default: the gradient keeps its graph, so ∂L/∂φ also flows through
        how φ moved the parameters this gradient is taken at (Hessian-vector products).
        """
        if self.first_order:
            grads = torch.autograd.grad(ctx.loss("train", params), params)
        else:
            with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no second derivative
                grads = torch.autograd.grad(ctx.loss("train", params), params, create_graph=True)
        return self.form.apply(list(grads), params, prepared, self.c, False, through_input=not self.first_order)[0]

    @staticmethod
    def _stats(stats: dict, outer_loss: float | None) -> dict:
        return {"outer_loss": outer_loss, **stats}

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"mlp": {k: v.clone() for k, v in self.mlp.state_dict().items()}, "opt": self.opt.state_dict(),
                "last_outer_loss": self.last_outer_loss, "meta_steps": self.meta_steps,
                "meta_started": self.meta_started, **self.form.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.mlp.load_state_dict(state["mlp"])
        self.opt.load_state_dict(state["opt"])
        self.last_outer_loss, self.meta_steps = state["last_outer_loss"], state["meta_steps"]
        self.meta_started = state.get("meta_started", self.meta_started)  # absent from older checkpoints
        self.form.load_state_dict(state)

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
        info = self.form.meta_info()
        return {"hidden": info.pop("hidden"), "c": self.c, "meta_steps": self.meta_steps, **info}

    def load_amplifier(self, path: str | Path) -> dict:
        """Loads learnt amplifier weights (a file, a run folder, ``builtin:NAME``); checks they fit; returns its record."""
        tensors, meta, file = read_amplifier(path)
        if meta and (meta.get("features", ["g"]) != list(self.form.features)
                     or meta.get("form", "mlp") != self.form.form):
            raise AmplifierFileError(f"{path} holds an amplifier learnt with {flags_for(meta)}; give those options")
        expected = {k: tuple(v.shape) for k, v in self.mlp.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in tensors.items()}
        if expected != found:
            raise AmplifierFileError(f"amplifier file {file} holds hidden sizes {_hidden_from_shapes(found)}, but this "
                                     f"run uses --amp-hidden {','.join(map(str, self.hidden))}")
        self.form.check_record(meta, path)
        self.mlp.load_state_dict(tensors)
        return meta


def _hidden_from_shapes(shapes: dict[str, tuple]) -> str:
    weights = [s for k, s in sorted(shapes.items()) if k.endswith("weight") and len(s) == 2]
    return ",".join(str(s[0]) for s in weights[:-1]) or "unknown"
