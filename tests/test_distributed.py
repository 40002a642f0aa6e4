"""Two CPU processes under torchrun train like one process with the same global batch, and stay in lockstep."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY

WORKER = Path(__file__).with_name("dist_worker.py")
# SGD: its update is linear in the gradient, so parameters expose any difference in the averaged gradients
# (Adam would turn rounding-level differences in near-zero entries into full ±lr steps).
RUN = [*TINY, "--run-on", "--max-steps", "30", "--eval-every", "10", "--optimizer", "sgd", "--lr", "0.3",
       "--weight-decay", "0"]
METHODS = {"standard": [], "grokfast_ema": ["--method", "grokfast_ema"],
           "orthograd": ["--method", "orthograd", "--loss", "stablemax", "--weight-norm", "20", "--init-scale", "1.5"],
           "neuralgrok": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2"],
           # after the model's step: the recomputed batch gradient is averaged over the ranks like the step's
           "neuralgrok_after": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2", "--meta-order",
                                "after", "--meta-weight-decay", "1e-3"],
           "neuralgrok_features": ["--method", "neuralgrok", "--amp-features", "g,slow,theta,step,tensor",
                                   "--amp-hidden", "8,8", "--meta-every", "2"],
           # meta steps from the first evaluation (step 10): the gate must open on every rank at once
           # the math attention kernel (--attention math) acts inside build_model, which both paths share
           "math_attention": ["--attention", "math"],
           "neuralgrok_gated": ["--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form",
                                "coefficients", "--meta-every", "2", "--meta-start-acc", "0.01"]}


def torchrun(nproc, tmp, extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(WORKER), str(tmp / f"state{nproc}"), str(tmp / f"run{nproc}"), *RUN, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def launch(nproc, tmp, extra):
    proc = torchrun(nproc, tmp, extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = [torch.load(p, weights_only=False) for p in sorted((tmp / f"state{nproc}").glob("rank*.pt"))]
    rows = [json.loads(line) for line in (tmp / f"run{nproc}" / "metrics.jsonl").read_text().splitlines()]
    return states, rows


def flat(state):
    """Every tensor in a (nested) transform state, in a fixed order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) for t in flat(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in flat(v)]
    return []


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_match_one(method, tmp_path):
    two, rows2 = launch(2, tmp_path, METHODS[method])
    one, rows1 = launch(1, tmp_path, METHODS[method])
    assert [s["world"] for s in two] == [2, 2] and two[0]["type"] == "MULTI_CPU"
    assert one[0]["world"] == 1
    # ranks in lockstep: parameters and every transform state (filters, amplifier, its optimizer) bit-identical
    for a, b in zip(two[0]["params"], two[1]["params"]):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(flat(two[0]["transform"]), flat(two[1]["transform"])))
    # the same training as one process with the same global batch, up to float rounding
    a, b = (torch.cat([p.reshape(-1) for p in s[0]["params"]]) for s in (two, one))
    assert ((a - b).norm() / b.norm()).item() < 1e-4
    assert [r["step"] for r in rows2] == [r["step"] for r in rows1] == [10, 20, 30]
    for r2, r1 in zip(rows2, rows1):
        for key in ("train_loss", "test_loss", "weight_norm", "age_raw_scaled"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-3), key
        assert abs(r2["test_acc"] - r1["test_acc"]) <= 0.02
    assert [s["kernels"] for s in (*two, *one)] == [["math" if method == "math_attention" else "auto"]] * 3
    if method.startswith("neuralgrok"):
        assert rows2[-1]["outer_loss"] == pytest.approx(rows1[-1]["outer_loss"], rel=1e-3)
    if method == "neuralgrok_gated":
        assert rows2[0]["outer_loss"] is None and rows2[-1]["outer_loss"] is not None


def test_meta_horizon_refuses_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "neuralgrok", "train", "--out", str(tmp_path / "run"), *RUN,
           "--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-horizon", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if "--meta-horizon 2 runs on one process" in line]
    assert said and all(line.startswith("neuralgrok: ") and "use --meta-horizon 1 with 2" in line for line in said)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
