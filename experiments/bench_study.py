"""Study benchmark: a small grid trained with whole-split evaluations and with the default bounded ones, side by side.

    python experiments/bench_study.py                                   # the demo grid, 2 threads
    python experiments/bench_study.py --grid experiments/grids/demo.toml --out experiments/results/bench/study

Each cell of the grid is trained twice in this process, one setting after the other:
"whole" (``--eval-exact-from 0 --train-eval-rows 0``: both splits in full at every
evaluation, as before) and "bounded" (the defaults). The table gives each run's
wall-clock, the share of it spent evaluating (``summary.json``'s ``eval_seconds``), and its
steps to 95%, which must agree: the bounded evaluation changes no training step and no
accuracy at or above 95%.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import tomllib
from pathlib import Path

import torch

from neuralgrok.config import build
from neuralgrok.sweep.grid import expand
from neuralgrok.trainer import train

SETTINGS = {"whole": {"eval_exact_from": 0.0, "train_eval_rows": 0}, "bounded": {}}


def run_pair(options: dict, work: Path) -> dict[str, dict]:
    """Trains one cell under each evaluation setting; returns {setting: summary}."""
    return {name: train(build({**options, **extra}), work / name, quiet=True) for name, extra in SETTINGS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=Path, default=Path(__file__).parent / "grids" / "demo.toml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cells = expand(tomllib.loads(args.grid.read_text()))
    rows, lines = [], ["| run | setting | wall s | eval s | eval share | steps | steps to 95% |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        for cell in cells:
            summaries = run_pair(cell.options, Path(tmp) / cell.name)
            for name, s in summaries.items():
                rows.append({"run": cell.name, "setting": name, **{k: s[k] for k in (
                    "wall_seconds", "eval_seconds", "steps", "steps_to_95")}})
                lines.append(f"| {cell.name} | {name} | {s['wall_seconds']:.1f} | {s['eval_seconds']:.1f} | "
                             f"{s['eval_seconds'] / s['wall_seconds']:.1%} | {s['steps']} | {s['steps_to_95']} |")
                print(lines[-1], flush=True)
    total = {n: {k: sum(r[k] for r in rows if r["setting"] == n) for k in ("wall_seconds", "eval_seconds")}
             for n in SETTINGS}
    same = all(a["steps_to_95"] == b["steps_to_95"] for a, b in zip(rows[::2], rows[1::2]))
    lines += ["", f"grid wall-clock: whole {total['whole']['wall_seconds']:.1f} s "
                  f"(evaluation {total['whole']['eval_seconds'] / total['whole']['wall_seconds']:.1%}), bounded "
                  f"{total['bounded']['wall_seconds']:.1f} s (evaluation "
                  f"{total['bounded']['eval_seconds'] / total['bounded']['wall_seconds']:.1%}); ratio "
                  f"{total['whole']['wall_seconds'] / total['bounded']['wall_seconds']:.2f}x; steps to 95% "
                  f"{'identical' if same else 'DIFFER'} in every cell",
              f"machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads"]
    print("\n".join(lines[-2:]))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps({"rows": rows, "total": total, "threads": args.threads,
                                                         "command": " ".join(["python", *sys.argv])}, indent=2))
        (args.out / "bench.md").write_text("\n".join(lines) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
