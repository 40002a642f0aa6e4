"""⊥Grad, StableMax, Omnigrok's initialisation scale and constant weight norm, each against a formula written here."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from baselines import OrthoGrad
from neuralgrok.cli import main, parser, resolve_train_args
from neuralgrok.losses import cross_entropy
from neuralgrok.trainer import Trainer

from conftest import TINY


def _orthograd_by_hand(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    g, w = g.flatten().tolist(), w.flatten().tolist()
    wg, ww = sum(a * b for a, b in zip(w, g)), sum(a * a for a in w)
    ortho = [gi - wg / ww * wi for gi, wi in zip(g, w)]
    scale = math.sqrt(sum(x * x for x in g)) / math.sqrt(sum(x * x for x in ortho))
    return torch.tensor([x * scale for x in ortho], dtype=torch.float64)


def test_orthograd_matches_the_formula_per_tensor():
    torch.manual_seed(0)
    params = [torch.randn(4, 3), torch.randn(5)]
    grads = [torch.randn(4, 3), torch.randn(5)]
    out = OrthoGrad(params)(grads)
    for o, g, w in zip(out, grads, params):
        assert o.shape == g.shape and o.dtype == g.dtype
        assert torch.allclose(o.flatten().double(), _orthograd_by_hand(g, w), atol=1e-6)
        assert abs(torch.dot(o.flatten(), w.flatten()).item()) < 1e-5  # no radial component left
        assert o.norm().item() == pytest.approx(g.norm().item(), rel=1e-6)  # the gradient's own norm kept
    assert [torch.equal(a, b) for a, b in zip(grads, [g.clone() for g in grads])] == [True, True]  # inputs kept


def test_orthograd_reads_the_current_weights():
    w = torch.tensor([1.0, 0.0])
    t = OrthoGrad([w])
    g = [torch.tensor([1.0, 1.0])]
    assert torch.allclose(t(g)[0], torch.tensor([0.0, math.sqrt(2)]))
    w.copy_(torch.tensor([0.0, 1.0]))  # the weights moved: the removed direction moves with them
    assert torch.allclose(t(g)[0], torch.tensor([math.sqrt(2), 0.0]))


def _stablemax_ce_by_hand(logits, target):
    s = [x + 1 if x >= 0 else 1 / (1 - x) for x in logits]
    return -math.log(s[target] / sum(s))


def test_stablemax_cross_entropy_matches_the_formula_and_finite_differences():
    torch.manual_seed(1)
    logits = torch.randn(6, 7, dtype=torch.float64) * 3
    target = torch.randint(0, 7, (6,))
    expected = [_stablemax_ce_by_hand(row.tolist(), int(t)) for row, t in zip(logits, target)]
    got = cross_entropy(logits, target, "stablemax", reduction="none")
    assert torch.allclose(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6)
    assert cross_entropy(logits, target, "stablemax").item() == pytest.approx(sum(expected) / 6, rel=1e-6)
    logits.requires_grad_(True)
    f = lambda x: F.nll_loss(__import__("neuralgrok.losses", fromlist=["x"]).log_stablemax(x), target)  # noqa: E731
    assert torch.autograd.gradcheck(f, (logits,))
    assert torch.equal(cross_entropy(logits, target, "softmax"), F.cross_entropy(logits.float(), target))


def test_stablemax_does_not_collapse_where_softmax_does():
    # a correct answer far ahead in float32: softmax's gradient rounds to exactly zero (softmax collapse)
    logits = torch.tensor([[120.0, 0.0, -3.0, 2.0]], requires_grad=True)
    target = torch.tensor([0])
    F.cross_entropy(logits, target).backward()
    assert torch.count_nonzero(logits.grad) == 0
    logits.grad = None
    cross_entropy(logits, target, "stablemax").backward()
    assert logits.grad[0, 0] < 0  # StableMax still pushes the correct logit up


def _trainer(tmp_path, *extra):
    return Trainer(resolve_train_args(parser().parse_args(["train", *TINY, *extra])), tmp_path, quiet=True)


def test_init_scale_multiplies_every_initial_weight(tmp_path):
    plain, scaled = _trainer(tmp_path / "a"), _trainer(tmp_path / "b", "--init-scale", "2.5")
    for p, q in zip(plain.params, scaled.params):
        assert torch.allclose(q, 2.5 * p, atol=0, rtol=1e-6)


def test_constant_weight_norm_holds_after_every_step(tmp_path):
    out = tmp_path / "r"
    args = [*TINY, "--method", "orthograd", "--loss", "stablemax", "--init-scale", "3", "--weight-norm", "40",
            "--max-steps", "60", "--eval-every", "10", "--run-on"]
    assert main(["train", "--out", str(out), *args]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["weight_norm"] == pytest.approx(40.0, rel=1e-5) for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # and it trains


@pytest.mark.parametrize("flag,value", [("--init-scale", "0"), ("--weight-norm", "-1"), ("--loss", "sparsemax")])
def test_bad_values_are_one_line_errors(tmp_path, capsys, flag, value):
    try:
        code = main(["train", "--out", str(tmp_path / "r"), *TINY, flag, value])
    except SystemExit as e:  # argparse rejects a choice before main's handler
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err
