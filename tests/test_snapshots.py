"""Model snapshots: the schedule a spec names, the weights written at those steps, and resumed runs writing the same."""
import pytest
import torch

from neuralgrok import checkpoint
from neuralgrok.cli import main
from neuralgrok.config import ConfigError
from neuralgrok.snapshots import load_snapshot, snapshot_path, snapshot_schedule

from conftest import TINY

RUN = [*TINY, "--run-on", "--eval-every", "20", "--snapshot-steps", "every:20"]


def test_schedules():
    assert snapshot_schedule("", 100) == set()
    assert snapshot_schedule("every:30", 100) == {30, 60, 90}
    assert snapshot_schedule("5, 50,500", 100) == {5, 50}
    log = sorted(snapshot_schedule("log", 10_000))
    assert log[:4] == [1, 2, 3, 4] and log[-1] == 10_000 and len([s for s in log if 1000 < s <= 10_000]) == 8
    for bad in ("every:0", "every:x", "1,two", "-5"):
        with pytest.raises(ConfigError, match="--snapshot-steps"):
            snapshot_schedule(bad, 100)


def test_snapshots_hold_the_weights_at_their_steps(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *RUN, "--max-steps", "60"]) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "step-00000020.safetensors", "step-00000040.safetensors", "step-00000060.safetensors"]
    step, state = checkpoint.load_latest(out)  # the final checkpoint: the model after step 60
    assert step == 60
    snap = load_snapshot(snapshot_path(out, 60))
    assert snap.keys() == state["model"].keys()
    assert all(torch.equal(snap[k], state["model"][k]) for k in snap)
    earlier = load_snapshot(snapshot_path(out, 20))
    assert not all(torch.equal(earlier[k], snap[k]) for k in snap)  # the model moved between snapshots


def test_a_resumed_run_writes_the_same_snapshots(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "whole"), *RUN, "--max-steps", "60"]) == 0
    assert main(["train", "--out", str(tmp_path / "split"), *RUN, "--max-steps", "40"]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--max-steps", "60", "--quiet"]) == 0
    for step in (20, 40, 60):
        assert snapshot_path(tmp_path / "split", step).read_bytes() == snapshot_path(tmp_path / "whole", step).read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "bad"), *TINY, "--snapshot-steps", "every:zero"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--snapshot-steps" in err
