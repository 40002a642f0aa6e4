"""The gradient amplifier: a scalar ReLU MLP applied to every gradient entry, evaluated exactly and cheaply.

``g' = c·(p⊙g)/‖p⊙g‖₂`` with ``p = softmax(MLP(g))`` over the entries of each
parameter tensor.  An MLP with ReLU units and one scalar input is a continuous
piecewise-linear function of that input, with a finite set of breakpoints.  The
``piecewise`` evaluation finds those breakpoints (layer by layer, in float64, no
gradient), then evaluates each segment's affine piece ``v_s + β_s·(x − r_s)`` at one
representative point ``r_s`` *with* autograd, so the value and the gradient with
respect to the MLP's weights are those of the dense network (to float rounding), at a
cost of one ``searchsorted`` and two gathers per gradient entry instead of a
``1→H→H→1`` network per entry.  ``dense`` runs the network on every entry; it is the
reference the tests compare against.

The softmax is taken in the log domain: ``log|p_i g_i| = MLP(g_i) + ln|g_i| + const``;
shifting by the per-tensor maximum of that quantity before exponentiating means
nothing overflows for any MLP output, the largest weighted entry is exactly 1 (so the
norm is never a denormal), and an all-zero tensor maps to zeros.
"""
from __future__ import annotations

import torch
from torch import nn

MODES = ("piecewise", "dense")
# What the softmax normalises over: the entries of each tensor (the paper's amplifier and the `main` public code), or
# each entry's one output (the `neuralgrad` branch's code: nn.Softmax(dim=-1) on an (entries, 1) output, which is 1
# everywhere, so that its amplifier is per-tensor gradient normalisation whatever φ holds).
SOFTMAX_AXES = ("tensor", "entry")


class AmplifierMLP(nn.Module):
    """``1 → hidden[0] → … → hidden[-1] → 1`` with ReLU between layers, applied to scalars."""

    def __init__(self, hidden=(128, 128)):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"amplifier hidden sizes must be positive integers, got {hidden}")
        sizes = (1, *hidden, 1)
        self.hidden = hidden
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense evaluation: the network on every entry of ``x`` (any shape)."""
        h = x.reshape(-1, 1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h.reshape(x.shape)

    # -- exact piecewise-linear form -----------------------------------------------
    def _value_and_slope(self, r: torch.Tensor, upto: int, dtype=None):
        """Pre-activations of layer ``upto`` at points ``r`` and their slopes d/dx, shape [len(r), width]."""
        z, dz = r[:, None], torch.ones_like(r)[:, None]
        for i, layer in enumerate(self.layers[: upto + 1]):
            w, b = (layer.weight, layer.bias) if dtype is None else (layer.weight.to(dtype), layer.bias.to(dtype))
            if i > 0:
                on = (z > 0).to(z.dtype)
                z, dz = z * on, dz * on
            z, dz = z @ w.T + b, dz @ w.T
        return z, dz

    @torch.no_grad()
    def breakpoints(self) -> torch.Tensor:
        """The sorted inputs (float64) where some ReLU of the network switches: the pieces' boundaries."""
        bps = torch.empty(0, dtype=torch.float64, device=self.layers[0].weight.device)
        for k in range(len(self.layers) - 1):
            r, lo, hi = _segments(bps)
            z, dz = self._value_and_slope(r, k, torch.float64)
            cross = r[:, None] - z / torch.where(dz == 0, torch.ones_like(dz), dz)
            inside = (dz != 0) & (cross > lo[:, None]) & (cross < hi[:, None])
            bps = torch.unique(torch.cat([bps, cross[inside]]))  # unique also sorts
        return bps

    def piecewise(self, x: torch.Tensor) -> torch.Tensor:
        """Same values (and weight gradients) as ``forward(x)``, through the network's breakpoints."""
        bps = self.breakpoints()
        r64 = _segments(bps)[0]
        v, slope = self._value_and_slope(r64, len(self.layers) - 1, torch.float64)
        v, slope, r = v[:, 0].to(x.dtype), slope[:, 0].to(x.dtype), r64.to(x.dtype)
        seg = torch.searchsorted(bps.to(x.dtype), x.detach().reshape(-1))
        flat = _take(v, seg) + _take(slope, seg) * (x.reshape(-1) - _take(r, seg))
        return flat.reshape(x.shape)


