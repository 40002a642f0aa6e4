"""Runs a grid of training runs (tasks × methods × seeds) from a TOML grid file, N at a time, resumable.

    neuralgrok grid experiments/grids/paper.toml --out experiments/results/paper --jobs 2
    neuralgrok grid GRID --out DIR --only task=mul,add method=neuralgrok seed=0 --dry-run
    neuralgrok grid experiments/grids/wd_sweep.toml --out DIR --only wd=0      (every method without weight decay)

(``python experiments/grid.py ...`` is the same command.)  ``--executor slurm`` submits the
cells as a Slurm job array instead, requeued from their checkpoints on preemption (cluster.py).

A grid file has ``[grid]`` (``tasks``, ``methods``, ``seeds``), ``[defaults]`` (run options
for every run), ``[tasks.NAME]`` and ``[methods.NAME]`` (options for that task or method;
a task may set its own ``seeds``; a method may sweep one option over a list of values,
``sweep = {weight_decay = [0, 1e-3, 1e-2]}``, one run per value) and ``[cells."TASK/METHOD"]``
(options for one pair).
Later tables override earlier ones in that order.  Each run is an ordinary
``neuralgrok train --config OUT/configs/NAME.yaml --out OUT/runs/NAME``, so any cell can
be re-run by hand with the command printed in ``OUT/commands.txt``.

A run whose folder already holds ``summary.json`` is skipped, so a long grid can be
stopped and started again across sessions; a cell that another process is running (a
second grid over the same folder, a job requeued early) is reported and skipped.  A folder left without a summary (the run
was killed) is continued from its last checkpoint when its ``config.json`` matches the
cell's options; one holding other settings (the grid file was edited since) is moved
aside to ``NAME.incomplete`` and the run starts again.  A stop signal to a local grid (SIGTERM, SIGINT,
SIGUSR2) reaches its running runs, which checkpoint and exit, and no further cell starts (stop.py).
Raising a cell's ``max_steps`` extends the
runs that stopped at the old cap: each continues from its newest checkpoint to the new cap
(exactly the run a fresh start would train, but for an evaluation at the old cap when it was
not a multiple of ``eval_every``), and one without checkpoints is trained again.  So a grid
can be run in two passes: ``--max-steps N`` caps every cell at N, and the same command without it
(``--only`` naming the cells worth it) takes those runs on to their own caps.  With
``--reuse DIR``, a cell with no run of its own takes a copy of a finished run in DIR that
trained exactly as the cell would (reuse.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import checkpoint
from . import reuse
from ..config import ConfigError, RunConfig, build, differing_keys, from_json
from ..errors import GridError, UserError
from ..runfolder import SET_ASIDE
from ..runlock import FolderLock, FolderLocked, holder_of


@dataclass
class Cell:
    name: str
    options: dict

    def command(self, out: Path, python: str = sys.executable) -> list[str]:
        return [python, "-m", "neuralgrok", "train", "--quiet",
                "--config", str(out / "configs" / f"{self.name}.yaml"), "--out", str(out / "runs" / self.name)]


def _variants(opts: dict) -> list[tuple[str, dict]]:
    """A method's option sets: one per value of its ``sweep`` option (``sweep = {weight_decay = [0, 1e-3]}``).

    Each variant is named by a suffix (``-wd0.001``) and labelled ``"LABEL wd=0.001"``, so that reports
    keep the values apart; it records ``family`` (LABEL) and ``swept`` (the option), so that they can plot
    steps against the values without reading labels.
    """
    sweep = opts.pop("sweep", None)
    if not sweep:
        return [("", opts)]
    if not isinstance(sweep, dict) or len(sweep) != 1 or not isinstance(next(iter(sweep.values())), list):
        raise GridError(f"sweep must name one option and a list of values, got {sweep!r}")
    (key, values), = sweep.items()
    short = SWEEP_NAMES.get(key, key)
    label = opts.get("label") or opts["method"]
    return [(f"-{short}{v:g}", {**opts, key: v, "label": f"{label} {short}={v:g}", "family": label, "swept": key})
            for v in values]


SWEEP_NAMES = {"weight_decay": "wd"}  # short names of swept options in cell names and labels
DEFAULT_WD = RunConfig.weight_decay  # a cell that sets no weight decay trains with this one


def expand(grid: dict, only: dict[str, set[str]] | None = None) -> list[Cell]:
    """The grid's runs in order (task, method, swept value, seed), each with its merged options."""
    spec = grid.get("grid", {})
    for key in ("tasks", "methods", "seeds"):
        if key not in spec:
            raise GridError(f"[grid] needs '{key}'")
    cells = []
    for task in spec["tasks"]:
        task_opts = dict(grid.get("tasks", {}).get(task, {}))
        seeds = task_opts.pop("seeds", spec["seeds"])
        for method in spec["methods"]:
            if only and (task not in only.get("task", {task}) or method not in only.get("method", {method})):
                continue
            opts = {**grid.get("defaults", {}), **task_opts, **grid.get("methods", {}).get(method, {}),
                    **grid.get("cells", {}).get(f"{task}/{method}", {})}
            opts.setdefault("method", method)
            opts.setdefault("task", task)  # a task without a table of its own is a paper task's name
            for suffix, variant in _variants(opts):
                if only and "wd" in only and float(variant.get("weight_decay", DEFAULT_WD)) not in only["wd"]:
                    continue
                for seed in seeds:
                    if only and str(seed) not in only.get("seed", {str(seed)}):
                        continue
                    cells.append(Cell(f"{task}-{method}{suffix}-s{seed}", {**variant, "seed": seed}))
    return cells


