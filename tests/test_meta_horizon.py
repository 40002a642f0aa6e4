"""The K-step meta-gradient: the unrolled steps against torch.optim, the meta-gradient against finite differences."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from baselines import Context
from neuralgrok.amplifier import amplify
from neuralgrok.bilevel import NeuralGrok
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


def _setup(seed=0, horizon=3, first_order=False):
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
    ng = NeuralGrok(hidden=(6, 6), mode="dense", meta_every=1, lookahead="inner", horizon=horizon,
                    first_order=first_order)
    ng.mlp.double()
    calls = []

    def inner_loss(params):  # steps 2..K take batches 1..K-1, in order, on every evaluation
        x, y = batches[1 + len(calls) % (horizon - 1)]
        calls.append(1)
        return loss_at(params, x, y)

    ctx = Context(step=0, params=list(model.parameters()), lookahead=opt.lookahead, unroll=opt.unroll,
                  outer_loss=lambda params: loss_at(params, xo, yo), inner_loss=inner_loss)
    return ng, grads, ctx


def _directional_derivatives(ng, objective, meta, n=5, h=1e-6):
    """(analytic, central difference) pairs of the objective's derivative along random directions in φ."""
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


def test_unrolled_meta_gradient_matches_central_differences():
    ng, grads, ctx = _setup(horizon=3)
    ng.update(grads, ctx)
    meta = [p.grad.clone() for p in ng.mlp.parameters()]

    def objective():  # L_outer(θ_3(φ)): every step's gradient taken where φ moved the parameters
        def later(params):
            params = [p.detach().requires_grad_() for p in params]
            with torch.enable_grad():
                g = torch.autograd.grad(ctx.inner_loss(params), params)
            return amplify(ng.mlp, list(g), ng.c, "dense")
        return ctx.outer_loss(ctx.unroll(amplify(ng.mlp, grads, ng.c, "dense"), later, 3, "inner")).item()

    for analytic, fd in _directional_derivatives(ng, objective, meta):
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-10)
    # the horizon matters: the one-step meta-gradient is a different vector
    one, _, one_ctx = _setup(horizon=3)
    one.horizon = 1
    one.update(grads, one_ctx)
    assert not all(torch.allclose(a, p.grad) for a, p in zip(meta, one.mlp.parameters()))


def test_first_order_meta_gradient_holds_later_inner_gradients_constant():
    ng, grads, ctx = _setup(horizon=3, first_order=True)
    ng.update(grads, ctx)
    meta = [p.grad.clone() for p in ng.mlp.parameters()]
    recorded = []  # the inner gradients along the trajectory at the current φ, then held fixed

    def later_recording(params):
        params = [p.detach().requires_grad_() for p in params]
        with torch.enable_grad():
            g = torch.autograd.grad(ctx.inner_loss(params), params)
        recorded.append([t.detach() for t in g])
        return amplify(ng.mlp, recorded[-1], ng.c, "dense")
    with torch.no_grad():
        ctx.unroll(amplify(ng.mlp, grads, ng.c, "dense"), later_recording, 3, "inner")

    def objective():  # φ acts only through the amplifier applied to those fixed gradients
        fixed = iter(recorded)
        later = lambda params: amplify(ng.mlp, next(fixed), ng.c, "dense")  # noqa: E731
        return ctx.outer_loss(ctx.unroll(amplify(ng.mlp, grads, ng.c, "dense"), later, 3, "inner")).item()

    for analytic, fd in _directional_derivatives(ng, objective, meta):
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-10)