def _segments(bps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For sorted breakpoints b_0<…<b_{k-1}: one representative point and the bounds of each of the k+1 pieces."""
    inf = torch.full((1,), float("inf"), dtype=bps.dtype, device=bps.device)
    lo, hi = torch.cat([-inf, bps]), torch.cat([bps, inf])
    if len(bps) == 0:
        return torch.zeros(1, dtype=bps.dtype, device=bps.device), lo, hi
    mid = (lo[1:-1] + hi[1:-1]) / 2
    r = torch.cat([bps[:1] - 1.0, mid, bps[-1:] + 1.0])
    return r, lo, hi


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` whose backward is deterministic (on CPU, advanced-indexing backward sums in a varying order)."""
    return torch.index_select(t, 0, idx)


_SEGMENT_IDS: dict[tuple, torch.Tensor] = {}


def _segment_ids(sizes: tuple[int, ...], device) -> torch.Tensor:
    """Entry → tensor index for a concatenation of tensors with ``sizes`` entries (cached)."""
    key = (sizes, str(device))
    if key not in _SEGMENT_IDS:
        counts = torch.tensor(sizes, device=device)
        _SEGMENT_IDS[key] = torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)
    return _SEGMENT_IDS[key]


def amplify(mlp: AmplifierMLP, grads: list[torch.Tensor], c: float = 1.0, mode: str = "piecewise",
            return_stats: bool = False, through_input: bool = False, softmax: str = "tensor"):
    """``c·(p⊙g)/‖p⊙g‖₂`` per tensor with ``p = softmax(mlp(g))``; all tensors in one batched pass.

    Differentiable with respect to the MLP's weights; ``grads`` are treated as constants
    unless ``through_input`` (an unrolled meta step differentiates through them).  With ``return_stats`` also returns ``{"pn_std", "pn_max", "norm_ratio"}``:
    the spread and maximum over all entries of ``p·n`` (n = the tensor's size; 1
    everywhere means no reweighting, and its mean is 1 by construction) and
    ``‖g'‖/‖g‖`` over the whole model.  ``softmax="entry"`` takes the softmax over each entry's single output
    instead (see :data:`SOFTMAX_AXES`): p = 1, so the result is ``c·g/‖g‖`` per tensor and φ's gradient is zero.
    """
    if mode not in MODES:
        raise ValueError(f"amplifier mode must be one of {MODES}, got {mode!r}")
    if softmax not in SOFTMAX_AXES:
        raise ValueError(f"amplifier softmax axis must be one of {SOFTMAX_AXES}, got {softmax!r}")
    sizes = tuple(g.numel() for g in grads)
    g = torch.cat([(t if through_input else t.detach()).reshape(-1) for t in grads])
    seg = _segment_ids(sizes, g.device)
    n = len(sizes)
    out = mlp.piecewise(g) if mode == "piecewise" else mlp(g)
    if softmax == "entry":  # softmax over one value: 1, with zero derivative (its log-domain weight is 0)
        out = out * 0

    nonzero = g != 0  # log|p_i g_i| up to a per-tensor constant; -inf (and no NaN derivative) where g_i = 0
    logw = torch.where(nonzero, out + torch.log(torch.where(nonzero, g.abs(), torch.ones_like(g))), -torch.inf)
    shift = torch.full((n,), float("-inf"), dtype=g.dtype, device=g.device).scatter_reduce(0, seg, logw.detach(), "amax")
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    u = torch.sign(g) * torch.exp(logw - _take(shift, seg))
    norm = torch.zeros(n, dtype=g.dtype, device=g.device).index_add(0, seg, u * u).sqrt()
    norm = torch.where(norm > 0, norm, torch.ones_like(norm))  # an all-zero tensor stays zero
    new = (c * u / _take(norm, seg)).split(sizes)
    new = [t.reshape(src.shape).to(src.dtype) for t, src in zip(new, grads)]
    if not return_stats:
        return new
    return new, _stats(out.detach(), seg, sizes, g, new)


@torch.no_grad()
def _stats(out, seg, sizes, g, new) -> dict:
    n = len(sizes)
    top = torch.full((n,), float("-inf"), dtype=out.dtype, device=out.device).scatter_reduce(0, seg, out, "amax")
    e = torch.exp(out - _take(top, seg))
    total = torch.zeros(n, dtype=out.dtype, device=out.device).index_add(0, seg, e)
    counts = torch.tensor(sizes, device=out.device, dtype=out.dtype)
    pn = e / _take(total, seg) * _take(counts, seg)
    g_norm = g.norm()
    new_norm = torch.sqrt(sum((t ** 2).sum() for t in new))
    ratio = new_norm / g_norm if g_norm > 0 else torch.zeros(())
    return {"pn_std": pn.std().item(), "pn_max": pn.max().item(), "norm_ratio": ratio.item()}


@torch.no_grad()
def relative_weight(mlp: AmplifierMLP, x: torch.Tensor) -> torch.Tensor:
    """``exp(MLP(x) − MLP(0))``: the weight an entry of value x gets against a zero entry of the same tensor.

    The per-tensor softmax turns the MLP's output into weights up to a constant, so this
    curve is the amplifier's whole learnt shape; a flat 1 is the uniform amplifier.
    """
    x = x.to(mlp.layers[0].weight.dtype)
    return torch.exp(mlp(x) - mlp(torch.zeros(1, dtype=x.dtype)))
