"""Grid cells as submitit jobs (the slurm executor's path, through submitit's local executor): results and requeue."""
import json
import os
import signal
import threading
import time

import pytest

from neuralgrok.clock import untimed
from neuralgrok.sweep import cli as grid

pytest.importorskip("submitit")

from test_grid import GRID  # noqa: E402  (the tiny grid: (a+b) mod 23, 40 steps)

THREADS = max(1, grid.usable_cores() // 2)


def _grid(tmp_path, text, *args):
    (tmp_path / "g.toml").write_text(text)
    return grid.main([str(tmp_path / "g.toml"), *args])


def _rows(run):
    return [untimed(json.loads(line)) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_submitit_jobs_give_the_local_grids_runs(tmp_path, capsys):
    two_seeds = GRID.replace("seeds = [0]", "seeds = [0, 1]")
    assert _grid(tmp_path, two_seeds, "--out", str(tmp_path / "local"), "--jobs", "2") == 0
    assert _grid(tmp_path, two_seeds, "--out", str(tmp_path / "jobs"), "--jobs", "2", "--cpus", str(THREADS),
                 "--executor", "submitit-local") == 0
    out = capsys.readouterr().out
    for name in ("add-standard-s0", "add-standard-s1"):
        assert f"{name}" in out and "ok" in out
        assert _rows(tmp_path / "jobs" / "runs" / name) == _rows(tmp_path / "local" / "runs" / name)
    assert list((tmp_path / "jobs" / "logs" / "submitit").glob("*_log.out"))  # submitit's own logs
    # a second submission submits nothing: every cell has its summary
    assert _grid(tmp_path, two_seeds, "--out", str(tmp_path / "jobs"), "--executor", "submitit-local") == 0
    assert capsys.readouterr().out.count("done before") == 2


def test_a_failing_cell_fails_its_job_and_the_grid(tmp_path, capsys):
    # valid on paper (an amplifier that an earlier stage of the grid would write), missing when the job runs
    bad = GRID.replace('task = "a+b"', 'task = "a+b"\nmethod = "neuralgrok"\namplifier = "nowhere/runs/add-standard-s0"')
    assert _grid(tmp_path, bad, "--out", str(tmp_path / "jobs"), "--executor", "submitit-local") == 1
    out = capsys.readouterr().out
    assert "add-standard-s0" in out and "failed in job" in out and "exit 2" in out


def _parent(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds the job's process through /proc")
def test_preempted_job_checkpoints_is_requeued_and_continues_exactly(tmp_path, capsys):
    long = GRID.replace("max_steps = 40", "max_steps = 600").replace("checkpoint_every = 10", "checkpoint_every = 100000")
    assert _grid(tmp_path, long, "--out", str(tmp_path / "local"), "--jobs", "2") == 0
    capsys.readouterr()
    run = tmp_path / "jobs" / "runs" / "add-standard-s0"
    codes = []
    grid_thread = threading.Thread(target=lambda: codes.append(_grid(
        tmp_path, long, "--out", str(tmp_path / "jobs"), "--jobs", "2", "--cpus", str(THREADS),
        "--executor", "submitit-local")))
    grid_thread.start()
    deadline = time.time() + 120
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and len(_rows(run)) >= 5):
        time.sleep(0.05)
    trainer = json.loads((run / ".lock").read_text())["pid"]
    os.kill(_parent(trainer), signal.SIGUSR2)  # what Slurm (through submitit) sends before a time limit
    grid_thread.join(timeout=300)
    assert codes == [0]
    job_log = "".join(p.read_text() for p in (tmp_path / "jobs" / "logs" / "submitit").glob("*_log.*"))
    assert "this job is preempted" in job_log and "Requeued job" in job_log
    assert "add-standard-s0: ok (continued from its checkpoint)" in job_log
    assert "stopped by SIGTERM" in (tmp_path / "jobs" / "logs" / "add-standard-s0.log").read_text()
    # every step logged once, and the same numbers as the run that was never interrupted
    assert _rows(run) == _rows(tmp_path / "local" / "runs" / "add-standard-s0")


def test_slurm_submits_one_array_with_the_requested_resources(tmp_path, monkeypatch, capsys):
    """No cluster here: stand-ins for srun and sbatch record the batch script submitit writes."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_ / "sbatch").write_text(f'#!/bin/sh\nfor last; do :; done\ncp "$last" {tmp_path}/script.sh\n'
                                 'echo "Submitted batch job 4242"\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    three_seeds = GRID.replace("seeds = [0]", "seeds = [0, 1, 2]")
    assert _grid(tmp_path, three_seeds, "--out", str(tmp_path / "out"), "--executor", "slurm", "--jobs", "2",
                 "--partition", "cpu", "--time-min", "60", "--cpus", "2", "--slurm-option", "account=proj") == 0
    out = capsys.readouterr().out
    assert all(f"add-standard-s{i}" in out and f"job 4242_{i}" in out for i in range(3))
    script = (tmp_path / "script.sh").read_text()
    for line in ("--array=0-2%2", "--partition=cpu", "--time=60", "--cpus-per-task=2", "--account=proj",
                 "--signal=USR2@"):
        assert f"#SBATCH {line}" in script
    assert "gpus" not in script and "submitit.core._submit" in script
    # once every cell has its summary, nothing is submitted again
    (tmp_path / "script.sh").unlink()
    for i in range(3):
        (tmp_path / "out" / "runs" / f"add-standard-s{i}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / "runs" / f"add-standard-s{i}" / "summary.json").write_text("{}")
    assert _grid(tmp_path, three_seeds, "--out", str(tmp_path / "out"), "--executor", "slurm", "--wait") == 0
    assert capsys.readouterr().out.count("done before") == 3 and not (tmp_path / "script.sh").exists()


def test_slurm_executor_off_a_cluster_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    with pytest.raises(SystemExit, match="--executor slurm: .*srun"):
        _grid(tmp_path, GRID, "--out", str(tmp_path / "out"), "--executor", "slurm")
