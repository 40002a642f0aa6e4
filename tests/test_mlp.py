"""The MLP on one-hot operands (--arch mlp) against the explicit one-hot product, and the float64 softmax loss."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from neuralgrok.cli import main
from neuralgrok.config import RunConfig
from neuralgrok.data import load_task_data
from neuralgrok.losses import cross_entropy
from neuralgrok.mlp import MLPConfig, OperandMLP, operand_positions
from neuralgrok.build import build_model

from conftest import TINY


def _by_hand(model: OperandMLP, idx: torch.Tensor) -> torch.Tensor:
    """The reference code's function: concatenated one-hots of the operands through bias-free ReLU layers."""
    p = model.cfg.n_values
    x = torch.cat([F.one_hot(idx[:, i], p) for i in model.cfg.inputs], 1).to(torch.float64)
    weights = [layer.weight for layer in model.layers]
    for w in weights[:-1]:
        x = torch.relu(x @ w.T)
    return x @ weights[-1].T


def test_forward_and_gradients_equal_the_one_hot_product():
    torch.manual_seed(0)
    model = OperandMLP(MLPConfig(n_values=11, inputs=(0, 2), hidden=(16, 12))).double()
    idx = torch.stack([torch.randint(0, 11, (9,)), torch.full((9,), 12), torch.randint(0, 11, (9,))], 1)
    y = torch.randint(0, 11, (9,))
    grads = []
    for f in (lambda: model(idx, answer_only=True), lambda: _by_hand(model, idx)):
        model.zero_grad()
        out = f()
        assert out.shape == (9, 11)
        F.cross_entropy(out, y).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(model(idx, answer_only=True), _by_hand(model, idx), atol=1e-12, rtol=0)
    for fast, slow in zip(*grads):
        assert fast.abs().max() > 0
        assert torch.allclose(fast, slow, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="answer_only"):
        model(idx)


def test_the_reference_models_shapes_and_initialisation():
    """(a+b) mod 113: 226 inputs, 200-200 hidden, 113 outputs, no biases, nn.Linear's U(±1/sqrt(fan_in))."""
    torch.manual_seed(0)
    cfg = RunConfig(task="a+b", p=113, arch="mlp")
    model = build_model(cfg, load_task_data("a+b", 113, "", "infix", 0.4, 49.0, 0))
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(200, 226), (200, 200), (113, 200)]
    for w in model.parameters():
        bound = 1 / math.sqrt(w.shape[1])
        assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound


def test_operand_positions_are_the_varying_tokens():
    add = load_task_data("a+b", 7, "", "infix", 0.5, 49.0, 0)
    assert operand_positions(add.x, 7) == (0, 2)
    square_sub = load_task_data("a*a-b", 7, "", "infix", 0.5, 49.0, 0)
    assert operand_positions(square_sub.x, 7) == (0, 2, 4)  # a is read twice, as the equation shows it
    with pytest.raises(ValueError, match="non-residue"):
        operand_positions(torch.tensor([[0, 9], [1, 8]]), 7)


def test_softmax64_is_the_float64_formula_and_outlasts_float32_collapse():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 6) * 4, torch.randint(0, 6, (5,))
    expected = [math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(logits.double().tolist(), target)]
    got = cross_entropy(logits, target, "softmax64", reduction="none")
    assert got.dtype == torch.float32 and torch.allclose(got.double(), torch.tensor(expected, dtype=torch.float64))
    # a correct answer 20 ahead: float32 rounds its probability to 1 and its gradient to exactly zero (softmax
    # collapse); float64 does not
    for loss in ("softmax", "softmax64"):
        ahead = torch.tensor([[20.0, 0.0, -3.0, 2.0]], requires_grad=True)
        cross_entropy(ahead, torch.tensor([0]), loss).backward()
        assert (ahead.grad[0, 0] == 0) == (loss == "softmax"), loss


def test_mlp_trains_with_the_reference_settings(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["--task", "a+b", "--p", "47", "--train-frac", "0.5", "--arch", "mlp", "--mlp-hidden", "128,128",
            "--optimizer", "adamw", "--lr", "1e-2", "--beta2", "0.99", "--eps", "1e-25", "--weight-decay", "0",
            "--warmup-steps", "0", "--batch-size", "1104", "--method", "orthograd", "--loss", "softmax64",
            "--max-steps", "400", "--eval-every", "20", "--stop-acc", "0.95", "--stop-patience", "1", "--quiet"]
    assert main(["train", "--out", str(out), *args]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_to_95"] is not None  # full batch, no decay: (a+b) mod 47 generalises in 280 steps
    # the transformer-only tools say so in one line
    capsys.readouterr()
    for command in (["export", str(out), "--out", str(tmp_path / "exported")], ["analyze", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "transformer" in err, command


@pytest.mark.parametrize("extra,named", [(["--arch", "mlp"], "--d-model"),  # TINY sets the transformer's width
                                         (["--mlp-hidden", "8"], "--mlp-hidden"),
                                         (["--arch", "mlp", "--d-model", "128", "--n-layers", "2", "--mlp-hidden",
                                           "0"], "--mlp-hidden"),
                                         (["--arch", "mlp", "--d-model", "128", "--n-layers", "2", "--attention",
                                           "math"], "--attention")])
def test_options_of_the_other_model_are_one_line_errors(tmp_path, capsys, extra, named):
    assert main(["train", "--out", str(tmp_path / "r"), *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err
