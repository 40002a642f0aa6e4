"""Richer amplifiers: networks that read each entry's gradient, slow gradient, weight, tensor and the step.

For entry i of parameter tensor t the network reads (``--amp-features``, comma-separated)

- ``g``: ĝ_i = g_i / rms_t(g), always;
- ``slow``: ŝ_i = s_i / rms_t(s), with s an exponential average of past gradients
  (``--amp-slow-alpha``, as Grokfast-EMA keeps it: s starts at the first gradient);
- ``theta``: θ̂_i = θ_i / rms_t(θ), or with ``--amp-theta-ref init`` θ_i / rms_t(θ₀), the
  tensor's rms at the run's first update (zero-rms tensors use 1), so that the weight term
  shrinks with the weights as an L2 decay does instead of keeping unit size;
- ``step``: log(1 + step) / log(1 + 10⁴), the same for every entry;
- ``tensor``: a learnt 4-vector per parameter tensor (tensors beyond 64 share slots),

and outputs a log-gain a_i, with ``slow`` a weight b_i and with ``theta`` a weight d_i.
The update direction is ``u = e^a ⊙ ĝ + b ⊙ ŝ + d ⊙ θ̂`` (a clamped to ±20), rescaled per
tensor to norm c as NeuralGrok rescales.  The last layer starts at zero, so the untrained
amplifier is per-tensor gradient normalisation; b > 0 is Grokfast's slow-gradient
amplification, d > 0 a weight decay, and a varying a the paper's entry-wise rescaling,
so what the meta step learns reads off three numbers (``amp_slow``, ``amp_decay``,
``amp_gain_std``) and one distance (``amp_dev``: ‖g' − gradnorm(g)‖ / ‖gradnorm(g)‖).
The network runs densely on every entry (its inputs have no piecewise-linear shortcut);
keep it small (``--amp-hidden 32,32``).

``--amp-form coefficients`` replaces the network by one learnt number per parameter tensor
and term: the gain stays 1 and ``u = ĝ + b_t·ŝ + d_t·θ̂`` (features ``g`` with ``slow``
and/or ``theta``).  This bounded form cannot concentrate the update on a few entries, the
failure of the unbounded amplifiers in the meta pilot; it can learn only the two directions
Grokfast and weight decay say matter, per tensor.  ``--amp-decay-nonneg`` projects every
decay coefficient d_t back to d_t ≥ 0 after each meta step (projected gradient descent), so
the learnt term can shrink the weights but never grow them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .amplifier import _segment_ids

FEATURES = ("g", "slow", "theta", "step", "tensor")
FORMS = ("mlp", "coefficients")  # --amp-form: a network of the features, or per-tensor coefficients of the terms
THETA_REFS = ("rms", "init")  # --amp-theta-ref: the weight feature over its tensor's rms now, or at the first update
TENSOR_SLOTS, EMBED_DIM = 64, 4
MAX_LOG_GAIN = 20.0


def parse_features(text: str, form: str = "mlp") -> tuple[str, ...]:
    """``"g,slow"`` → ``("g", "slow")``; ValueError naming what is wrong (also for what ``form`` cannot use)."""
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [x for x in names if x not in FEATURES]
    if unknown or "g" not in names or len(set(names)) != len(names):
        raise ValueError(f"amplifier features must be distinct names from {', '.join(FEATURES)} including g, "
                         f"got {text!r}")
    if form == "coefficients" and (not {"slow", "theta"} & set(names) or {"step", "tensor"} & set(names)):
        raise ValueError(f"--amp-form coefficients learns the slow and weight terms: its features are g with slow "
                         f"and/or theta, got {text!r}")
    return names


class FeatureAmplifierMLP(nn.Module):
    """Per-entry features (and a tensor embedding) → (log-gain, slow weight, weight-term weight); last layer zero."""

    def __init__(self, features: tuple[str, ...], hidden=(32, 32)):
        super().__init__()
        self.features, self.hidden = tuple(features), tuple(int(h) for h in hidden)
        scalars = [f for f in self.features if f != "tensor"]
        self.embed = nn.Embedding(TENSOR_SLOTS, EMBED_DIM) if "tensor" in self.features else None
        self.n_out = 1 + ("slow" in self.features) + ("theta" in self.features)
        sizes = (len(scalars) + (EMBED_DIM if self.embed is not None else 0), *self.hidden, self.n_out)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def tensor_outputs(self, columns: list[list[torch.Tensor]], sizes: tuple[int, ...]) -> list[torch.Tensor]:
        """Each tensor's (entries, outputs) from per-tensor feature columns: every entry in one batch."""
        x = torch.stack([torch.cat(column) for column in columns], dim=1)
        ids = _segment_ids(sizes, x.device) if self.embed is not None else None
        return list(self(x, ids).split(sizes))

    def forward(self, x: torch.Tensor, tensor_ids: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            x = torch.cat([x, self.embed(tensor_ids % TENSOR_SLOTS)], dim=1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class CoefficientAmplifier(nn.Module):
    """One learnt coefficient per parameter tensor for each added term (slow, theta); the log-gain stays 0.

    Same interface as :class:`FeatureAmplifierMLP` (it ignores the per-entry features); the
    coefficients start at zero, so the untrained form is per-tensor gradient normalisation.
    """

    def __init__(self, features: tuple[str, ...]):
        super().__init__()
        self.features, self.hidden = tuple(features), ()
        self.terms = tuple(t for t in ("slow", "theta") if t in self.features)  # the order of coef's columns
        self.n_out = 1 + len(self.terms)
        self.coef = nn.Parameter(torch.zeros(TENSOR_SLOTS, len(self.terms)))

    def forward(self, x: torch.Tensor | None, tensor_ids: torch.Tensor) -> torch.Tensor:
        # an embedding lookup, not indexing: indexing's backward is not deterministic on several threads
        coef = nn.functional.embedding(tensor_ids % TENSOR_SLOTS, self.coef)
        return torch.cat([torch.zeros_like(coef[:, :1]), coef], dim=1)

    def tensor_outputs(self, columns: list[list[torch.Tensor]], sizes: tuple[int, ...]) -> list[torch.Tensor]:
        """Each tensor's outputs as one (1, outputs) row, for all its entries (the features are not read)."""
        ids = torch.arange(len(sizes), device=self.coef.device)
        return list(self(None, ids).split(1))

    @torch.no_grad()
    def clamp_decay_(self) -> None:
        """Projects every weight-term (decay) coefficient onto d ≥ 0."""
        self.coef[:, self.terms.index("theta")].clamp_(min=0.0)

    def per_tensor(self, n_tensors: int) -> dict[str, list[float]]:
        """Each term's coefficient for tensors 0..n-1 (the weight term as ``decay``), as the forward pass reads them."""
        coef = self.coef.detach()[[i % TENSOR_SLOTS for i in range(n_tensors)]]
        return {"decay" if t == "theta" else t: coef[:, k].tolist() for k, t in enumerate(self.terms)}


def tensor_rms(tensors) -> torch.Tensor:
    """Each tensor's root-mean-square entry, 1 for an all-zero tensor (the weight feature's fixed scale)."""
    rms = torch.stack([t.detach().to(torch.promote_types(t.dtype, torch.float32)).pow(2).mean().sqrt()
                       for t in tensors])  # in float32 at least (bf16 weights)
    return torch.where(rms > 0, rms, torch.ones_like(rms))


def _norms(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    """‖v‖ of each tensor as 0-dim tensors, 1 for an all-zero tensor (and no NaN derivative there)."""
    sq = torch.stack([(t * t).sum() for t in ts])
    return list(torch.where(sq > 0, sq, torch.ones_like(sq)).sqrt().unbind())


def amplify_features(mlp: FeatureAmplifierMLP, grads, params, slow, step: int, c: float = 1.0,
                     return_stats: bool = False, through_input: bool = False, theta_rms: torch.Tensor | None = None):
    """``c·u/‖u‖`` per tensor with ``u = e^a ⊙ ĝ + b ⊙ ŝ + d ⊙ θ̂`` (see the module's docstring).

    Differentiable in the network's weights; the gradients, parameters and slow average
    are constants unless ``through_input``.  ``theta_rms`` (one number per tensor) fixes the
    weight feature's scale (θ / theta_rms); by default it is each tensor's current rms.
    With ``return_stats`` also returns the statistics.  Works tensor by tensor: per-tensor
    scales multiply each tensor's entries directly, and only the network form gathers every
    entry's features into one batch.
    """
    sizes = tuple(g.numel() for g in grads)

    def entries(ts):
        return [(t if through_input else t.detach()).reshape(-1) for t in ts]

    def normed(vs):  # each v over its rms
        return [v / (norm / math.sqrt(v.numel())) for v, norm in zip(vs, _norms(vs))]

    g = entries(grads)
    g_hat = normed(g)
    columns, terms = [g_hat], []
    if "slow" in mlp.features:
        terms.append(normed(entries(slow)))
    if "theta" in mlp.features:
        theta = entries(params)
        terms.append(normed(theta) if theta_rms is None
                     else [t / r for t, r in zip(theta, theta_rms.to(theta[0]).unbind())])
    columns += terms
    if "step" in mlp.features:
        columns.append([torch.full_like(v, math.log1p(step) / math.log1p(1e4)) for v in g])
    outs = mlp.tensor_outputs(columns, sizes)  # per tensor: (entries, outputs), or (1, outputs) for all its entries
    gains = [torch.exp(out[:, 0].clamp(-MAX_LOG_GAIN, MAX_LOG_GAIN)) for out in outs]
    us = []
    for i, (out, gain) in enumerate(zip(outs, gains)):
        u = gain * g_hat[i]
        for k, term in enumerate(terms, start=1):
            u = u + out[:, k] * term[i]
        us.append(u)
    new_entries = [c * u / norm for u, norm in zip(us, _norms(us))]
    new = [t.reshape(src.shape).to(src.dtype) for t, src in zip(new_entries, grads)]
    if not return_stats:
        return new
    with torch.no_grad():
        def every_entry(per_tensor):  # one value per entry, per-tensor outputs repeated over their tensor
            return torch.cat([v.expand(n) for v, n in zip(per_tensor, sizes)])
        plain = torch.cat([c * v / norm for v, norm in zip(g_hat, _norms(g_hat))])
        flat_new, gain = torch.cat(new_entries), every_entry(gains)
        g_norm = torch.cat(g).norm()
        stats = {"amp_dev": ((flat_new - plain).norm() / plain.norm()).item(),
                 "amp_gain_std": (gain.std() / gain.mean()).item(),
                 "norm_ratio": (flat_new.norm() / g_norm).item() if g_norm > 0 else 0.0}
        names = [f for f in ("slow", "theta") if f in mlp.features]
        for k, name in enumerate(names, start=1):
            stats["amp_slow" if name == "slow" else "amp_decay"] = every_entry([o[:, k] for o in outs]).mean().item()
    return new, stats
