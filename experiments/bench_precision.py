"""bf16 autocast against float32 on this CPU: standard and NeuralGrok steps timed side by side.

    python -m experiments.bench_precision --out experiments/results/bench/precision

Paper setting ((a*b) mod 97, the reference model, batch 512; NeuralGrok with its paper settings,
a meta step every 4 steps, so its figure is the amortised step). Real ``Trainer.train_step``
calls, evaluation excluded, interleaved across the four settings within each repetition.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

from experiments.bench import make_trainer, report, timed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10, help="interleaved repetitions of 4 steps each")
    ap.add_argument("--out", type=Path, help="folder for bench.json and bench.md")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    settings = {f"{method} {precision}": make_trainer(method, mixed_precision=precision)
                for method in ("standard", "neuralgrok") for precision in ("no", "bf16")}
    for t in settings.values():
        t.train_step(log=False)
    times = {name: [] for name in settings}
    for _ in range(args.reps):
        for name, t in settings.items():
            times[name].append(timed(lambda: [t.train_step(log=False) for _ in range(4)]) / 4)
    ms = {name: 1e3 * statistics.median(v) for name, v in times.items()}
    lines = [f"# bf16 against float32 on {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
             f"threads, torch {torch.__version__}", "",
             f"Command: `python -m experiments.bench_precision {' '.join(sys.argv[1:])}`", "",
             "| method | float32 ms/step | bf16 ms/step | float32 / bf16 |", "|---|---|---|---|"]
    for method in ("standard", "neuralgrok"):
        a, b = ms[f"{method} no"], ms[f"{method} bf16"]
        lines.append(f"| {method} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
    report(lines, {"ms_per_step": ms}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
