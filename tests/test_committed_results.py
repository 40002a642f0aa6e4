"""Committed results stay small: each finished run folder within its budget, its metrics compressed (`neuralgrok compact`)."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "experiments/results/"
# The largest committed run folder is 136 KiB: a NeuralGrok run of 8,000 steps (its 66 KiB amplifier
# and 70 KiB of compressed metrics). Twice that leaves room for longer runs, and keeps a study of
# 100 runs under 25 MiB; a folder over it carries something that belongs elsewhere (a checkpoint,
# snapshots) or metrics left uncompressed. README.md, "Committed results", states the same budget.
RUN_BUDGET = 256 * 1024


def _committed() -> dict[str, int]:
    """The committed files under experiments/results that exist here, with their sizes in bytes."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--", RESULTS], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of committed files")
    files = [f for f in out.stdout.decode().split("\0") if f and (ROOT / f).is_file()]
    return {f: (ROOT / f).stat().st_size for f in files}


def _runs(files: dict[str, int]) -> dict[str, int]:
    """Each committed finished run folder (one with summary.json), with the bytes of the files inside it."""
    runs = {str(Path(f).parent): 0 for f in files if f.endswith("/summary.json")}
    for f, size in files.items():
        owner = next((str(p) for p in Path(f).parents if str(p) in runs), None)
        if owner is not None:
            runs[owner] += size
    return runs


def test_there_are_committed_runs_to_check():
    assert len(_runs(_committed())) > 100  # the checks below would pass on nothing


def test_each_committed_run_folder_is_within_its_budget():
    over = {run: size for run, size in _runs(_committed()).items() if size > RUN_BUDGET}
    assert not over, (f"run folders over {RUN_BUDGET // 1024} KiB (run `neuralgrok compact` on them; leave checkpoints "
                      f"and snapshots out): " + ", ".join(f"{r} ({s // 1024} KiB)" for r, s in sorted(over.items())))


def test_no_committed_finished_run_keeps_an_uncompressed_metrics_log():
    files = _committed()
    plain = sorted(f"{run}/metrics.jsonl" for run in _runs(files) if f"{run}/metrics.jsonl" in files)
    assert not plain, "compress with `neuralgrok compact DIR` before committing: " + ", ".join(plain)
