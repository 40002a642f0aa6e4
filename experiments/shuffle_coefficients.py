"""A control for learnt per-tensor coefficients: the same values permuted across tensors of the same kind.

    python experiments/shuffle_coefficients.py experiments/results/meta_nonneg/runs/add-ng_nonneg_gated-s0 \
        experiments/results/controls/amplifiers/shuffled-1 --seed 1

A tensor's kind is its role without its block: weight matrices (the embeddings, attention and MLP
projections, the head), biases, and LayerNorm gains. Each term's learnt coefficients are permuted
within each kind by a seeded permutation, so the values the meta step found are all kept, and only
which tensor has which is lost: if the shuffled set does as well, the pattern was not what helped.
Writes ``amplifier.safetensors`` and ``amplifier.json`` (with the same tensor names) into the folder.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from neuralgrok.amplifier_files import AMPLIFIER_FILE, AMPLIFIER_META


def kind(name: str, ndim: int) -> str:
    """A parameter's kind: ``matrix`` (2-D), ``bias`` or ``norm`` (a LayerNorm's 1-D gain)."""
    if ndim >= 2:
        return "matrix"
    return "bias" if name.endswith("bias") else "norm"


def shuffled(coef: torch.Tensor, names: list[str], dims: list[int], seed: int) -> torch.Tensor:
    """``coef`` with rows 0..n-1 (the model's tensors) permuted within each kind; other rows kept."""
    out = coef.clone()
    gen = torch.Generator().manual_seed(seed)
    groups: dict[str, list[int]] = {}
    for i, (name, ndim) in enumerate(zip(names, dims)):
        groups.setdefault(kind(name, ndim), []).append(i)
    for rows in groups.values():
        order = torch.randperm(len(rows), generator=gen)
        out[rows] = coef[[rows[j] for j in order.tolist()]]
    return out


def main() -> None:
    from neuralgrok.build import coefficient_run, parameters_of
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder of a coefficient-form amplifier (amplifier.* and config.json)")
    ap.add_argument("out", type=Path, help="folder for the shuffled amplifier")
    ap.add_argument("--seed", type=int, required=True, help="the permutation's seed")
    args = ap.parse_args()
    tensors, info, cfg = coefficient_run(args.run)
    params = parameters_of(cfg)
    tensors["coef"] = shuffled(tensors["coef"], [n for n, _ in params], [d for _, d in params], args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, args.out / AMPLIFIER_FILE)
    (args.out / AMPLIFIER_META).write_text(json.dumps({**info, "tensor_names": [n for n, _ in params]}, indent=2)
                                           + "\n")
    print(f"wrote {args.out / AMPLIFIER_FILE}: {len(params)} tensors' coefficients permuted within their kinds "
          f"(seed {args.seed})")


if __name__ == "__main__":
    main()
