"""The commit contract: `update` changes nothing (state, parameters, buffers, moments, gradients) until `commit`."""
import copy
import json
import types

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from baselines import Chain, Context
from neuralgrok.config import build
from neuralgrok.methods import METHODS, build_transform
from neuralgrok.model import ModelConfig, Transformer, answer_logits
from neuralgrok.optim import InnerOptimizer

NG_FORMS = {
    "scalar": {},
    "scalar after": {"meta_order": "after", "meta_weight_decay": 1e-2},
    "features": {"amp_features": "g,slow,theta,step,tensor", "amp_hidden": (6,)},
    "coefficients": {"amp_features": "g,slow,theta", "amp_form": "coefficients", "amp_theta_ref": "init",
                     "amp_decay_nonneg": True, "meta_horizon": 2, "lookahead": "inner"},
}
CASES = {**{m: {"method": m} for m in METHODS if m != "neuralgrok"},
         **{f"neuralgrok {k}": {"method": "neuralgrok", "meta_every": 1, "meta_lr": 0.05, **v} for k, v in NG_FORMS.items()}}


def _snapshot(obj):
    """A deep copy of everything a transform holds: its state, and every tensor attribute's value and gradient."""
    tensors = {}

    def walk(x, path, seen):
        if id(x) in seen:
            return
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            tensors[path] = (x.detach().clone(), None if x.grad is None else x.grad.clone())
        elif isinstance(x, torch.nn.Module):
            for name, p in x.named_parameters():
                walk(p, f"{path}.{name}", seen)
            for name, b in x.named_buffers():
                walk(b, f"{path}.{name}", seen)
        elif isinstance(x, torch.optim.Optimizer):
            walk(x.state_dict(), f"{path}.state", seen)
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}[{k!r}]", seen)
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]", seen)
        elif hasattr(x, "__dict__") and not isinstance(x, (type, types.FunctionType, types.MethodType)):
            for k, v in vars(x).items():
                walk(v, f"{path}.{k}", seen)
    walk(obj, "t", set())
    plain = {k: v for k, v in _plain(obj).items()}
    return tensors, plain


def _plain(obj) -> dict:
    """The transform's non-tensor attributes (counters, flags, losses), recursively."""
    out = {}
    for k, v in vars(obj).items():
        if isinstance(v, (int, float, str, bool, type(None))):
            out[k] = v
        elif hasattr(v, "__dict__") and not isinstance(v, (torch.nn.Module, torch.optim.Optimizer, torch.Tensor, type,
                                                           types.FunctionType, types.MethodType)):
            out[k] = _plain(v)
        elif isinstance(v, list) and all(hasattr(t, "__dict__") for t in v):
            out[k] = [_plain(t) for t in v]
    return out


def _same(a, b) -> bool:
    ta, pa = a
    tb, pb = b
    if ta.keys() != tb.keys() or pa != pb:
        return False
    return all(torch.equal(x[0], y[0]) and ((x[1] is None) == (y[1] is None)) and (x[1] is None or torch.equal(x[1], y[1]))
               for x, y in zip(ta.values(), tb.values()))


