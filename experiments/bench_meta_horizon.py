"""Cost of NeuralGrok's K-step meta-gradient: time per meta step and peak memory for K = 1, 2, 4, 8, side by side.

    python -m experiments.bench_meta_horizon --out experiments/results/bench/meta_horizon

Paper setting ((a*b) mod 97, the reference model, batch 512, amplifier 128,128), a meta
step at every step (``meta_every`` 1) so that each timed step is a meta step; the
look-ahead uses the inner optimizer's rule (Adam's moments carried through the K steps).
Steps are real ``Trainer.train_step`` calls, interleaved across settings within each
repetition; standard training is the unit.  Peak memory is the resident-set high-water
mark of a fresh process over 4 steps of one setting (as in ``bench.py --memory``).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

from experiments.bench import make_trainer, peak_memory_of, report, timed


def settings(horizons: list[int]) -> dict[str, tuple[str, dict]]:
    out = {"standard": ("standard", {})}
    for k in horizons:
        orders = ["second"] if k == 1 else ["second", "first"]
        for order in orders:
            name = "neuralgrok K=1 (the paper's)" if k == 1 else f"neuralgrok K={k} {order}-order"
            out[name] = ("neuralgrok", {"meta_every": 1, "lookahead": "inner", "meta_horizon": k,
                                        "meta_first_order": order == "first"})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    ap.add_argument("--out", type=Path, help="folder for bench.json and bench.md")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    runs = settings(args.horizons)
    trainers = {name: make_trainer(method, **extra) for name, (method, extra) in runs.items()}
    for t in trainers.values():  # warm-up
        t.train_step(log=False)
    times = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, t in trainers.items():
            times[name].append(timed(lambda: t.train_step(log=False)))
    seconds = {name: statistics.median(v) for name, v in times.items()}
    memory = {name: peak_memory_of(method, extra, 4) for name, (method, extra) in runs.items()}
    base = seconds["standard"]
    lines = [f"# K-step meta-gradient cost on {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}", "",
             f"Command: `python -m experiments.bench_meta_horizon {' '.join(sys.argv[1:])}`", "",
             "| step (every step a meta step) | median ms | × standard | peak MB | rise over pre-step MB |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {s * 1e3:.0f} | {s / base:.2f} | {memory[n][0]:.0f} | {memory[n][1]:.0f} |"
              for n, s in seconds.items()]
    report(lines, {"seconds": seconds, "peak_mb": memory}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
