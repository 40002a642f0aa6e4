"""The K-step meta-gradient: the unrolled steps against torch.optim, the meta-gradient against finite differences.

Every amplifier is checked: the paper's scalar one, the one with richer inputs and its per-tensor
coefficient form (feature_amplifier.py).
"""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from baselines import Context
from neuralgrok.bilevel import NeuralGrok
from neuralgrok.feature_amplifier import FEATURES
from neuralgrok.forms import FeatureForm
from neuralgrok.model import ModelConfig, Transformer, answer_logits
from neuralgrok.optim import InnerOptimizer


def _quadratic_grads(params):
    """The gradient of Σ (p² · (1 + p)) / 2 at ``params``, as an independent 'training loss'."""
    return [p + 1.5 * p * p for p in params]


@pytest.mark.parametrize("kind,reference", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_unroll_takes_the_optimizers_own_steps_and_changes_nothing(kind, reference):
    torch.manual_seed(0)
    start = [torch.randn(5, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    hyper = dict(lr=0.05, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.1)
    opt, oracle = InnerOptimizer(ours, kind, **hyper), reference(theirs, **hyper)
    for _ in range(2):  # real steps first: the unroll starts from non-zero moments and step 2
        for o, ps in ((opt, ours), (oracle, theirs)):
            for p, g in zip(ps, _quadratic_grads([p.detach() for p in ps])):
                p.grad = g
            o.step()
    first = [torch.randn_like(p) for p in start]
    saved = [p.detach().clone() for p in ours], {k: v.clone() for k, v in opt._state(opt.param_groups[0]).items()
                                                 if torch.is_tensor(v)}
    unrolled = opt.unroll(first, _quadratic_grads, steps=4, rule="inner")
    for k in range(4):  # the oracle: torch.optim taking the same four steps
        grads = first if k == 0 else _quadratic_grads([p.detach() for p in theirs])
        for p, g in zip(theirs, grads):
            p.grad = g.clone()
        oracle.step()
    for a, b in zip(unrolled, theirs):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-14)
    assert all(torch.equal(a, b) for a, b in zip(saved[0], ours))  # parameters untouched
    state = opt._state(opt.param_groups[0])
    assert all(torch.equal(state[k], v) for k, v in saved[1].items()) and state["step"] == 2
    one = opt.unroll(first, _quadratic_grads, steps=1, rule="inner")
    assert all(torch.equal(a, b) for a, b in zip(one, opt.lookahead(first, "inner")))


def _amplifier(kind, **kwargs):
    """The scalar amplifier (dense evaluation), or the feature amplifier with every input and a non-zero last layer."""
    if kind == "scalar":
        ng = NeuralGrok(hidden=(6, 6), mode="dense", **kwargs)
    elif kind == "coefficients":
        ng = NeuralGrok(FeatureForm(features=("g", "slow", "theta"), form="coefficients"), **kwargs)
        torch.nn.init.normal_(ng.mlp.coef, std=0.3)
    else:
        ng = NeuralGrok(FeatureForm(features=FEATURES, hidden=(6, 6)), **kwargs)
        torch.nn.init.normal_(ng.mlp.layers[-1].weight, std=0.3)  # zero at the start of a run; any value here
    ng.mlp.double()
    return ng


def G(ng, grads, params):
    """The amplifier's output for ``grads`` at ``params``, as the meta step applies it (its step's inputs)."""
    return ng.form.apply(list(grads), params, ng.prepared, ng.c, False)[0]


def _setup(seed=0, horizon=3, first_order=False, kind="scalar"):
    """A tiny float64 model after one real step, its gradient, three fixed inner batches, an outer batch."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab_size=9, seq_len=3, n_layers=1, d_model=16, n_heads=2)).double()
    batches = [(torch.randint(0, 7, (16, 3)), torch.randint(0, 7, (16,))) for _ in range(horizon)]
    xo, yo = torch.randint(0, 7, (8, 3)), torch.randint(0, 7, (8,))
    opt = InnerOptimizer(model.parameters(), "adam", lr=0.05, weight_decay=0.1)
    names = [n for n, _ in model.named_parameters()]

    def loss_at(params, x, y):
        return F.cross_entropy(functional_call(model, dict(zip(names, params)), (x,))[:, -1], y)

    F.cross_entropy(answer_logits(model, *batches[0][:1]), batches[0][1]).backward()
    opt.step()
    opt.zero_grad()
    F.cross_entropy(answer_logits(model, batches[0][0]), batches[0][1]).backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    ng = _amplifier(kind, meta_every=1, lookahead="inner", horizon=horizon, first_order=first_order)
    if kind != "scalar":  # a slow average from an earlier step, not equal to this gradient
        ng.form.slow = [torch.randn_like(g) for g in grads]
    calls = []

    def inner_loss(params):  # steps 2..K take batches 1..K-1, in order, on every evaluation
        x, y = batches[1 + len(calls) % (horizon - 1)]
        calls.append(1)
        return loss_at(params, x, y)

    losses = {"held_out": lambda params: loss_at(params, xo, yo), "train": inner_loss}
    ctx = Context(step=0, params=list(model.parameters()), lookahead=opt.lookahead, unroll=opt.unroll,
                  loss=lambda name, params: losses[name](params))
    ng.prepared = ng.form.prepare(grads, ctx)  # this step's inputs, as its meta step computes them
    return ng, grads, ctx


def _directional_derivatives(ng, objective, meta, n=5, h=1e-6):
    """(analytic, central difference) pairs of the derivative along random directions in φ.

    The feature amplifier's many inputs put some entry within h of a ReLU kink unless h is
    small, so it is checked with h = 1e-7 (its derivatives are large enough for that).
    """
    if isinstance(ng.form, FeatureForm):
        h = h / 10
    params, gen, pairs = list(ng.mlp.parameters()), torch.Generator().manual_seed(1), []
    for _ in range(n):
        d = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                for p, u in zip(params, d):
                    p.add_(sign * h * u)
                values.append(objective())
                for p, u in zip(params, d):
                    p.sub_(sign * h * u)
        pairs.append((sum((m * u).sum() for m, u in zip(meta, d)).item(), (values[0] - values[1]) / (2 * h)))
    return pairs


@pytest.mark.parametrize("kind", ["scalar", "features", "coefficients"])
@pytest.mark.parametrize("horizon", [1, 3])
def test_meta_gradient_matches_central_differences(kind, horizon):
    ng, grads, ctx = _setup(horizon=max(horizon, 2), kind=kind)
    ng.horizon = horizon
    meta = ng.meta_gradient(grads, ctx)

    def objective():  # L_outer(θ_K(φ)): every step's gradient taken where φ moved the parameters
        def later(params):
            params = [p.detach().requires_grad_() for p in params]
            with torch.enable_grad():
                g = torch.autograd.grad(ctx.loss("train", params), params)
            return G(ng, g, params)
        return ctx.loss("held_out", ctx.unroll(G(ng, grads, ctx.params), later, horizon, "inner")).item()

    for analytic, fd in _directional_derivatives(ng, objective, meta):
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-10)
    assert all(m.isfinite().all() for m in meta) and any(m.abs().max() > 0 for m in meta)


def test_the_horizon_changes_the_meta_gradient():
    """K = 3 and K = 1 differ by far more than the finite-difference agreement each has with its own objective
    (rel 1e-5 above): an implementation that ignored the horizon would fail here."""
    ng, grads, ctx = _setup(horizon=3)
    meta = torch.cat([m.reshape(-1) for m in ng.meta_gradient(grads, ctx)])
    one, _, one_ctx = _setup(horizon=3)
    one.horizon = 1
    meta1 = torch.cat([m.reshape(-1) for m in one.meta_gradient(grads, one_ctx)])
    assert (meta - meta1).norm() > 1e-2 * meta1.norm()
    assert torch.nn.functional.cosine_similarity(meta, meta1, dim=0) < 0.9999


@pytest.mark.parametrize("kind", ["scalar", "features", "coefficients"])
def test_first_order_meta_gradient_holds_later_inner_gradients_constant(kind):
    ng, grads, ctx = _setup(horizon=3, first_order=True, kind=kind)
    meta = ng.meta_gradient(grads, ctx)
    recorded = []  # the inner gradients along the trajectory at the current φ, then held fixed

    def later_recording(params):
        params = [p.detach().requires_grad_() for p in params]
        with torch.enable_grad():
            g = torch.autograd.grad(ctx.loss("train", params), params)
        recorded.append(([t.detach() for t in g], [p.detach() for p in params]))
        return G(ng, *recorded[-1])
    with torch.no_grad():
        ctx.unroll(G(ng, grads, ctx.params), later_recording, 3, "inner")

    def objective():  # φ acts only through the amplifier applied to those fixed gradients (at fixed points)
        fixed = iter(recorded)
        later = lambda params: G(ng, *next(fixed))  # noqa: E731
        return ctx.loss("held_out", ctx.unroll(G(ng, grads, ctx.params), later, 3, "inner")).item()

    for analytic, fd in _directional_derivatives(ng, objective, meta):
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-10)
