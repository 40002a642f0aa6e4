"""One command per published table: writes its grid (a preset per paper), runs it resumably, prints ours beside theirs.

    neuralgrok reproduce neuralgrok-table1 --out results/table1 [--seeds 0,1,2] [--jobs 2]
    neuralgrok reproduce grokfast --out results/grokfast --executor slurm --partition gpu
    neuralgrok reproduce neuralgrok-table1 --out tiny --tasks add --seeds 0 --set p=11 max_steps=50

The grid is written to ``OUT/grid.toml`` and run by ``neuralgrok grid`` (any of its options,
``--executor slurm`` included, pass through), so a stopped reproduction continues where it
stopped and ``neuralgrok grid OUT/grid.toml --out OUT`` is the same command.  ``--set KEY=VALUE``
applies to every cell, over the preset (a small stand-in of the setup, say).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from .aggregate import PAPER_TABLE_1, task_label
from .errors import UserError


@dataclass(frozen=True)
class Table:
    """A published table: the preset it runs with, its tasks (grid name -> expression) and methods, and its numbers."""

    paper: str
    summary: str
    tasks: dict[str, str]
    methods: tuple[str, ...]
    max_steps: dict[str, int]  # per task
    published: dict[tuple[str, str], int | str]  # (task label, method) -> steps to 95%


_NG_TASKS = {"add": "a+b", "sub": "a-b", "mul": "a*b", "square_sub": "a*a-b", "mod7_five": "a*c+b*d-e"}
_NG_METHODS = ("standard", "grokfast_ma", "grokfast_ema", "neuralgrok")
_NG_CAPS = {**{t: 10_000 for t in _NG_TASKS}}

TABLES: dict[str, Table] = {
    "neuralgrok-table1": Table("neuralgrok-main", "NeuralGrok's Table 1 with its main-branch code's settings",
                               _NG_TASKS, _NG_METHODS, _NG_CAPS, PAPER_TABLE_1),
    "neuralgrok-table1-src": Table("neuralgrok-src", "NeuralGrok's Table 1 with its neuralgrad-branch code's settings",
                                   _NG_TASKS, _NG_METHODS, _NG_CAPS, PAPER_TABLE_1),
    "grokfast": Table("grokfast", "Grokfast's (a*b) mod 97 table: baseline, Grokfast-MA, Grokfast-EMA",
                      {"mul": "a*b"}, ("standard", "grokfast_ma", "grokfast_ema"), {"mul": 50_000},
                      {("(a*b) mod 97", "standard"): 39890, ("(a*b) mod 97", "grokfast_ma"): 790,
                       ("(a*b) mod 97", "grokfast_ema"): 910}),
}


def grid_for(table: Table, seeds: list[int], tasks: list[str], settings: dict[str, object]) -> dict:
    """The grid (as ``neuralgrok grid`` reads it) that runs ``tasks`` of ``table`` over ``seeds``, ``settings`` on top."""
    grid = {"grid": {"tasks": tasks, "methods": list(table.methods), "seeds": seeds},
            "defaults": {"paper": table.paper},
            "tasks": {t: {"task": table.tasks[t], "max_steps": table.max_steps[t]} for t in tasks}}
    if settings:
        grid["cells"] = {f"{t}/{m}": dict(settings) for t in tasks for m in table.methods}
    return grid


def to_toml(grid: dict) -> str:
    """A grid as TOML (tables of strings, numbers, booleans and lists of them)."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines = []

    def table(name: str, body: dict) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {value(v)}" for k, v in body.items() if not isinstance(v, dict))
        lines.append("")
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{json.dumps(k) if '/' in k else k}", v)
    for name, body in grid.items():
        table(name, body)
    return "\n".join(lines)


def parse_settings(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` words as options (numbers and booleans as such, the rest as strings)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"reproduce: --set takes KEY=VALUE, got {item!r}")
        try:
            out[key.replace("-", "_")] = json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = raw
    return out


def comparison(table: Table, out: Path, tasks: list[str]) -> str:
    """Our steps to 95% per task and method (median, then each seed) beside the published number, as Markdown."""
    lines = ["| task | method | ours: median (seeds) | published |", "|---|---|---|---|"]
    for t in tasks:
        for m in table.methods:
            steps, p = [], None
            for run in sorted((out / "runs").glob(f"{t}-{m}-s*")):
                if run.suffix or not (run / "summary.json").exists():
                    continue
                config = json.loads((run / "config.json").read_text())
                steps.append((config["seed"], json.loads((run / "summary.json").read_text()).get("steps_to_95")))
                p = config["p"]
            label = task_label(table.tasks[t], p) if steps else t
            reached = [s for _, s in steps if s is not None]
            median = f"{statistics.median(reached):,.0f}" if steps and len(reached) == len(steps) else "—"
            each = ", ".join(f"s{seed} {s:,}" if s is not None else f"s{seed} not reached" for seed, s in steps)
            published = table.published.get((label, m), "—")
            published = f"{published:,}" if isinstance(published, int) else published
            lines.append(f"| {label} | {m} | {median} ({each or 'no finished run'}) | {published} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .sweep import cli as grid
    ap = argparse.ArgumentParser(prog="neuralgrok reproduce", description=__doc__.splitlines()[0],
                                 epilog="Other options (--jobs, --executor, --dry-run, ...) go to neuralgrok grid.")
    ap.add_argument("table", choices=list(TABLES), help="; ".join(f"{k}: {v.summary}" for k, v in TABLES.items()))
    ap.add_argument("--out", type=Path, required=True, help="results folder (grid.toml, runs/, configs/, logs/)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--tasks", help="comma-separated task names of the table (default: all)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="run options for every cell")
    args, rest = ap.parse_known_args(argv)
    table = TABLES[args.table]
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UserError(f"reproduce: --seeds takes comma-separated integers, got {args.seeds!r}") from None
    tasks = args.tasks.split(",") if args.tasks else list(table.tasks)
    unknown = [t for t in tasks if t not in table.tasks]
    if unknown:
        raise UserError(f"reproduce: {args.table} has no task {', '.join(unknown)}; its tasks: {', '.join(table.tasks)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "grid.toml"
    path.write_text(f"# neuralgrok reproduce {args.table}: {table.summary}\n"
                    + to_toml(grid_for(table, seeds, tasks, parse_settings(args.set))))
    code = grid.main([str(path), "--out", str(args.out), *rest])
    if "--dry-run" not in rest and "--executor" not in rest:
        print(f"\n{table.summary}: steps to 95% test accuracy\n\n" + comparison(table, args.out, tasks))
    return code


if __name__ == "__main__":
    sys.exit(main())
