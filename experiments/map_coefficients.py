"""Carries a learnt coefficient amplifier to a model of another depth: each tensor takes the coefficients of the
tensor with its role at the same relative depth.

    python experiments/map_coefficients.py experiments/results/meta_nonneg/runs/add-ng_nonneg_gated-s0 \
        experiments/results/meta_nonneg/amplifiers/add-s0-4layers --n-layers 4

The coefficient form learns one number per parameter tensor and term, read by the tensor's position, so an
amplifier learnt on a 2-layer model does not load onto the 4-layer model of the mod-7 task. Outside the blocks
(embeddings, final layer norm, head) a tensor takes the coefficients of the tensor of the same name; block k of an
L-block model takes those of block ⌊(k + ½)·L_src / L⌋ of the source, the block whose span holds its centre (2 → 4
blocks: 0, 0, 1, 1; the same depth: itself). Writes ``amplifier.safetensors`` and ``amplifier.json`` into the second
folder; load it with ``--amplifier FOLDER --freeze-amplifier``, the same ``--amp-*`` options and the new depth.
"""
import argparse
import dataclasses
import re
from pathlib import Path

import torch
from safetensors.torch import save

from neuralgrok.bilevel import AMPLIFIER_FILE, AMPLIFIER_META
from neuralgrok.build import coefficient_run, parameters_of
from neuralgrok.config import resolve
from neuralgrok.feature_amplifier import TENSOR_SLOTS
from neuralgrok.runfolder import write_atomic, write_json

BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


def _blocks(names: list[str]) -> int:
    return 1 + max((int(m.group(1)) for m in map(BLOCK.fullmatch, names) if m), default=-1)


def depth_map(src: list[str], dst: list[str]) -> list[int]:
    """For each parameter name of ``dst``, the index in ``src`` of the tensor whose coefficients it takes.

    ValueError naming the first ``dst`` tensor with no counterpart (another architecture, not another depth).
    """
    where = {name: i for i, name in enumerate(src)}
    n_src, n_dst = _blocks(src), _blocks(dst)
    out = []
    for name in dst:
        m = BLOCK.fullmatch(name)
        source = name if m is None else f"blocks.{(2 * int(m.group(1)) + 1) * n_src // (2 * n_dst)}.{m.group(2)}"
        if source not in where:
            raise ValueError(f"{name} has no counterpart ({source}) in the model the amplifier was learnt on")
        out.append(where[source])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder of a coefficient-form amplifier (amplifier.* and config.json)")
    ap.add_argument("out", type=Path, help="folder for the mapped amplifier")
    ap.add_argument("--n-layers", type=int, required=True, help="the depth of the model it is mapped to")
    args = ap.parse_args()
    tensors, info, cfg = coefficient_run(args.run)
    deeper = resolve(dataclasses.replace(cfg, n_layers=args.n_layers))
    src, dst = ([n for n, _ in parameters_of(c)] for c in (cfg, deeper))
    if len(dst) > TENSOR_SLOTS:
        raise SystemExit(f"a {args.n_layers}-layer model has {len(dst)} parameter tensors; the coefficient amplifier "
                         f"holds {TENSOR_SLOTS}")
    try:
        rows = depth_map(src, dst)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    coef = tensors["coef"].clone()
    coef[:len(dst)] = tensors["coef"][torch.tensor(rows)]
    tensors["coef"] = coef
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / AMPLIFIER_FILE, save(tensors))
    write_json(args.out / AMPLIFIER_META, {**info, "tensors": len(dst), "tensor_names": dst})
    print(f"wrote {args.out / AMPLIFIER_FILE}: {len(src)} tensors ({_blocks(src)} blocks) mapped to {len(dst)} "
          f"({args.n_layers} blocks)")


if __name__ == "__main__":
    main()
