"""Grid cells as submitit jobs: a Slurm job array, or submitit's local executor, each job requeued on preemption.

    neuralgrok grid GRID --out DIR --executor slurm --partition gpu --time-min 120 --jobs 16
    neuralgrok grid GRID --out DIR --executor submitit-local --jobs 2 --wait   (the same path on this machine)

Each job runs one cell exactly as the local grid does (``grid.run_cell``: the cell's lock,
skip if finished, continue from its checkpoint if its settings match).  When the scheduler
warns of a time limit or preemption (SIGUSR2, submitit's signal), ``CellJob.checkpoint``
stops the training process with SIGTERM, which writes a checkpoint, and submitit requeues
the job; the requeued job continues the run from that checkpoint.  Needs ``pip install
'neuralgrok[cluster]'`` (submitit).  The cell locks are ``flock`` locks under ``OUT/logs``:
put ``--out`` on a file system that supports them across nodes (most NFS v4 and Lustre
mounts do) or never run two grids over one folder at once.
"""
from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from .grid import Cell, finished, run_cell

EXECUTORS = ("local", "slurm", "submitit-local")  # local: the grid's own process pool (grid.py)


class CellJob:
    """One cell as a submitit callable: runs it; on a scheduler's warning, checkpoints the run and requeues."""

    def __init__(self, cell: Cell, out: Path, threads: int):
        self.cell, self.out, self.threads = cell, out, threads
        self._pid: int | None = None  # the training process while it runs

    def __call__(self) -> str:
        cell, status, seconds = run_cell(self.cell, self.out, self.threads, on_start=self._started)
        print(f"{cell.name}: {status} ({seconds:.1f} s)", flush=True)
        if status.startswith("failed"):
            raise RuntimeError(f"{cell.name}: {status}")  # the job shows as failed in the scheduler too
        return status

    def _started(self, proc) -> None:
        self._pid = proc.pid

    def checkpoint(self, *args, **kwargs):
        """Called by submitit in the job's signal handler: stop the run at a checkpoint, then resubmit this cell.

        The process is waited for with ``os.waitpid`` rather than ``Popen.wait``: the handler
        interrupts the main thread inside ``Popen.wait``, which holds a lock a second wait would need.
        """
        pid, self._pid = self._pid, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass  # it had ended already
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The grid's executor options."""
    ap.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local: runs here, --jobs at a time; slurm: one job per cell as a Slurm job array "
                         "(at most --jobs at once), requeued on preemption; submitit-local: the slurm path "
                         "run on this machine through submitit's local executor")
    ap.add_argument("--wait", action="store_true", help="slurm/submitit-local: wait for the jobs and print each "
                                                        "cell's status (the local executor always waits)")
    ap.add_argument("--partition", help="slurm partition")
    ap.add_argument("--time-min", type=int, default=180, help="time limit of one job in minutes; a run that needs "
                                                                "more is requeued from its checkpoint (default 180)")
    ap.add_argument("--cpus", type=int, default=1, help="CPUs per job, also each run's thread count (default 1)")
    ap.add_argument("--gpus", type=int, default=0, help="GPUs per job (default 0)")
    ap.add_argument("--mem-gb", type=float, default=4.0, help="memory per job in GB (default 4)")
    ap.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                    help="any other sbatch option, e.g. account=myproj or qos=low (repeatable)")


def _submitit():
    try:
        import submitit
    except ImportError:
        raise SystemExit("grid: --executor slurm and submitit-local need submitit: "
                         "pip install 'neuralgrok[cluster]'") from None
    return submitit


def make_executor(args: argparse.Namespace, folder: Path):
    """An AutoExecutor for ``args.executor`` with the job's resources; logs under ``folder``."""
    extra = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"grid: --slurm-option takes KEY=VALUE, got {item!r}")
        extra[key] = value
    for name in ("time_min", "cpus", "mem_gb"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"grid: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    cluster = "slurm" if args.executor == "slurm" else "local"
    try:
        executor = _submitit().AutoExecutor(folder=folder, cluster=cluster)
    except RuntimeError as e:  # submitit's "Could not detect srun": not on a Slurm cluster
        raise SystemExit(f"grid: --executor {args.executor}: {e}") from None
    resources = {"gpus_per_node": args.gpus} if args.gpus else {}  # some clusters reject a GPU option of 0
    executor.update_parameters(name="neuralgrok", timeout_min=args.time_min, cpus_per_task=args.cpus,
                               mem_gb=args.mem_gb, slurm_partition=args.partition, slurm_array_parallelism=args.jobs,
                               slurm_additional_parameters=extra, **resources)
    return executor


def submit(cells: list[Cell], out: Path, args: argparse.Namespace) -> int:
    """Submits the cells whose runs are not finished (``grid.finished``); with ``--wait`` (always for
    submitit-local) reports each one.

    Slurm gets one job array whose parallelism is ``--jobs``; submitit's local executor has no
    queue, so at most ``--jobs`` cells are submitted at a time.  Returns the number of failed cells.
    """
    todo = [c for c in cells if not finished(c, out)]
    for cell in cells:
        if cell not in todo:
            print(f"{cell.name:40s} done before", flush=True)
    if not todo:
        return 0
    executor = make_executor(args, out / "logs" / "submitit")
    jobs, pending = {}, list(todo)
    if args.executor == "slurm":
        with executor.batch():
            submitted = [executor.submit(CellJob(c, out, args.cpus)) for c in todo]
        jobs, pending = {job: cell for job, cell in zip(submitted, todo)}, []
        for job, cell in jobs.items():
            print(f"{cell.name:40s} submitted as job {job.job_id}", flush=True)
        print(f"logs: {out / 'logs' / 'submitit'}; once the jobs have ended, this command again submits the cells "
              f"that did not finish", flush=True)
        if not args.wait:
            return 0
    failed = 0
    while pending or jobs:
        while pending and len(jobs) < args.jobs:
            cell = pending.pop(0)
            jobs[executor.submit(CellJob(cell, out, args.cpus))] = cell
        for job in [j for j in jobs if j.done()]:
            cell = jobs.pop(job)
            try:
                status = job.result()
            except Exception as e:  # the job's error, as submitit reports it (a traceback, then log paths)
                status = f"failed in job {job.job_id}: {_reason(cell, str(e))}"
                failed += 1
            print(f"{cell.name:40s} {status} (job {job.job_id})", flush=True)
        time.sleep(0.5)
    return failed


def _reason(cell: Cell, error: str) -> str:
    """The cell's own failure line from a job's error report, else the report's last line."""
    marker = f"{cell.name}: "
    ours = [line.split(marker, 1)[1] for line in error.splitlines() if marker + "failed" in line]
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return ours[-1] if ours else (lines[-1] if lines else "no error text")
