"""A run's clocks: CPU seconds count the process's work and not its waits, both clocks carry across a resume, a
checkpoint older than the CPU record resumes with the CPU clock unknown, and comparisons leave both out."""
import json
import time

import pytest

from neuralgrok import checkpoint
from neuralgrok.cli import main
from neuralgrok.clock import CLOCK_FIELDS, RunClock, untimed
from neuralgrok.sweep.rerun import first_difference

from conftest import TINY


def _spin(seconds: float) -> None:
    """Uses ``seconds`` of this process's CPU time (measured by time.process_time, the oracle)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_cpu_seconds_count_work_and_not_waiting_wall_seconds_count_both():
    clock = RunClock(10.0, 5.0)
    _spin(0.05)
    time.sleep(0.2)  # waiting, as a paused or crowded-out process does
    assert clock.wall() >= 10.25
    assert 5.05 <= clock.cpu() < 5.05 + 0.1
    fields = clock.fields()
    assert set(fields) == set(CLOCK_FIELDS) and fields["cpu_s"] == pytest.approx(clock.cpu(), abs=2e-3)


def test_an_unknown_cpu_clock_is_left_out_of_the_metrics_line():
    clock = RunClock(3.0, None)
    assert clock.cpu() is None and set(clock.fields()) == {"elapsed_s"} and clock.fields()["elapsed_s"] >= 3.0


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_run_logs_cpu_seconds_that_continue_across_a_resume(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--max-steps", "40", "--run-on", "--checkpoint-every", "20"]) == 0
    first = _rows(out)
    cpu = [r["cpu_s"] for r in first]
    assert len(cpu) == 2 and 0 < cpu[0] <= cpu[1]
    step, state = checkpoint.load_latest(out)
    assert step == 40 and state["cpu"] >= cpu[-1] and state["elapsed"] >= first[-1]["elapsed_s"]
    assert main(["train", "--resume", str(out), "--max-steps", "80", "--quiet"]) == 0
    rows = _rows(out)
    assert rows[:2] == first and [r["step"] for r in rows] == [20, 40, 60, 80]
    assert state["cpu"] < rows[2]["cpu_s"] <= rows[3]["cpu_s"]  # counted on from the checkpoint, not from zero
    assert json.loads((out / "summary.json").read_text())["cpu_seconds"] >= rows[3]["cpu_s"]


def test_a_checkpoint_older_than_the_cpu_record_resumes_without_it(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--max-steps", "20", "--run-on"]) == 0
    step, state = checkpoint.load_latest(out)
    del state["cpu"]  # as checkpoints written before it was recorded
    checkpoint.save(out, step, state)
    assert main(["train", "--resume", str(out), "--max-steps", "40", "--quiet"]) == 0
    rows = _rows(out)
    assert "cpu_s" in rows[0] and "cpu_s" not in rows[1] and rows[1]["elapsed_s"] > state["elapsed"]
    assert json.loads((out / "summary.json").read_text())["cpu_seconds"] is None


def test_comparisons_of_runs_leave_the_clocks_out():
    a = {"step": 10, "test_acc": 0.5, "elapsed_s": 1.0, "cpu_s": 0.9}
    b = {"step": 10, "test_acc": 0.5, "elapsed_s": 2.0, "cpu_s": 1.7}
    assert untimed(a) == untimed(b) == {"step": 10, "test_acc": 0.5}
    assert first_difference([a], [b]) is None
    assert first_difference([a], [{**b, "test_acc": 0.6}]).startswith("step 10: test_acc")
