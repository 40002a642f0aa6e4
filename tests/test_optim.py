"""The inner optimizers against torch.optim, step by step, and the look-ahead against a real step."""
import pytest
import torch

from neuralgrok.optim import InnerOptimizer, warmup_schedule

REFERENCE = {
    "adam": lambda ps, wd: torch.optim.Adam(ps, lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=wd),
    "adamw": lambda ps, wd: torch.optim.AdamW(ps, lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=wd),
    "sgd": lambda ps, wd: torch.optim.SGD(ps, lr=3e-3, weight_decay=wd),
}


def _pair(seed=0):
    torch.manual_seed(seed)
    a = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    b = [t.detach().clone().requires_grad_() for t in a]
    return a, b


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_matches_torch_optim_every_step(kind, wd):
    ours_p, ref_p = _pair()
    ours = InnerOptimizer(ours_p, kind, lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=wd)
    ref = REFERENCE[kind](ref_p, wd)
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        grads = [torch.randn(p.shape, generator=gen) for p in ours_p]
        for ps in (ours_p, ref_p):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
        ours.step()
        ref.step()
        for p, q in zip(ours_p, ref_p):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_inner_lookahead_equals_the_next_real_step(kind):
    params, _ = _pair()
    opt = InnerOptimizer(params, kind, lr=1e-2, weight_decay=0.01)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):  # build up moment estimates first
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    g = [torch.randn(p.shape, generator=gen) for p in params]
    ahead = opt.lookahead(g, "inner")
    before = [p.detach().clone() for p in params]
    for p, gi in zip(params, g):
        p.grad = gi
    opt.step()
    for a, p, b in zip(ahead, params, before):
        torch.testing.assert_close(a, p.detach(), rtol=0, atol=1e-7)
        assert not torch.equal(p.detach(), b)


def test_lookahead_is_differentiable_and_leaves_state_alone():
    params, _ = _pair()
    opt = InnerOptimizer(params, "adam", lr=1e-2)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[params[0]].items()}
    g = [torch.randn(p.shape, requires_grad=True) for p in params]
    sgd = opt.lookahead(g, "sgd")
    sum(s.sum() for s in sgd).backward()
    assert torch.allclose(g[0].grad, torch.full_like(g[0], -1e-2))  # d(θ - lr g)/dg = -lr
    ahead = opt.lookahead(g, "inner")
    assert all(a.requires_grad for a in ahead)
    for k, v in opt.state[params[0]].items():
        assert torch.equal(torch.as_tensor(v), torch.as_tensor(state[k]))


def test_warmup_is_linear_then_flat():
    p = [torch.zeros(1, requires_grad=True)]
    opt = InnerOptimizer(p, "sgd", lr=1.0)
    sched = warmup_schedule(opt, 4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        p[0].grad = torch.zeros(1)
        opt.step()
        sched.step()
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_state_round_trip():
    params, copy = _pair()
    a = InnerOptimizer(params, "adam", lr=1e-2)
    for p in params:
        p.grad = torch.ones_like(p)
    a.step()
    b = InnerOptimizer(copy, "adam", lr=1e-2)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for p, q in zip(copy, params):
            p.copy_(q)
    for ps in (params, copy):
        for p in ps:
            p.grad = torch.full_like(p, 0.5)
    a.step()
    b.step()
    for p, q in zip(params, copy):
        assert torch.equal(p, q)