def capped(cells: list[Cell], max_steps: int | None) -> list[Cell]:
    """The cells with ``max_steps`` lowered to ``max_steps`` where theirs is higher (``--max-steps``: a first pass).

    A run that stops at the lowered cap is finished for this pass; the grid run without it continues that run
    from its newest checkpoint to the cell's own cap, as for any raised cap.
    """
    if max_steps is None:
        return cells
    return [Cell(c.name, {**c.options, "max_steps": min(max_steps, build(c.options).max_steps)}) for c in cells]


def continues(cell: Cell, run_dir: Path) -> bool:
    """True when ``run_dir`` holds an unfinished run with this cell's settings (training resumes it)."""
    try:
        saved = from_json((run_dir / "config.json").read_text())
        return not differing_keys(saved, build(cell.options))
    except (OSError, ValueError, ConfigError):
        return False


def run_cell(cell: Cell, out: Path, threads: int, on_start=None) -> tuple[Cell, str, float]:
    """Runs one cell unless its summary exists or another process holds it; returns (cell, status, seconds).

    The grid holds the cell's lock (``logs/NAME.lock``) while the cell runs, so two grids
    over one folder never run a cell twice at once; a run folder that some other process
    is writing (a ``neuralgrok train`` by hand) is left alone too.  ``on_start`` is called
    with the training process once it is started (a cluster job stops it on preemption).
    """
    try:
        with FolderLock(out / "logs", f"{cell.name}.lock"):
            return _run_cell(cell, out, threads, on_start)
    except FolderLocked as e:
        return cell, f"held by another process ({e.holder}), skipped", 0.0


def capped_below(cell: Cell, run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run with this cell's settings that stopped at a lower step cap than the cell's."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        cap = build(cell.options).max_steps
    except (OSError, ValueError, ConfigError):
        return False
    return summary.get("stopped") == "max_steps" and summary.get("steps", cap) < cap and continues(cell, run_dir)


def finished(cell: Cell, out: Path) -> bool:
    """True when the cell's run folder holds its finished run (one stopped at a cap below the cell's is not)."""
    run_dir = out / "runs" / cell.name
    return (run_dir / "summary.json").exists() and not capped_below(cell, run_dir)


def recorded_threads(run_dir: Path) -> int | None:
    """The thread count a finished run recorded in its summary; None when it has none."""
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("threads")
    except (OSError, ValueError):
        return None


def warn_of_other_thread_counts(out: Path, threads: int) -> None:
    """Says on stderr how many finished runs in ``out`` recorded another thread count than ``threads`` (a study's
    runs would mix float roundings); nothing when none did."""
    counts = Counter(n for summary in (out / "runs").glob("*/summary.json")
                     if (n := recorded_threads(summary.parent)) not in (None, threads))
    if counts:
        print(f"neuralgrok grid: warning: {sum(counts.values())} finished runs in {out} ran on "
              f"{', '.join(map(str, sorted(counts)))} threads, and this grid gives each run {threads} (--jobs, taskset)",
              file=sys.stderr)


def _run_cell(cell: Cell, out: Path, threads: int, on_start) -> tuple[Cell, str, float]:
    run_dir = out / "runs" / cell.name
    writer = holder_of(run_dir)
    if writer:
        return cell, f"held by another process ({writer}), skipped", 0.0
    extended = capped_below(cell, run_dir)  # the cap was raised: continue from the newest checkpoint
    if (run_dir / "summary.json").exists() and not extended:
        return cell, "done before", 0.0
    if extended and (ran_on := recorded_threads(run_dir)) not in (None, threads):
        return cell, (f"failed (its first pass ran on {ran_on} threads, this grid gives each run {threads}: the "
                      "extension would not be the bits of one run; pin the grid with taskset or change --jobs)"), 0.0
    resumed = run_dir.exists() and continues(cell, run_dir) and (not extended or bool(checkpoint.steps(run_dir)))
    if resumed and extended:
        (run_dir / "summary.json").unlink()  # the run is unfinished again until it reaches the new cap
    if run_dir.exists() and not resumed:
        stale = run_dir.with_name(cell.name + SET_ASIDE)
        shutil.rmtree(stale, ignore_errors=True)
        run_dir.rename(stale)
    write_config(cell, out)
    env = {**os.environ, **thread_env(threads)}
    start = time.perf_counter()
    with open(out / "logs" / f"{cell.name}.log", "a" if resumed else "w") as log:
        proc = subprocess.Popen(cell.command(out), stdout=log, stderr=subprocess.STDOUT, env=env)
        if on_start is not None:
            on_start(proc)
        proc.wait()
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode}, see logs/{cell.name}.log)"
    status += (f" (continued from its checkpoint{' to the raised cap' if extended else ''})" if resumed
               else " (its capped run had no checkpoint: trained again to the raised cap)" if extended else "")
    return cell, status, time.perf_counter() - start


