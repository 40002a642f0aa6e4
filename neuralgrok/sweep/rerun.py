"""Re-runs committed runs from their own config.json and says whether the re-run's metrics match.

    neuralgrok rerun experiments/results/prenorm/paper/runs/mul-neuralgrok-s0 --threads 1

Each run is trained again into ``--work`` (a temporary folder unless given) with the given thread
count, then compared with the committed metrics line by line (every field but the clocks, ``elapsed_s`` and
``cpu_s``).
Prints one line per run: identical, or the first evaluation that differs and by how much, with
steps to 95% test accuracy of both. The thread count matters: torch's float sums depend on it, so
an exact match needs the count the run was made with (``threads`` in newer summaries; the
results READMEs say it for older runs), and the same code: when the metrics differ, the line names
the commit each run was trained at (``code`` in the summaries, recorded since 2026-11-25).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..clock import untimed
from ..runfolder import first_step_at, read_metrics
from .grid import thread_env


def first_difference(committed: list[dict], rerun: list[dict]) -> str | None:
    """None when the re-run agrees on every field the committed log has (clocks aside), else where they first part."""
    for a, b in zip(committed, rerun):
        fields = sorted(k for k, v in untimed(a).items() if v != b.get(k))  # fields added since: no difference
        if fields:
            key = next((k for k in ("train_loss", "test_acc") if k in fields), fields[0])
            return f"step {a['step']}: {key} {a.get(key)!r} vs {b.get(key)!r} ({len(fields)} fields differ)"
    if len(committed) != len(rerun):
        return f"same for {min(len(committed), len(rerun))} evaluations, then {len(committed)} vs {len(rerun)} lines"
    return None


def _commit(run: Path) -> str | None:
    """The commit a run was trained at, from its summary (None for runs older than the record)."""
    path = run / "summary.json"
    return json.loads(path.read_text()).get("code", {}).get("commit") if path.exists() else None


def rerun(run: Path, work: Path, threads: int) -> str:
    """Trains ``run`` again from its config.json into ``work``; returns the comparison line."""
    out = work / run.name
    cmd = [sys.executable, "-m", "neuralgrok", "train", "--quiet", "--config", str(run / "config.json"),
           "--out", str(out)]
    proc = subprocess.run(cmd, env={**os.environ, **thread_env(threads)}, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{run.name}: re-run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    committed, rerun_rows = read_metrics(run / "metrics.jsonl")[0], read_metrics(out / "metrics.jsonl")[0]
    reached = [first_step_at(rows, 0.95) or "not reached" for rows in (committed, rerun_rows)]
    steps = f"steps to 95%: {reached[0]} committed, {reached[1]} re-run"
    diff = first_difference(committed, rerun_rows)
    verdict = "identical metrics" if diff is None else f"first difference at {diff}"
    codes = [_commit(folder) for folder in (run, out)]
    code = "" if diff is None or codes[0] == codes[1] else f"; trained at commit {codes[0] or '(not recorded)'}, re-run at {codes[1]}"
    return f"{run.name} ({threads} thread{'s' if threads > 1 else ''}): {verdict}; {steps}{code}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neuralgrok rerun", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="committed run folders (config.json and metrics.jsonl)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the re-runs (default 1)")
    ap.add_argument("--work", type=Path, help="where the re-runs go (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"rerun: --threads must be >= 1, got {args.threads}")
    missing = [str(r) for r in args.runs if not (r / "config.json").is_file()]
    if missing:
        raise SystemExit(f"rerun: no config.json in {', '.join(missing)}")
    taken = [str(args.work / r.name) for r in args.runs if args.work and (args.work / r.name).exists()]
    if taken:
        raise SystemExit(f"rerun: {', '.join(taken)} already exists; choose another --work")
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for run in args.runs:
            line = rerun(run, work, args.threads)
            same &= "identical" in line
            print(line, flush=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
