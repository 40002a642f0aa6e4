"""Trackers: TensorBoard event files read back hold the config and every metrics line, live or replayed."""
import json

import pytest

from neuralgrok.cli import main

from conftest import TINY

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

RUN = [*TINY, "--run-on", "--max-steps", "60", "--eval-every", "20"]


def _scalars(run_dir):
    """{tag: [(step, value)]} from the run's TensorBoard event files."""
    (events,) = [p for p in (run_dir / "tensorboard").rglob("events.out.tfevents.*") if p.parent.name == run_dir.name]
    acc = event_accumulator.EventAccumulator(str(events.parent))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _check(run_dir):
    scalars, rows = _scalars(run_dir), _metrics(run_dir)
    for key in ("test_acc", "train_loss", "weight_norm", "age"):
        assert scalars[key] == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in rows], key
    hparams = list((run_dir / "tensorboard" / run_dir.name).rglob("hparams.yml"))
    assert hparams and "method: orthograd" in hparams[0].read_text()  # the whole config, once


def test_live_tensorboard_logging(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *RUN, "--method", "orthograd", "--log-with", "tensorboard"]) == 0
    _check(out)


def test_replay_of_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *RUN, "--method", "orthograd"]) == 0
    assert not (out / "tensorboard").exists()  # --log-with none (the default) writes nothing
    assert main(["log", str(out), "--to", "tensorboard"]) == 0
    assert "3 metrics lines sent to tensorboard" in capsys.readouterr().out
    _check(out)
    assert main(["log", str(out), "--to", "tensorboard"]) == 2  # never twice into the same folder
    assert "exists already" in capsys.readouterr().err
