"""Step cost of training methods side by side: blocks of real training steps of each method, timed in turn.

    python experiments/bench_methods.py \\
        experiments/grids/ablation.toml:gradnorm_clip experiments/grids/ablation.toml:grokfast_ma_wd \\
        experiments/grids/meta_study.toml:ng_coef_frozen experiments/grids/meta_study.toml:ng_coef \\
        "experiments/grids/meta_study.toml:ng_coef+meta_start_acc=0" --task add --out experiments/results/bench/methods

A cell is ``GRID:METHOD``, trained as the grid trains it on ``--task`` (default: its first) and first seed, with
``+key=value,...`` overrides (TOML values). Each repetition times a block of ``--block``
consecutive ``Trainer.train_step`` calls (evaluation excluded) of every cell in turn, so that all
see the same machine state; the first block of each cell is a warm-up and not counted. A method
with a meta step every T steps should get a block that is a multiple of T, so that a block holds
its amortised cost. The first cell is the reference of the ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tomllib
from pathlib import Path

import torch

from neuralgrok.aggregate import task_label
from neuralgrok.config import build
from neuralgrok.runfolder import host_description
from neuralgrok.sweep.grid import expand, parse_only
from neuralgrok.trainer import Trainer


def cell_options(spec: str, task: str | None) -> dict:
    """``GRID:METHOD[+key=value,...]`` → the run options of that method on ``task`` (default the grid's first), first seed."""
    where, _, extra = spec.partition("+")
    grid_file, _, method = where.rpartition(":")
    grid = tomllib.loads(Path(grid_file).read_text())
    cells = expand(grid, parse_only([f"method={method}"] + ([f"task={task}"] if task else [])))
    if not cells:
        raise SystemExit(f"{grid_file} has no method {method!r}" + (f" on a task {task!r}" if task else ""))
    overrides = tomllib.loads("\n".join(extra.split(","))) if extra else {}
    return {**cells[0].options, **overrides}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cells", nargs="+", help="GRID:METHOD[+key=value,...]; the first is the reference")
    ap.add_argument("--task", help="the grids' task name (default: each grid's first)")
    ap.add_argument("--block", type=int, default=10, help="consecutive steps timed together")
    ap.add_argument("--reps", type=int, default=7, help="timed blocks of each cell, interleaved")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-methods-") as tmp:
        options = [cell_options(spec, args.task) for spec in args.cells]
        trainers = [Trainer(build(o), Path(tmp) / str(i), quiet=True) for i, o in enumerate(options)]
        times: list[list[float]] = [[] for _ in trainers]
        for rep in range(args.reps + 1):
            for t, out in zip(trainers, times):
                start = time.perf_counter()
                for _ in range(args.block):
                    t.train_step(log=False)
                if rep:  # the first block warms up
                    out.append((time.perf_counter() - start) / args.block)
    ms = [1e3 * statistics.median(t) for t in times]
    host = host_description()
    lines = [f"{host['cpu']} ({host['isa']}), torch {torch.__version__}, {args.threads} thread(s); "
             f"median of {args.reps} interleaved blocks of {args.block} steps", "",
             "| cell | task | ms a step | × first |", "|---|---|---|---|"]
    tasks = [task_label(o["task"], o.get("p")) for o in options]
    lines += [f"| `{spec}` | {t} | {m:.1f} | {m / ms[0]:.2f} |" for spec, t, m in zip(args.cells, tasks, ms)]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = [{"cell": spec, "task": task, "ms_per_step": m, "ratio": m / ms[0], "blocks_ms": [1e3 * x for x in t]}
                for spec, task, m, t in zip(args.cells, tasks, ms, times)]
        (args.out / "bench.json").write_text(json.dumps({"block": args.block, "threads": args.threads, "host": host,
                                                         "rows": rows}, indent=1) + "\n")
        (args.out / "bench.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
