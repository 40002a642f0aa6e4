"""A control for a learnt coefficient amplifier: the same amplifier with each term's coefficient set to its
mean over the model's tensors, so that a run can tell the per-tensor pattern from the average's effect.

    python experiments/average_coefficients.py experiments/results/meta/runs/add-ng_coef_gated-s0 \
        experiments/results/meta_study/amplifiers/add-s0-averaged

writes ``amplifier.safetensors`` and ``amplifier.json`` into the second folder; load it with
``--amplifier FOLDER --freeze-amplifier`` and the same ``--amp-features``/``--amp-form``.
"""
import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from neuralgrok.bilevel import AMPLIFIER_FILE, AMPLIFIER_META
from neuralgrok.build import coefficient_run, parameters_of


def averaged(coef: torch.Tensor, n_tensors: int) -> torch.Tensor:
    """``coef`` with rows 0..n-1 (the model's tensors) replaced by their mean; unused rows stay as they are."""
    out = coef.clone()
    out[:n_tensors] = coef[:n_tensors].mean(dim=0, keepdim=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder of a coefficient-form amplifier (amplifier.* and config.json)")
    ap.add_argument("out", type=Path, help="folder for the averaged amplifier")
    args = ap.parse_args()
    tensors, info, cfg = coefficient_run(args.run)
    n = len(parameters_of(cfg))
    tensors["coef"] = averaged(tensors["coef"], n)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, args.out / AMPLIFIER_FILE)
    shutil.copy(args.run / AMPLIFIER_META, args.out / AMPLIFIER_META)
    means = ", ".join(f"{v:+.4f}" for v in tensors["coef"][0].tolist())
    print(f"wrote {args.out / AMPLIFIER_FILE}: {n} tensors, each term at its mean ({means})")


if __name__ == "__main__":
    main()
