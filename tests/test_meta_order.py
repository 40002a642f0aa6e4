"""The public codes' NeuralGrok: the meta step after the model's step, the amplifier's weight decay, the entry softmax.

The oracle is a second implementation of the public `main` code's loop, written from its text:
a deep copy at θ_{t+1}, the gradient of the same batch recomputed there, θ' = θ − lr·G(g)
entry by entry with a dense softmax over each tensor, the outer loss, and torch.optim.Adam with
weight decay for both the model and the amplifier.
"""
import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from baselines import Context
from neuralgrok.amplifier import amplify
from neuralgrok.bilevel import NeuralGrok
from neuralgrok.cli import main
from neuralgrok.model import ModelConfig, Transformer, answer_logits
from neuralgrok.optim import InnerOptimizer

from conftest import TINY

LR, META_LR, WD, T, STEPS = 0.02, 1e-2, 1e-2, 2, 7


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randint(0, 7, (16, 3), generator=g), torch.randint(0, 7, (16,), generator=g)) for _ in range(STEPS)]
    outer = (torch.randint(0, 7, (8, 3), generator=g), torch.randint(0, 7, (8,), generator=g))
    return batches, outer


def _reference_amplify(mlp, g: torch.Tensor) -> torch.Tensor:
    """The public code's NeuralGrad on one tensor: p = softmax over its entries of MLP(g), c·p·g/‖p·g‖ (c = 1)."""
    p = torch.softmax(mlp(g.reshape(-1, 1)), dim=0)
    out = p * g.reshape(-1, 1)
    return (out / out.norm()).reshape(g.shape)


