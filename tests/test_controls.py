"""Controls for the learnt coefficients: one shared (slow, decay) pair frozen from the start (the tuned form), and
the learnt values permuted across tensors of the same kind (experiments/shuffle_coefficients.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines import Context
from conftest import experiment_script
from neuralgrok.build import build_model, task_data
from neuralgrok.config import ConfigError, build
from neuralgrok.methods import build_transform

ROOT = Path(__file__).resolve().parents[1]
COEF = {"method": "neuralgrok", "amp_features": "g,slow,theta", "amp_form": "coefficients", "amp_theta_ref": "init"}


def test_the_tuned_form_is_the_update_rule_with_one_shared_pair():
    t = build_transform(build({**COEF, "amp_init_slow": 0.3, "amp_init_decay": 0.05, "freeze_amplifier": True}))
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)]
    grads = [torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)]
    out = t(grads, Context(step=0, params=params))
    for g, w, o in zip(grads, params, out):  # first step: the slow average is g itself; θ over its rms now
        ghat, what = g / g.pow(2).mean().sqrt(), w / w.pow(2).mean().sqrt()
        u = ghat + 0.3 * ghat + 0.05 * what
        torch.testing.assert_close(o, u / u.norm(), rtol=1e-5, atol=1e-7)
    assert t.frozen and torch.equal(t.mlp.coef[:2], torch.tensor([[0.3, 0.05], [0.3, 0.05]]))


@pytest.mark.parametrize("options,message", [
    ({"amp_init_slow": 0.1, "amp_form": "mlp"}, "they need --amp-form coefficients"),
    ({"amp_init_slow": 0.1, "amp_features": "g,theta"}, "needs slow in --amp-features"),
    ({"amp_init_decay": -0.1, "amp_decay_nonneg": True}, "--amp-init-decay must be >= 0"),
    ({"freeze_amplifier": True, "amp_form": "mlp", "amp_theta_ref": "rms"}, "--freeze-amplifier needs --amplifier"),
])
def test_bad_starting_coefficients_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        build({**COEF, **options})


def _shuffle_module():
    return experiment_script("shuffle_coefficients")


def test_shuffle_permutes_values_within_kinds_only():
    mod = _shuffle_module()
    cfg = build({"task": "a+b"})
    params = [(n, p.dim()) for n, p in build_model(cfg, task_data(cfg)).named_parameters()]
    names, dims = [n for n, _ in params], [d for _, d in params]
    coef = torch.arange(64 * 2, dtype=torch.float32).reshape(64, 2)
    one, two = mod.shuffled(coef, names, dims, 1), mod.shuffled(coef, names, dims, 2)
    assert not torch.equal(one, coef) and not torch.equal(one, two)
    assert torch.equal(one[len(names):], coef[len(names):])  # unused slots kept
    for k in {mod.kind(n, d) for n, d in params}:
        rows = [i for i, (n, d) in enumerate(params) if mod.kind(n, d) == k]
        assert sorted(one[rows, 0].tolist()) == sorted(coef[rows, 0].tolist())  # the same values, within the kind
        assert all(one[i, 1] - one[i, 0] == 1 for i in rows)  # a tensor's slow and decay move together
    assert {mod.kind(n, d) for n, d in params} == {"matrix", "bias", "norm"}


def test_shuffle_command_writes_a_loadable_amplifier(tmp_path):
    run = ROOT / "experiments" / "results" / "meta_nonneg" / "runs" / "add-ng_nonneg_gated-s0"
    subprocess.run([sys.executable, str(ROOT / "experiments" / "shuffle_coefficients.py"), str(run), str(tmp_path),
                    "--seed", "3"], check=True, capture_output=True)
    meta = json.loads((tmp_path / "amplifier.json").read_text())
    assert meta["form"] == "coefficients" and len(meta["tensor_names"]) == meta["tensors"] == 29
    t = build_transform(build({**COEF, "amplifier": str(tmp_path), "freeze_amplifier": True}))
    learnt = build_transform(build({**COEF, "amplifier": str(run), "freeze_amplifier": True}))
    assert sorted(t.mlp.coef[:29, 0].tolist()) == sorted(learnt.mlp.coef[:29, 0].tolist())
    assert not torch.equal(t.mlp.coef, learnt.mlp.coef)
