"""Mechanistic analysis of a modular-arithmetic run over its snapshots: the Fourier spectrum of the token
embedding, its key frequencies, and the restricted and excluded losses of Nanda et al. (2023)."""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F


def fourier_basis(p: int) -> tuple[torch.Tensor, list[int]]:
    """An orthonormal basis of functions on 0..p−1, rows: the constant, then cos and sin of each frequency k ≥ 1.

    Returns the (p, p) basis and the frequency of each row (0 for the constant; for even p the
    Nyquist frequency p/2 has a cosine only). Computed in float64.
    """
    x = torch.arange(p, dtype=torch.float64)
    rows, freqs = [torch.ones(p, dtype=torch.float64)], [0]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        freqs.append(k)
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * x / p))
            freqs.append(k)
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), freqs


def frequency_energy(embedding: torch.Tensor) -> torch.Tensor:
    """The share of the (p, d) embedding's non-constant energy at each frequency 1..p//2 (sums to 1)."""
    p = embedding.shape[0]
    basis, freqs = fourier_basis(p)
    coeff = basis @ embedding.double()  # (p, d): each basis function's component in every embedding dimension
    energy = torch.zeros(p // 2 + 1, dtype=torch.float64).index_add(0, torch.tensor(freqs), (coeff ** 2).sum(1))[1:]
    total = energy.sum()
    return energy / total if total > 0 else energy


def key_frequencies(energy: torch.Tensor, share: float = 0.9) -> list[int]:
    """The fewest frequencies (1-based) whose energies add up to ``share`` of the total, strongest first."""
    order = torch.argsort(energy, descending=True)
    keys, acc = [], 0.0
    for i in order.tolist():
        keys.append(i + 1)
        acc += energy[i].item()
        if acc >= share:
            break
    return keys


def project_logits(logits: torch.Tensor, keys: list[int], keep: bool) -> torch.Tensor:
    """Logits over the answers 0..p−1 (N, p) with only (``keep``) or without the key frequencies' components.

    The constant component is kept either way (it does not change a softmax).
    """
    p = logits.shape[-1]
    basis, freqs = fourier_basis(p)
    chosen = torch.tensor([f == 0 or ((f in keys) == keep) for f in freqs])
    b = basis[chosen]
    return (logits.double() @ b.T) @ b


def restricted_and_excluded_loss(logits: torch.Tensor, labels: torch.Tensor, keys: list[int]) -> tuple[float, float]:
    """Cross-entropy with only the key frequencies' part of the logits, and with it removed (Nanda et al. 2023)."""
    restricted = F.cross_entropy(project_logits(logits, keys, keep=True), labels).item()
    excluded = F.cross_entropy(project_logits(logits, keys, keep=False), labels).item()
    return restricted, excluded


@torch.no_grad()
def analyze_run(run_dir: str | Path, share: float = 0.9) -> dict:
    """Fourier spectrum, key frequencies (of the last snapshot), restricted/excluded and plain losses on the
    train and test splits, and the weight norm, at every snapshot of the run in ``run_dir``."""
    from .config import ConfigError, from_json
    from .mlp import ARCH as MLP_ARCH
    from .model import answer_logits
    from .snapshots import SNAPSHOT_DIR, load_snapshot
    from .build import build_model, task_data

    run_dir = Path(run_dir)
    cfg = from_json((run_dir / "config.json").read_text())
    if cfg.arch == MLP_ARCH:
        raise ConfigError(f"the Fourier analysis reads a transformer's token embedding; {run_dir} trained an MLP")
    from .groups import GROUP_TASKS
    if cfg.task in GROUP_TASKS:
        raise ConfigError(f"the Fourier analysis is over the residues of a modular task; {run_dir} trained the group "
                          f"task {cfg.task}")
    paths = sorted((run_dir / SNAPSHOT_DIR).glob("step-*.safetensors"))
    if not paths:
        raise ConfigError(f"{run_dir} has no snapshots: train it with --snapshot-steps (e.g. 'log')")
    data = task_data(cfg)
    model = build_model(cfg, data).eval()
    p = data.task.p
    out = {"run": str(run_dir), "p": p, "steps": [], "energy": [], "weight_norm": [],
           "train_loss": [], "test_loss": [], "restricted_loss": [], "excluded_loss": []}
    states = [(int(path.stem.split("-")[1]), load_snapshot(path)) for path in paths]
    model.load_state_dict(states[-1][1])
    out["key_frequencies"] = keys = key_frequencies(frequency_energy(model.tok.weight[:p]), share)
    for step, state in states:
        model.load_state_dict(state)
        logits = answer_logits(model, data.x)[:, :p].float()  # (N, p): answers are residues
        train, test = data.splits.train, data.splits.test
        out["steps"].append(step)
        out["energy"].append(frequency_energy(model.tok.weight[:p]).tolist())
        out["weight_norm"].append(math.sqrt(sum((w.double() ** 2).sum().item() for w in state.values())))
        out["train_loss"].append(F.cross_entropy(logits[train], data.y[train]).item())
        out["test_loss"].append(F.cross_entropy(logits[test], data.y[test]).item())
        restricted, _ = restricted_and_excluded_loss(logits, data.y, keys)
        _, excluded = restricted_and_excluded_loss(logits[train], data.y[train], keys)
        out["restricted_loss"].append(restricted)  # on every row, as Nanda et al.
        out["excluded_loss"].append(excluded)  # on the training rows, as Nanda et al.
    return out
