"""One writer per run folder: concurrent launches, a killed holder, two grids over one folder, distributed runs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuralgrok.runlock import FolderLock, FolderLocked, holder_of

from conftest import TINY
from test_grid import GRID

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
LONG = [*TINY, "--run-on", "--max-steps", "100000", "--checkpoint-every", "20"]


def train(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "neuralgrok", "train", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def steps(out):
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def wait_until(condition, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline
        time.sleep(0.05)


def test_lock_names_holder_and_is_released(tmp_path):
    with FolderLock(tmp_path / "run"):
        with pytest.raises(FolderLocked, match=f"run is being written by another process .*pid {os.getpid()}"):
            FolderLock(tmp_path / "run").acquire()
        assert holder_of(tmp_path / "run").endswith(f"pid {os.getpid()}")
    assert holder_of(tmp_path / "run") is None
    with FolderLock(tmp_path / "run"):  # free again
        pass


def test_two_launches_at_once_one_trains_the_other_exits_2(tmp_path):
    out = tmp_path / "run"
    procs = [train(out, *LONG), train(out, *LONG)]
    wait_until(lambda: any(p.poll() is not None for p in procs))
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    _, err = loser.communicate()
    assert loser.returncode == 2
    assert err.count("\n") == 1 and f"{out} is being written by another process" in err and f"pid {winner.pid}" in err
    wait_until(lambda: (out / "metrics.jsonl").exists() and len(steps(out)) >= 3)
    winner.send_signal(signal.SIGTERM)  # checkpoints and stops
    winner.communicate()
    logged = steps(out)
    assert logged == sorted(set(logged)) and logged[:3] == [20, 40, 60]  # one writer: no step twice


def test_killed_holder_leaves_the_folder_free(tmp_path):
    out = tmp_path / "run"
    proc = train(out, *LONG)
    wait_until(lambda: list((out / "checkpoints").glob("step-*.json")) if (out / "checkpoints").exists() else False)
    proc.kill()  # SIGKILL: no clean-up of any kind
    proc.communicate()
    resumed = subprocess.run([sys.executable, "-m", "neuralgrok", "train", "--resume", str(out), "--max-steps", "60",
                              "--quiet"], capture_output=True, text=True, env=ENV, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert steps(out)[-1] == 60


def test_two_grids_over_one_folder_train_each_cell_once(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID.replace("seeds = [0]", "seeds = [0, 1]").replace("max_steps = 40", "max_steps = 60"))
    cmd = [sys.executable, "-m", "neuralgrok", "grid", str(grid_file), "--out", str(tmp_path / "out"), "--jobs", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for seed in range(2):
        name = f"add-standard-s{seed}"
        statuses = [line.split(None, 1)[1] for o in outputs for line in o.splitlines() if line.startswith(name)]
        assert sum(s.startswith("ok") for s in statuses) == 1, statuses  # trained by exactly one grid
        assert all(s.startswith(("ok", "done before", "held by another process")) for s in statuses)
        assert steps(tmp_path / "out" / "runs" / name) == [10, 20, 30, 40, 50, 60]


def test_distributed_run_on_a_locked_folder_fails_in_every_process(tmp_path):
    worker = Path(__file__).with_name("dist_worker.py")
    with FolderLock(tmp_path / "run"):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               str(worker), str(tmp_path / "state"), str(tmp_path / "run"), *TINY, "--max-steps", "20"],
                              capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode != 0
    assert "being written by another process" in proc.stderr
    assert "the main process could not lock" in proc.stderr  # the other rank says why it stops
    assert not (tmp_path / "run" / "config.json").exists() and not (tmp_path / "state").exists()


def test_a_launch_racing_the_holders_record_still_names_the_holder(tmp_path):
    """The holder writes its record just after taking the lock; a rival that comes in between (an empty file, or one
    still naming a dead earlier holder) waits for the record instead of reporting "holder unknown" or a dead pid."""
    import fcntl
    import socket
    import threading

    lock_file = tmp_path / ".lock"
    lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 1}))  # no such process
    fd = os.open(lock_file, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the holder has the lock, its record not yet written

    def write_record():
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode(), 0)
    timer = threading.Timer(0.2, write_record)
    timer.start()
    try:
        with pytest.raises(FolderLocked) as caught:
            FolderLock(tmp_path).acquire()
    finally:
        timer.join()
        os.close(fd)
    assert caught.value.holder == f"host {socket.gethostname()}, pid {os.getpid()}"
