"""NeuralGrok's meta step against finite differences and `higher`; saving, reloading and freezing the amplifier."""
import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from baselines import Context
from neuralgrok.amplifier import amplify
from neuralgrok.bilevel import AmplifierFileError, NeuralGrok
from neuralgrok.cli import main
from neuralgrok.model import ModelConfig, Transformer, answer_logits
from neuralgrok.optim import InnerOptimizer

from conftest import TINY

LR = 0.05


def setup(kind="adam", dtype=torch.float64, seed=0):
    """A tiny model that has taken one real step, an inner batch's gradient, an outer batch, and an amplifier."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab_size=9, seq_len=3, n_layers=1, d_model=16, n_heads=2)).to(dtype)
    x, y = torch.randint(0, 7, (32, 3)), torch.randint(0, 7, (32,))
    xo, yo = torch.randint(0, 7, (8, 3)), torch.randint(0, 7, (8,))
    opt = InnerOptimizer(model.parameters(), kind, lr=LR, weight_decay=0.1)
    F.cross_entropy(answer_logits(model, x), y).backward()
    opt.step()  # non-zero moment estimates for the 'inner' look-ahead
    opt.zero_grad()
    F.cross_entropy(answer_logits(model, x), y).backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    ng = NeuralGrok(hidden=(6, 6), c=1.0, meta_lr=1e-3)
    ng.mlp.to(dtype)
    names = [n for n, _ in model.named_parameters()]

    def outer_loss(params):
        return F.cross_entropy(functional_call(model, dict(zip(names, params)), (xo,))[:, -1], yo)

    return model, opt, grads, ng, outer_loss, (xo, yo)


def meta_context(lookahead, outer_loss, log=False):
    """A step-0 context for a meta step whose look-ahead is ``lookahead(g)``."""
    return Context(step=0, lookahead=lambda g, _rule: lookahead(g), loss=lambda _name, params: outer_loss(params),
                   log=log)


def meta_gradient(ng, grads, lookahead, outer_loss):
    """∂L(θ')/∂φ as the meta step computes it (nothing changes)."""
    return ng.meta_gradient(grads, meta_context(lookahead, outer_loss))


@pytest.mark.parametrize("kind,rule", [("adam", "sgd"), ("adam", "inner"), ("adamw", "inner"), ("sgd", "inner")])
def test_meta_gradient_matches_central_differences(kind, rule):
    model, opt, grads, ng, outer_loss, _ = setup(kind)
    lookahead = lambda g: opt.lookahead(g, rule)  # noqa: E731
    meta = meta_gradient(ng, grads, lookahead, outer_loss)
    params = list(ng.mlp.parameters())

    def objective():
        with torch.no_grad():
            return outer_loss(lookahead(amplify(ng.mlp, grads, ng.c))).item()

    gen = torch.Generator().manual_seed(1)
    h = 1e-6
    for _ in range(6):  # random directions in φ-space
        d = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        with torch.no_grad():
            for p, u in zip(params, d):
                p.add_(h * u)
            plus = objective()
            for p, u in zip(params, d):
                p.sub_(2 * h * u)
            minus = objective()
            for p, u in zip(params, d):
                p.add_(h * u)
        fd = (plus - minus) / (2 * h)
        analytic = sum((m * u).sum() for m, u in zip(meta, d)).item()
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-9)
    assert any(m.abs().max() > 0 for m in meta)


def test_meta_gradient_matches_higher():
    """An independent computation: `higher` differentiates through one SGD step whose gradient is transformed."""
    higher = pytest.importorskip("higher")
    model, opt, grads, ng, outer_loss, (xo, yo) = setup("adam")
    meta = meta_gradient(ng, grads, lambda g: opt.lookahead(g, "sgd"), outer_loss)

    oracle_mlp = copy.deepcopy(ng.mlp)
    sgd = torch.optim.SGD(model.parameters(), lr=LR)
    with higher.innerloop_ctx(model, sgd, copy_initial_weights=True, track_higher_grads=True) as (fmodel, diffopt):
        # Σ⟨θ, g⟩ has gradient exactly g (a constant); the callback transforms it with the dense network
        loss_inner = sum((p * g).sum() for p, g in zip(fmodel.parameters(), grads))  # ∂/∂θ = g exactly
        diffopt.step(loss_inner, grad_callback=lambda gs: amplify(oracle_mlp, [g.detach() for g in gs], ng.c,
                                                                  "dense"))
        outer = F.cross_entropy(answer_logits(fmodel, xo), yo)
        oracle = torch.autograd.grad(outer, list(oracle_mlp.parameters()))
    for a, b in zip(meta, oracle):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_meta_step_returns_the_transform_and_updates_phi():
    model, opt, grads, ng, outer_loss, _ = setup("adam", torch.float32)
    expected = amplify(ng.mlp, grads, ng.c)
    before = [p.detach().clone() for p in ng.mlp.parameters()]
    update = ng.update(grads, meta_context(lambda g: opt.lookahead(g, "sgd"), outer_loss, log=True))
    for a, b in zip(update.grads, expected):
        torch.testing.assert_close(a, b)
        assert not a.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, ng.mlp.parameters())) and ng.meta_steps == 0  # not yet
    update.commit()
    assert any(not torch.equal(a, b) for a, b in zip(before, ng.mlp.parameters()))
    assert update.ok and update.stats["outer_loss"] > 0 and update.stats["norm_ratio"] > 0 and ng.meta_steps == 1