def _reference_run(model, mlp, batches, outer):
    """The main branch's loop, step by step (clip at 1.0, meta step after steps T, 2T, ... with the same batch)."""
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.98), weight_decay=WD)
    meta_opt = torch.optim.Adam(mlp.parameters(), lr=META_LR, betas=(0.9, 0.98), weight_decay=WD)
    names = [n for n, _ in model.named_parameters()]
    for t, (x, y) in enumerate(batches, start=1):
        model.zero_grad()
        F.cross_entropy(answer_logits(model, x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p.grad = _reference_amplify(mlp, p.grad)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        if t % T == 0:
            copied = copy.deepcopy(model)
            grads = torch.autograd.grad(F.cross_entropy(answer_logits(copied, x), y), list(copied.parameters()))
            ahead = {n: p.detach() - LR * _reference_amplify(mlp, g) for n, p, g in
                     zip(names, copied.parameters(), grads)}
            loss = F.cross_entropy(functional_call(copied, ahead, (outer[0],))[:, -1], outer[1])
            meta_opt.zero_grad()
            loss.backward()
            meta_opt.step()


def _our_run(model, ng, batches, outer):
    """The same steps through the transform interface, as the trainer drives it."""
    opt = InnerOptimizer(model.parameters(), "adam", lr=LR, betas=(0.9, 0.98), weight_decay=WD)
    params, names = list(model.parameters()), [n for n, _ in model.named_parameters()]

    def outer_loss(ps):
        return F.cross_entropy(functional_call(model, dict(zip(names, ps)), (outer[0],))[:, -1], outer[1])

    def grads_at(ps, x, y):
        ps = [p.detach().requires_grad_() for p in ps]
        return list(torch.autograd.grad(F.cross_entropy(answer_logits_at(ps, x), y), ps))

    def answer_logits_at(ps, x):
        return functional_call(model, dict(zip(names, ps)), (x,), {"answer_only": True})

    for step, (x, y) in enumerate(batches):
        model.zero_grad()
        F.cross_entropy(answer_logits(model, x), y).backward()
        ctx = Context(step=step, params=params, lookahead=opt.lookahead, loss=lambda _name, ps: outer_loss(ps),
                      batch_grads=lambda ps, x=x, y=y: grads_at(ps, x, y))
        update = ng.update([p.grad for p in params], ctx)
        update.commit()
        for p, g in zip(params, update.grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        after = ng.after_step(ctx)
        assert after.ok
        after.commit()


@pytest.mark.parametrize("mode", ["dense", "piecewise"])
def test_meta_step_after_the_model_step_matches_the_public_loop(mode):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=9, seq_len=3, n_layers=1, d_model=16, n_heads=2)).double()
    ng = NeuralGrok(hidden=(6, 6), mode=mode, meta_lr=META_LR, meta_every=T, order="after", weight_decay=WD)
    ng.mlp.double()
    with torch.no_grad():  # a non-uniform starting amplifier, so that the softmax matters
        for p in ng.mlp.parameters():
            p.mul_(3.0)
    ref_model, ref_mlp, start = copy.deepcopy(model), copy.deepcopy(ng.mlp), copy.deepcopy(ng.mlp)
    batches, outer = _data()
    _our_run(model, ng, batches, outer)
    _reference_run(ref_model, ref_mlp, batches, outer)
    assert ng.meta_steps == STEPS // T
    for (name, a), b in zip(model.named_parameters(), ref_model.parameters()):
        if name.endswith("in_proj_bias"):  # the key bias has no effect and a zero gradient up to rounding, which
            a, b = a.view(3, -1)[[0, 2]], b.view(3, -1)[[0, 2]]  # Adam turns into lr-sized steps: q and v only
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    every = torch.cartesian_prod(*[torch.arange(7)] * 3)
    torch.testing.assert_close(answer_logits(model, every), answer_logits(ref_model, every), rtol=1e-9, atol=1e-10)
    for a, b in zip(ng.mlp.parameters(), ref_mlp.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert any(not torch.equal(a, b) for a, b in zip(ng.mlp.parameters(), start.parameters()))  # φ was learnt


def test_the_amplifiers_weight_decay_and_the_order_change_the_run():
    """Each option moves the trajectory: the decay shrinks φ where the meta-gradient is zero (softmax over entries)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=9, seq_len=3, n_layers=1, d_model=16, n_heads=2)).double()
    batches, outer = _data(1)
    finals = {}
    for key, kw in {"before": {}, "after": {"order": "after"}, "decay": {"order": "after", "weight_decay": 0.5}}.items():
        ng = NeuralGrok(hidden=(6, 6), meta_lr=META_LR, meta_every=T, **kw)
        ng.mlp.double()
        torch.manual_seed(1)
        ng.mlp.load_state_dict({k: torch.randn_like(v) for k, v in ng.mlp.state_dict().items()})
        m = copy.deepcopy(model)
        _our_run(m, ng, batches, outer)
        finals[key] = torch.cat([p.detach().reshape(-1) for p in ng.mlp.parameters()])
    assert not torch.allclose(finals["before"], finals["after"])
    assert finals["decay"].norm() < finals["after"].norm()


def test_softmax_over_entries_is_per_tensor_normalisation_with_no_meta_gradient():
    torch.manual_seed(0)
    ng = NeuralGrok(hidden=(5, 5), softmax="entry")
    grads = [torch.randn(4, 3), torch.randn(7), torch.zeros(2)]
    out = amplify(ng.mlp, grads, 2.0, softmax="entry")
    for g, o in zip(grads, out):
        expected = 2.0 * g / g.norm() if g.norm() > 0 else g
        torch.testing.assert_close(o, expected)
    g_flat = [g.requires_grad_(False) for g in grads]
    loss = sum((o * torch.randn_like(o)).sum() for o in amplify(ng.mlp, g_flat, 1.0, softmax="entry"))
    assert all(gr is None or not gr.any() for gr in torch.autograd.grad(loss, list(ng.mlp.parameters()),
                                                                        allow_unused=True))
    with pytest.raises(ValueError, match="softmax axis"):
        NeuralGrok(softmax="rows")


def test_trainer_takes_the_meta_step_after_the_model_step(tmp_path):
    """Through the command line: T = 3 gives a meta step after steps 3, 6, ...; bad combinations are refused."""
    args = [*TINY, "--method", "neuralgrok", "--amp-hidden", "8", "--max-steps", "40", "--run-on",
            "--meta-order", "after", "--meta-every", "3", "--meta-weight-decay", "1e-3"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    assert json.loads((tmp_path / "a" / "amplifier.json").read_text())["meta_steps"] == 40 // 3
    assert main(["train", "--out", str(tmp_path / "b"), *TINY, "--method", "neuralgrok", "--amp-features", "g,slow",
                 "--amp-softmax", "entry"]) == 2


def test_batch_grads_at_the_steps_parameters_are_the_steps_gradient(tmp_path):
    """The trainer's ``batch_grads`` at θ_t reproduces the gradient its own backward pass took (oracle: backward)."""
    from neuralgrok.config import build
    from neuralgrok.trainer import Trainer
    cfg = build({"task": "a+b", "p": 11, "d_model": 16, "n_layers": 1, "batch_size": 32, "method": "standard"})
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    x, y = trainer._batch(trainer.stream.next())
    loss = F.cross_entropy(answer_logits(trainer.model, x), y)
    loss.backward()
    ours = trainer._batch_grads(trainer.params, x, y)
    for g, p in zip(ours, trainer.params):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-7)