def write_config(cell: Cell, out: Path) -> None:
    (out / "configs" / f"{cell.name}.yaml").write_text(yaml.safe_dump(cell.options, sort_keys=True))


def reuse_run(cell: Cell, out: Path, runs: list[reuse.Finished], threads: int) -> Path | None:
    """Copies in the finished run among ``runs`` that ``cell`` would repeat, if it has no run folder; its path or None."""
    run_dir = out / "runs" / cell.name
    try:
        with FolderLock(out / "logs", f"{cell.name}.lock"):
            if run_dir.exists():
                return None
            cfg = build(cell.options)
            found = reuse.match(cfg, runs, threads)
            if found is not None:
                write_config(cell, out)
                reuse.copy_in(found, cfg, run_dir, out / "logs" / f"{cell.name}.log")
                return found.path
    except (FolderLocked, ConfigError):
        pass  # held elsewhere, or options the run itself will report
    return None


TABLES = {"grid": ("tasks", "methods", "seeds"), "defaults": None, "tasks": None, "methods": None, "cells": None}


def load(path: Path) -> dict:
    """A grid file as a dict; GridError (one line) when it is unreadable, not TOML, or names unknown tables."""
    try:
        grid = tomllib.loads(path.read_text())
    except OSError as e:
        raise GridError(f"cannot read grid file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:  # its message gives the line and column
        raise GridError(f"{path} is not valid TOML: {e}") from None
    unknown = sorted(set(grid) - set(TABLES))
    if unknown:
        raise GridError(f"{path}: unknown table(s) {', '.join(unknown)}; a grid has {', '.join(TABLES)}")
    spec = grid.get("grid", {})
    unknown = sorted(set(spec) - set(TABLES["grid"]))
    if unknown:
        raise GridError(f"{path}: unknown key(s) in [grid]: {', '.join(unknown)}; it takes tasks, methods, seeds")
    for key in TABLES["grid"]:
        if not isinstance(spec.get(key, []), list):
            raise GridError(f"{path}: [grid] {key} must be a list, got {spec[key]!r}")
    for table, names in (("tasks", "tasks"), ("methods", "methods")):
        stray = sorted(set(grid.get(table, {})) - set(spec.get(names, [])))
        if stray:
            raise GridError(f"{path}: [{table}.{stray[0]}] names no entry of [grid] {names}")
    for pair in grid.get("cells", {}):
        task, _, method = pair.partition("/")
        if task not in spec.get("tasks", []) or method not in spec.get("methods", []):
            raise GridError(f'{path}: [cells."{pair}"] is not a TASK/METHOD pair of [grid]')
    return grid


def resolve_cells(cells: list[Cell], staged: set[str] = frozenset()) -> list[RunConfig]:
    """Every cell's resolved config, checked as a run would check it; GridError naming the first bad cell.

    An ``amplifier`` that names the run folder of a cell in ``staged`` (``.../runs/NAME``: the grid's own
    cells) may not exist yet: an earlier stage of the grid writes it.
    """
    from ..amplifier_files import amplifier_file
    from ..tasks import make_task, parse_ranges
    configs = []
    for cell in cells:
        try:
            cfg = build(cell.options)
            make_task(cfg.task, cfg.p, parse_ranges(cfg.operand_range))
            later = Path(cfg.amplifier).parent.name == "runs" and Path(cfg.amplifier).name in staged
            if cfg.amplifier and not later:
                amplifier_file(cfg.amplifier)
        except UserError as e:
            raise GridError(f"cell {cell.name}: {e}") from None
        configs.append(cfg)
    return configs


def described(cell: Cell, cfg: RunConfig) -> str:
    """The cell's resolved options that differ from the defaults, as one line."""
    default = RunConfig()
    changed = [f"{f}={getattr(cfg, f)!r}" for f in RunConfig.__dataclass_fields__
               if getattr(cfg, f) != getattr(default, f) and f != "label"]
    return f"    {cell.name}: " + " ".join(changed)


def parse_only(items: list[str]) -> dict[str, set]:
    """``--only`` words as {key: values}: names for task and method, strings for seed, floats for wd."""
    only = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in ("task", "method", "seed", "wd") or not values:
            raise GridError(f"--only takes task=A,B, method=A,B, seed=0,1 or wd=0,1e-3, got {item!r}")
        try:
            only[key] = {float(v) for v in values.split(",")} if key == "wd" else set(values.split(","))
        except ValueError:
            raise GridError(f"--only wd= takes numbers, got {values!r}") from None
    return only


def thread_env(threads: int) -> dict[str, str]:
    """Environment that sets each run's thread count; the count changes float rounding, so it is logged."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (taskset, cgroups) where the OS reports one."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
