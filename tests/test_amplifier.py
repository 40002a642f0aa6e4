"""The amplifier transform against its formula, and the piecewise evaluation against the dense network."""
import copy

import pytest
import torch

from neuralgrok.amplifier import AmplifierMLP, amplify


def formula(mlp, grads, c):
    """``c·(p⊙g)/‖p⊙g‖₂`` with ``p = softmax(mlp(g))`` per tensor, written directly in float64."""
    m = copy.deepcopy(mlp).double()
    out = []
    for g in grads:
        g = g.double().reshape(-1)
        p = torch.softmax(m(g), dim=0)
        u = p * g
        out.append((c * u / u.norm()).float())
    return out


def grads_like_a_model(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(64, 32), (32,), (97, 32), (5, 7, 3), (1,)]
    scales = torch.logspace(-6, 0, 5)
    return [torch.randn(s, generator=gen) * scales[i] for i, s in enumerate(shapes)]


@pytest.mark.parametrize("mode", ["piecewise", "dense"])
@pytest.mark.parametrize("c", [1.0, 0.3])
def test_transform_matches_formula_per_tensor(mode, c):
    torch.manual_seed(1)
    mlp = AmplifierMLP((16, 16))
    with torch.no_grad():  # make the MLP's output vary a lot, so that the softmax matters
        mlp.layers[0].weight.mul_(300.0)
    grads = grads_like_a_model()
    got = amplify(mlp, grads, c, mode)
    want = formula(mlp, grads, c)
    for g, w, src in zip(got, want, grads):
        assert g.shape == src.shape and g.dtype == src.dtype
        torch.testing.assert_close(g, w.reshape(src.shape), rtol=1e-5, atol=1e-7)
        assert torch.linalg.vector_norm(g).item() == pytest.approx(c, rel=1e-5)


def test_uniform_weights_reduce_to_per_tensor_normalisation():
    mlp = AmplifierMLP((4,))
    with torch.no_grad():
        for p in mlp.parameters():
            p.zero_()
    grads = grads_like_a_model()
    for g, src in zip(amplify(mlp, grads, 2.0), grads):
        torch.testing.assert_close(g, 2.0 * src / src.norm())


def test_zero_tensor_and_huge_outputs_are_safe():
    torch.manual_seed(0)
    mlp = AmplifierMLP((8, 8))
    with torch.no_grad():
        mlp.layers[-1].weight.mul_(1e6)  # outputs of order 1e5: exp would overflow without the shift
    grads = [torch.zeros(10), torch.randn(50) * 1e-3, torch.tensor([0.0, 1e-30, -2.0])]
    new, stats = amplify(mlp, grads, 1.0, return_stats=True)
    assert torch.equal(new[0], torch.zeros(10))
    for t in new[1:]:
        assert torch.isfinite(t).all() and torch.linalg.vector_norm(t).item() == pytest.approx(1.0, rel=1e-6)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    # and they are the formula's values, p = softmax(MLP(g)) per tensor taken in float64, not a plain g/|g|
    for t, src in zip(new[1:], grads[1:]):
        with torch.no_grad():
            p = torch.softmax(mlp(src).double(), dim=0)
        want = p * src.double() / torch.linalg.vector_norm(p * src.double())
        torch.testing.assert_close(t.double(), want, rtol=1e-5, atol=1e-9)
        assert not torch.allclose(t, src / src.norm(), atol=1e-3)  # the MLP does reweight here


@pytest.mark.parametrize("hidden", [(32, 32), (128, 128), (512,), (1152,), (16, 16, 16)])
def test_piecewise_equals_dense(hidden):
    torch.manual_seed(0)
    mlp = AmplifierMLP(hidden)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20000, generator=gen) * torch.logspace(-7, 1, 20000)[torch.randperm(20000, generator=gen)]
    x = torch.cat([x, mlp.breakpoints().float()])  # entries sitting on the pieces' boundaries too
    dense, piece = mlp(x), mlp.piecewise(x)
    assert ((piece - dense).abs().max() / dense.abs().max()).item() <= 1e-5
    grads = [x[:12000].reshape(120, 100), x[12000:]]
    for a, b in zip(amplify(mlp, grads, 1.0, "piecewise"), amplify(mlp, grads, 1.0, "dense")):
        assert ((a - b).abs().max() / b.abs().max()).item() <= 1e-5


@pytest.mark.parametrize("hidden", [(32, 32), (1152,)])
def test_piecewise_weight_gradients_equal_dense(hidden):
    """The meta-gradient flows through the amplifier: both evaluations give the same ∂/∂φ."""
    torch.manual_seed(0)
    mlp = AmplifierMLP(hidden).double()
    grads = [g.double() for g in grads_like_a_model(3)]
    probe = [torch.randn_like(g) for g in grads]

    def weight_grads(mode):
        out = amplify(mlp, grads, 1.0, mode)
        loss = sum((o * p).sum() for o, p in zip(out, probe))
        return torch.autograd.grad(loss, list(mlp.parameters()))

    for a, b in zip(weight_grads("piecewise"), weight_grads("dense")):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_network_is_affine_between_breakpoints():
    torch.manual_seed(2)
    mlp = AmplifierMLP((8, 8)).double()
    bps = mlp.breakpoints()
    assert len(bps) >= 8 and torch.all(bps[1:] > bps[:-1])
    with torch.no_grad():
        for lo, hi in zip(bps[:-1], bps[1:]):
            xs = torch.linspace(0, 1, 5, dtype=torch.float64) * (hi - lo) + lo
            ys = mlp(xs)
            lin = ys[0] + (ys[-1] - ys[0]) * (xs - xs[0]) / (xs[-1] - xs[0])
            torch.testing.assert_close(ys, lin, rtol=1e-9, atol=1e-12)


def test_stats_values():
    mlp = AmplifierMLP((4,))
    with torch.no_grad():
        for p in mlp.parameters():
            p.zero_()
    grads = [torch.full((4,), 3.0), torch.full((9,), -1.0)]
    new, stats = amplify(mlp, grads, 1.0, return_stats=True)
    assert stats["pn_std"] == pytest.approx(0.0, abs=1e-6) and stats["pn_max"] == pytest.approx(1.0)
    assert stats["norm_ratio"] == pytest.approx(2 ** 0.5 / (36 + 9) ** 0.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden"):
        AmplifierMLP((0, 4))
    with pytest.raises(ValueError, match="mode"):
        amplify(AmplifierMLP((4,)), [torch.ones(3)], 1.0, "sparse")


@pytest.mark.parametrize("mode", ["piecewise", "dense"])
def test_meta_gradient_is_bitwise_reproducible(mode):
    """Same inputs, same bits: a resumed or repeated run must not drift (CPU index backward is unordered)."""
    torch.manual_seed(0)
    mlp = AmplifierMLP((8, 8))
    grads = [torch.randn(200000) * 1e-3, torch.randn(3000)]
    probe = [torch.linspace(0, 1, g.numel()) for g in grads]

    def weight_grads():
        out = amplify(mlp, grads, 1.0, mode)
        return torch.autograd.grad(sum((o * p).sum() for o, p in zip(out, probe)), list(mlp.parameters()))

    first = weight_grads()
    for _ in range(5):
        torch.empty(int(torch.randint(1, 1000, (1,))))  # move the allocator around
        assert all(torch.equal(a, b) for a, b in zip(first, weight_grads()))
