"""Mixed precision: bf16 autocast trains every method with float32 transforms; fp16 without a GPU is refused."""
import json

import pytest
import torch

from conftest import TINY
from neuralgrok.cli import main

RUN = [*TINY, "--run-on", "--max-steps", "20"]
METHODS = {"standard": [], "gradnorm": ["--method", "gradnorm"], "grokfast_ma": ["--method", "grokfast_ma"],
           "grokfast_ema": ["--method", "grokfast_ema"], "orthograd": ["--method", "orthograd", "--loss", "stablemax"],
           "neuralgrok": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2"],
           "neuralgrok_after": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2", "--meta-order",
                                "after", "--meta-weight-decay", "1e-3"],
           "neuralgrok_k2": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2", "--meta-horizon", "2"],
           "neuralgrok_features": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2",
                                   "--amp-features", "g,slow,theta,step,tensor"]}


def first_row(out):
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_trains_close_to_float32(method, tmp_path):
    # both in one process: the second run must get its own precision, not the first run's
    assert main(["train", "--out", str(tmp_path / "fp32"), *RUN, *METHODS[method]]) == 0
    assert main(["train", "--out", str(tmp_path / "bf16"), *RUN, *METHODS[method], "--mixed-precision", "bf16"]) == 0
    full, half = first_row(tmp_path / "fp32"), first_row(tmp_path / "bf16")
    assert half["skipped_steps"] == 0
    assert half["train_loss"] != full["train_loss"]  # autocast really ran in bf16
    assert half["train_loss"] == pytest.approx(full["train_loss"], rel=0.05)
    # AGE depends on the gradient's scale (AGE(s·g) = s·AGE(g) − s·ln(s)·‖g‖₁): agreement within 5% says the
    # transforms and the metric saw the gradient unscaled, as float32 values of about the same size
    assert half["age_raw"] == pytest.approx(full["age_raw"], rel=0.05)
    assert half["age"] == pytest.approx(full["age"], rel=0.05)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 autocast runs on a GPU")
def test_fp16_without_gpu_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), *RUN, "--mixed-precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp16 needs a GPU" in err[0]
