"""Shipped amplifiers: `builtin:NAME` loads the committed study's weights, lists its provenance, refuses misfits."""
import json
from pathlib import Path

import pytest
import torch

from neuralgrok.amplifier_files import BUILTIN_DIR, PROVENANCE, builtin_names, read_amplifier
from neuralgrok.cli import main
from neuralgrok.config import build
from neuralgrok.methods import build_transform

ROOT = Path(__file__).resolve().parents[1]
COEF = ["--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form", "coefficients",
        "--amp-theta-ref", "init", "--freeze-amplifier"]
TINY2 = ["--task", "a+b", "--p", "11", "--d-model", "16", "--eval-every", "2", "--max-steps", "2", "--quiet"]


def test_each_builtin_has_its_weights_its_record_and_a_provenance_naming_a_committed_source():
    assert {"coefficients-add97", "coefficients-add97-4layers", "coefficients-demo"} <= set(builtin_names())
    for name in builtin_names():
        prov = json.loads((BUILTIN_DIR / name / PROVENANCE).read_text())
        assert {"summary", "learnt_on", "run", "fits", "measured"} <= set(prov)
        source = ROOT / prov["run"].split(" ")[0]
        tensors, meta, _ = read_amplifier(f"builtin:{name}")
        if source.exists():  # the committed run the asset was copied from holds the same weights
            committed, committed_meta, _ = read_amplifier(source)
            assert committed.keys() == tensors.keys() and all(torch.equal(committed[k], tensors[k]) for k in tensors)
            assert committed_meta == meta


def test_builtin_loads_through_the_same_path_as_the_run_folder(tmp_path):
    """The builtin and the run folder it came from give the same transform, gradient for gradient."""
    base = dict(method="neuralgrok", amp_features="g,slow,theta", amp_form="coefficients", amp_theta_ref="init",
                freeze_amplifier=True)
    a = build_transform(build({**base, "amplifier": "builtin:coefficients-add97"}))
    b = build_transform(build({**base, "amplifier": str(ROOT / "experiments/results/meta_nonneg/runs/add-ng_nonneg_gated-s0")}))
    assert torch.equal(a.mlp.coef, b.mlp.coef) and a.form.n_tensors == b.form.n_tensors == 29


def test_listing_says_where_each_came_from_and_how_to_use_it(capsys):
    assert main(["amplifiers"]) == 0
    out = capsys.readouterr().out
    for name in builtin_names():
        assert f"builtin:{name}" in out and f"--amplifier builtin:{name} --freeze-amplifier" in out
    assert "learnt on:" in out and "fits:" in out and "measured:" in out


@pytest.mark.parametrize("args,message", [
    ([*COEF, "--amplifier", "builtin:coefficients-add97", "--n-layers", "1"], "learnt on a model with 29 parameter "
                                                                                "tensors"),
    (["--method", "neuralgrok", "--amplifier", "builtin:coefficients-add97"], "--amp-form coefficients"),
    ([*COEF, "--amplifier", "builtin:no-such-thing"], "no built-in amplifier 'no-such-thing'"),
])
def test_a_misfit_is_refused_with_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--out", str(tmp_path / "r"), *TINY2, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