def _loop():
    """A tiny model, its optimizer and a context offering everything a method may ask for."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=9, seq_len=3, n_layers=1, d_model=16, n_heads=2))
    opt = InnerOptimizer(model.parameters(), "adam", lr=0.01, weight_decay=1e-3)
    names, params = [n for n, _ in model.named_parameters()], list(model.parameters())
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 7, (16, 3), generator=gen), torch.randint(0, 7, (16,), generator=gen)

    def loss(_name, ps):
        return F.cross_entropy(functional_call(model, dict(zip(names, ps)), (x,), {"answer_only": True}), y)

    def batch_grads(ps):
        ps = [p.detach().requires_grad_() for p in ps]
        return list(torch.autograd.grad(loss("train", ps), ps))

    def grads():
        model.zero_grad()
        F.cross_entropy(answer_logits(model, x), y).backward()
        return [p.grad.detach().clone() for p in params]

    def ctx(step):
        return Context(step=step, params=params, lookahead=opt.lookahead, unroll=opt.unroll, loss=loss,
                       batch_grads=batch_grads, log=True)
    return model, opt, params, grads, ctx


def _transform(case):
    options = {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in case.items()}
    return build_transform(build(options))


@pytest.mark.parametrize("name", [*CASES, "chain"])
def test_update_without_commit_changes_nothing(name):
    model, opt, params, grads, ctx = _loop()
    transform = (Chain(_transform(CASES["grokfast_ema"]), _transform(CASES["neuralgrok coefficients"]))
                 if name == "chain" else _transform(CASES[name]))
    for step in range(3):  # a few committed steps (and meta steps) first, so that every kind of state exists
        u = transform.update(grads(), ctx(step))
        u.commit()
        for p, g in zip(params, u.grads):
            p.grad = g
        opt.step()
        transform.after_step(ctx(step)).commit()
    g = grads()
    before, model_before, opt_before = _snapshot(transform), _snapshot(model), copy.deepcopy(opt.state_dict())
    given = [t.clone() for t in g]
    transform.update(g, ctx(3))  # a meta step is due for NeuralGrok (meta_every 1): discarded
    assert _same(before, _snapshot(transform)), f"{name}: update changed the transform before commit"
    assert _same(model_before, _snapshot(model)), f"{name}: update changed the model"
    assert all(torch.equal(a, b) for a, b in zip(given, g)), f"{name}: update changed its input gradients"
    state = opt.state_dict()["state"][0]
    assert all(torch.equal(state[k], opt_before["state"][0][k]) for k in ("exp_avg", "exp_avg_sq"))


def test_the_snapshot_sees_a_change_made_before_commit():
    """The oracle itself: a transform that writes its amplifier's gradients in `update` is caught."""
    model, opt, params, grads, ctx = _loop()
    transform = _transform(CASES["neuralgrok scalar"])
    before = _snapshot(transform)
    loss = sum(p.sum() for p in transform.mlp.parameters())
    loss.backward()  # what the meta step did before the commit contract was kept
    assert not _same(before, _snapshot(transform))


def test_chain_forwards_every_capability_of_its_members(tmp_path):
    """Chain(Grokfast-EMA, NeuralGrok) in the trainer: it holds the outer slice out, takes meta steps, is gated by
    the evaluations, checkpoints both members and writes the amplifier at the end, like NeuralGrok alone."""
    from baselines import GrokfastEMA, Stream
    from neuralgrok.bilevel import NeuralGrok
    from neuralgrok.trainer import Trainer
    cfg = build({"task": "a+b", "p": 23, "train_frac": 0.7, "d_model": 64, "n_layers": 1, "batch_size": 128,
                 "optimizer": "adamw", "weight_decay": 1.0, "lr": 1e-2, "method": "neuralgrok", "amp_hidden": "8,8",
                 "meta_every": 2, "meta_start_acc": 0.15, "eval_every": 5, "max_steps": 60, "run_on": True})
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    ng = NeuralGrok.from_config(cfg)
    chain = Chain(GrokfastEMA(alpha=0.9, lamb=1.0), ng)
    assert chain.streams() == ng.streams() and chain.uses_outer_slice
    trainer.transform = chain
    trainer.stream, trainer.streams = trainer._streams()
    assert len(trainer.data.splits.inner) < len(trainer.data.splits.train)  # the slice held out
    chain.attach(1, tuple(trainer.param_names))
    summary = trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    opened = next(r["step"] for r in rows if r["train_acc"] >= 0.15)  # the evaluation that opens the gate
    assert 0 < opened < 50 and ng.meta_started  # observe() reached the member
    assert ng.meta_steps == len([s for s in range(opened, 60) if s % 2 == 0])  # every due step after it, no other
    assert (tmp_path / "run" / "amplifier.safetensors").exists() and summary["steps"] == 60
    assert rows[-1]["outer_loss"] is not None  # the member's statistics reach the metrics
    state = chain.state_dict()
    assert set(state) == {"0", "1"} and "h" in str(state["0"].keys()) and state["1"]["meta_steps"] == ng.meta_steps
    with pytest.raises(ValueError, match="ask for stream"):
        class Other(NeuralGrok):
            def streams(self):
                return {"held_out": Stream("held_out", 8, seed=5)}
        Chain(ng, Other())
