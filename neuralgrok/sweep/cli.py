"""`neuralgrok grid`: expands a grid file, checks every cell, then runs the cells here or submits them to a cluster.

The grid file's format, the run folders and resuming are described in grid.py.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..config import ConfigError
from ..errors import UserError
from ..portable import relative_words
from . import cluster, reuse
from .grid import (capped, described, expand, load, parse_only, resolve_cells, reuse_run, run_cell, thread_env,
                   usable_cores, warn_of_other_thread_counts)
from .stop import GridStop


def main(argv: list[str] | None = None) -> int:
    from .grid import __doc__ as grid_doc
    ap = argparse.ArgumentParser(prog="neuralgrok grid", description=grid_doc.splitlines()[0],
                                 epilog="\n".join(grid_doc.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", type=Path, help="grid file (TOML)")
    ap.add_argument("--out", type=Path, required=True, help="results folder (runs/, configs/, logs/ inside)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (each gets usable cores/jobs threads)")
    ap.add_argument("--only", nargs="*", default=[], help="restrict: task=NAME[,NAME] method=NAME[,NAME] seed=N[,N] "
                                                          "wd=V[,V] (cells whose weight decay is one of these)")
    ap.add_argument("--reuse", nargs="+", type=Path, default=[], metavar="DIR",
                    help="copy in finished runs from these results folders that trained exactly as a cell would "
                         "(settings equal up to label, cap and checkpointing; same threads; stopped before the cap)")
    ap.add_argument("--max-steps", type=int, metavar="N",
                    help="cap every cell at N steps this time (or its own cap, if lower): a first pass; the grid run "
                         "again without it extends the runs that stopped at N (grid.py)")
    ap.add_argument("--dry-run", action="store_true", help="check every cell, list its command and the options it "
                                                         "resolves to (those that differ from the defaults), run nothing")
    cluster.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"grid: --jobs must be >= 1, got {args.jobs}")
    if args.max_steps is not None and args.max_steps < 1:
        raise SystemExit(f"grid: --max-steps must be >= 1, got {args.max_steps}")
    try:
        spec = load(args.grid)
        cells = capped(expand(spec, parse_only(args.only)), args.max_steps)
        configs = resolve_cells(cells, {c.name for c in expand(spec)})  # checked before anything runs or is written
    except UserError as e:
        print(f"neuralgrok grid: error: {e}", file=sys.stderr)
        return 2
    threads = max(1, usable_cores() // args.jobs) if args.executor == "local" else args.cpus
    env_words = [f"{k}={v}" for k, v in thread_env(threads).items()]
    commands = [shlex.join(env_words + relative_words(c.command(args.out, "python"))) for c in cells]
    if args.dry_run:
        for command, cell, cfg in zip(commands, cells, configs):
            print(command)
            print(described(cell, cfg))
        return 0
    for sub in ("runs", "configs", "logs"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    with open(args.out / "commands.txt", "a") as f:
        given = sys.argv[1:] if argv is None else argv  # recorded as run from here, by any clone (portable.py)
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(['neuralgrok', 'grid', *relative_words(given)])}\n")
        f.write("\n".join(commands) + "\n")
    if args.reuse:
        try:
            runs = reuse.finished_runs(args.reuse)
        except ConfigError as e:
            raise SystemExit(f"grid: {e}") from None
        reused = {}
        for cell in cells:
            if (found := reuse_run(cell, args.out, runs, threads)) is not None:
                reused[cell.name] = found
                print(f"{cell.name:40s} reused {found}", flush=True)
        cells = [c for c in cells if c.name not in reused]
    if args.executor != "local":
        return 1 if cluster.submit(cells, args.out, args) else 0
    warn_of_other_thread_counts(args.out, threads)
    return run_local(cells, args.out, args.jobs, threads)


def run_local(cells: list, out: Path, jobs: int, threads: int) -> int:
    """Runs the cells here, ``jobs`` at a time, printing a line per cell; the exit status (GridStop for signals)."""
    failed = 0
    with GridStop() as stop, ThreadPoolExecutor(jobs) as pool:
        def job(cell):
            if stop.stopping:
                return cell, "not started (the grid was stopped)", 0.0
            return run_cell(cell, out, threads, on_start=stop.started)

        for future in as_completed([pool.submit(job, c) for c in cells]):
            cell, status, seconds = future.result()
            if stop.stopping and status.startswith(f"failed (exit {128 + stop.signum},"):
                status = "stopped at a checkpoint"
            failed += status.startswith("failed")
            print(f"{cell.name:40s} {status} {seconds:8.1f} s", flush=True)
    if stop.stopping:
        print(stop.message(), file=sys.stderr)
        return 128 + stop.signum
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