@pytest.mark.parametrize("form", ["scalar", "coefficients"])
def test_a_committed_meta_step_lowers_the_outer_loss_of_the_look_ahead(form):
    """The meta step moves φ the right way: with g and θ fixed, L_outer(θ − η·G_φ(g)) is lower after it."""
    from neuralgrok.forms import FeatureForm
    model, opt, grads, _, outer_loss, _ = setup("adam")
    ng = (NeuralGrok(hidden=(6, 6), meta_lr=1e-4, meta_every=1) if form == "scalar" else
          NeuralGrok(FeatureForm(("g", "slow", "theta"), form="coefficients"), meta_lr=1e-3, meta_every=1))
    ng.mlp.double()
    params = list(model.parameters())
    ctx = Context(step=0, params=params, lookahead=lambda g, _rule: opt.lookahead(g, "sgd"),
                  loss=lambda _name, ps: outer_loss(ps))

    def objective():
        with torch.no_grad():
            prepared = ng.form.prepare(grads, ctx)
            return outer_loss(opt.lookahead(ng.form.apply(grads, params, prepared, ng.c, False)[0], "sgd")).item()
    before = objective()
    for _ in range(3):
        ng.update(grads, ctx).commit()
    assert ng.meta_steps == 3 and objective() < before


def test_saved_amplifier_reloads_to_identical_outputs(tmp_path):
    _, opt, grads, ng, outer_loss, _ = setup("adam", torch.float32)
    ng(grads, meta_context(lambda g: opt.lookahead(g, "sgd"), outer_loss))
    ng.save(tmp_path)
    again = NeuralGrok(hidden=(6, 6))
    again.load_amplifier(tmp_path)
    for a, b in zip(ng(grads), again(grads)):
        assert torch.equal(a, b)
    assert json.loads((tmp_path / "amplifier.json").read_text())["hidden"] == [6, 6]


def test_bad_amplifier_files(tmp_path):
    NeuralGrok(hidden=(6, 6)).save(tmp_path)
    with pytest.raises(AmplifierFileError, match="hidden sizes 6,6.*--amp-hidden 8"):
        NeuralGrok(hidden=(8,)).load_amplifier(tmp_path)
    (tmp_path / "amplifier.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(AmplifierFileError, match="corrupt"):
        NeuralGrok(hidden=(6, 6)).load_amplifier(tmp_path)
    with pytest.raises(AmplifierFileError, match="no amplifier file"):
        NeuralGrok(hidden=(6, 6)).load_amplifier(tmp_path / "nowhere")


def test_tiny_task_learns_then_transfers_frozen(tmp_path, capsys):
    """NeuralGrok trains the tiny task; its amplifier, reused frozen, stays bit-identical."""
    ng_args = [*TINY, "--method", "neuralgrok", "--amp-hidden", "16,16", "--max-steps", "1500"]
    assert main(["train", "--out", str(tmp_path / "a"), *ng_args]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["steps_to_95"] is not None and summary["stopped"] == "target", summary
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert {"outer_loss", "amp_pn_std", "amp_pn_max", "norm_ratio"} <= set(rows[-1])
    learnt = (tmp_path / "a" / "amplifier.safetensors").read_bytes()

    frozen = [*ng_args[:-2], "--max-steps", "60", "--amplifier", str(tmp_path / "a"), "--freeze-amplifier"]
    assert main(["train", "--out", str(tmp_path / "b"), *frozen]) == 0
    assert (tmp_path / "b" / "amplifier.safetensors").read_bytes() == learnt
    rows = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["outer_loss"] is None  # no meta step was taken
    # the loaded weights are what it applies: an untrained amplifier, equally frozen, trains differently
    (tmp_path / "fresh").mkdir()
    NeuralGrok(hidden=(16, 16)).save(tmp_path / "fresh")
    assert main(["train", "--out", str(tmp_path / "b0"), *frozen[:-2], str(tmp_path / "fresh"),
                 "--freeze-amplifier"]) == 0
    rows0 = [json.loads(l) for l in (tmp_path / "b0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in rows0] != [r["train_loss"] for r in rows]

    assert main(["train", "--out", str(tmp_path / "c"), *ng_args[:-2], "--max-steps", "20",
                 "--amplifier", str(tmp_path / "a")]) == 0
    assert (tmp_path / "c" / "amplifier.safetensors").read_bytes() != learnt  # meta-training continued

    capsys.readouterr()
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage")  # from the command line: one line, exit 2
    assert main(["train", "--out", str(tmp_path / "d"), *frozen[:-2], str(tmp_path / "bad.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt" in err[0]
