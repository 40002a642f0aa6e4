"""Finished runs that another grid already trained exactly as a cell would: found, then copied in.

    neuralgrok grid experiments/grids/wd_sweep.toml --out experiments/results/wd_sweep --reuse experiments/results/paper

A finished run is a cell's when training it again would repeat it step for step:
- their settings differ at most in the label, the step cap and checkpointing (which never change training);
- it ran as one process with the thread count the grid gives the cell (both change float rounding);
- its cap equals the cell's, or it stopped on its target before the cell's cap (and saves no snapshots,
  whose schedule follows the cap), so the cell would have stopped at the same step with the same metrics.
Like any finished cell, it was trained by the code of its day (``neuralgrok rerun`` checks a run against
today's).  The copy holds everything but the checkpoints; its ``config.json`` takes the cell's label, cap and checkpointing, and
``reused_from.json`` names the source and what differed.  The cell's log says it was reused.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, RunConfig, differing_keys, from_json, to_json
from ..portable import relative
from ..runfolder import write_json

MAY_DIFFER = ("label", "family", "swept", "max_steps", "checkpoint_every", "keep_checkpoints")


@dataclass
class Finished:
    path: Path
    cfg: RunConfig
    summary: dict


def finished_runs(folders: list[Path]) -> list[Finished]:
    """The finished runs (config and summary readable) under each results folder's ``runs/``."""
    found = []
    for folder in folders:
        runs = folder / "runs"
        if not runs.is_dir():
            raise ConfigError(f"--reuse {folder}: no runs/ folder there (give a grid's --out folder)")
        for run in sorted(p for p in runs.iterdir() if p.is_dir()):
            try:
                found.append(Finished(run, from_json((run / "config.json").read_text()),
                                      json.loads((run / "summary.json").read_text())))
            except (OSError, ValueError, ConfigError):
                continue  # unfinished or unreadable: not a run to reuse
    return found


def match(cfg: RunConfig, runs: list[Finished], threads: int) -> Finished | None:
    """The first run that ``cfg`` would repeat step for step, or None."""
    for run in runs:
        s = run.summary
        if differing_keys(run.cfg, cfg, ignore=MAY_DIFFER) or s.get("processes") != 1 or s.get("threads") != threads:
            continue
        if run.cfg.max_steps == cfg.max_steps or (
                s.get("stopped") == "target" and s["steps"] < cfg.max_steps and not cfg.snapshot_steps):
            return run
    return None


def copy_in(run: Finished, cfg: RunConfig, run_dir: Path, log: Path) -> None:
    """Copies ``run`` to ``run_dir`` (atomically: a kill leaves no half copy under that name) as ``cfg``'s run."""
    part = run_dir.with_name(f".{run_dir.name}.reusing")
    shutil.rmtree(part, ignore_errors=True)
    shutil.copytree(run.path, part, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    own = {f: getattr(cfg, f) for f in MAY_DIFFER}  # what a run of the cell would have written
    (part / "config.json").write_text(to_json(dataclasses.replace(run.cfg, **own)))
    differed = {f: [getattr(run.cfg, f), getattr(cfg, f)] for f in MAY_DIFFER if getattr(run.cfg, f) != getattr(cfg, f)}
    source = relative(run.path)  # as the grid was given it, or relative to here: the record works from any clone
    write_json(part / "reused_from.json", {"run": source, "differed (source, this cell)": differed})
    part.rename(run_dir)
    log.write_text(f"reused {source}: the same training (differed only in {', '.join(differed) or 'nothing'})\n")
