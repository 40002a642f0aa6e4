"""Fourier analysis: planted frequencies found in an embedding; logits built from known frequencies; a real run."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from neuralgrok.analysis import (fourier_basis, frequency_energy, key_frequencies, project_logits,
                                 restricted_and_excluded_loss)
from neuralgrok.cli import main

from conftest import TINY


@pytest.mark.parametrize("p", [7, 8, 23])
def test_basis_is_orthonormal(p):
    basis, freqs = fourier_basis(p)
    assert torch.allclose(basis @ basis.T, torch.eye(p, dtype=torch.float64), atol=1e-12)
    assert freqs[0] == 0 and max(freqs) == p // 2


def test_planted_frequencies_are_found():
    p, d = 23, 16
    x = torch.arange(p, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    emb = torch.zeros(p, d, dtype=torch.float64)
    for k, weight in ((3, 3.0), (7, 2.0), (10, 1.0)):  # energies 9 : 4 : 1 (times the random directions' norms)
        a, b = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64)
        a, b = a / a.norm(), b / b.norm()
        emb += weight * (torch.cos(2 * math.pi * k * x / p)[:, None] * a + torch.sin(2 * math.pi * k * x / p)[:, None] * b)
    emb += 5.0  # a constant offset is not a frequency
    energy = frequency_energy(emb)
    assert energy.sum().item() == pytest.approx(1.0)
    assert sorted(torch.nonzero(energy > 1e-9).flatten().add(1).tolist()) == [3, 7, 10]
    assert energy[2].item() == pytest.approx(9 / 14, rel=0.05) and key_frequencies(energy, 0.6) == [3]
    assert key_frequencies(energy, 0.99) == [3, 7, 10]


def test_restricted_and_excluded_loss_on_logits_made_of_known_frequencies():
    """Logits of a model computing (a+b) mod p through frequencies {2, 5}: Nanda et al.'s construction."""
    p, keys = 23, [2, 5]
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    c = torch.arange(p)
    logits = sum(4.0 * torch.cos(2 * math.pi * k * (a[:, None] + b[:, None] - c[None, :]).double() / p) for k in keys)
    labels = (a + b) % p
    full = F.cross_entropy(logits, labels).item()
    restricted, excluded = restricted_and_excluded_loss(logits, labels, keys)
    assert restricted == pytest.approx(full, rel=1e-9)  # nothing outside the key frequencies
    assert excluded == pytest.approx(math.log(p), rel=1e-9)  # nothing left: uniform over the answers
    assert torch.allclose(project_logits(logits, keys, True) + project_logits(logits, keys, False),
                          logits + logits.mean(1, keepdim=True), atol=1e-9)


def test_analyze_a_run_with_snapshots(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--max-steps", "600", "--snapshot-steps", "every:200"]) == 0
    assert main(["analyze", str(out)]) == 0
    summary = json.loads((out / "analysis" / "analysis.json").read_text())
    assert summary["steps"] == sorted(summary["steps"]) and summary["steps"][0] == 200
    assert len(summary["energy"][0]) == 11 and summary["key_frequencies"]  # p = 23: frequencies 1..11
    # Oracle: the trainer's own log of the same steps. The weight norm is the same number; the losses are over the
    # p residues only (the trainer's are over the whole vocabulary), so never above the trainer's, and close to them
    # once the model puts little mass on operator tokens. (Whether test loss falls in 400 steps depends on the
    # thread count's rounding: at 2 threads this run spikes at step 400, so the test does not ask that.)
    logged = {row["step"]: row for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}
    for i, step in enumerate(summary["steps"]):
        assert summary["weight_norm"][i] == pytest.approx(logged[step]["weight_norm"], rel=1e-6)
        for split in ("train_loss", "test_loss"):
            assert logged[step][split] * 0.95 < summary[split][i] <= logged[step][split] + 1e-6
    assert (out / "analysis" / "analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["analyze", str(tmp_path)]) == 2  # no config.json / snapshots: one-line error
