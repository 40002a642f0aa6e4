"""W&B, MLflow and Trackio offline: each local store, read back, holds the config and every metrics line.

Each tracker writes inside tmp_path only (its environment variables and HOME set here) from a fresh
``python -m neuralgrok`` process, so it reads that environment at start (Trackio at import); the
store is then read back by another reader than the writer: W&B's transaction log through
``wandb leet inspect --json``, MLflow's sqlite database through ``MlflowClient``, Trackio's sqlite
database through sqlite3. The tests skip where a package is missing (``pip install -e '.[trackers]'``).
"""
import json
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from neuralgrok.cli import main

from conftest import TINY

RUN = [*TINY, "--run-on", "--max-steps", "60", "--eval-every", "20", "--method", "orthograd"]
NAMES = ("wandb", "mlflow", "trackio")


def _command(*args, cwd):
    """``args`` run in a new process with this test's environment; returns its standard output."""
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _wandb(tmp_path, setenv):
    """Offline mode, every W&B folder under tmp_path; read back from the run's ``.wandb`` log."""
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        setenv(var, str(tmp_path / var.lower()))
        (tmp_path / var.lower()).mkdir()
    setenv("WANDB_MODE", "offline")
    setenv("WANDB_SILENT", "true")

    def read(run_dir):
        (log,) = (tmp_path / "wandb_dir" / "wandb").glob("offline-run-*/run-*.wandb")
        out = _command("-m", "wandb", "leet", "inspect", str(log), "--json", cwd=tmp_path)
        records = [json.loads(line) for line in out.splitlines()]
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert run["project"] == run_dir.name
        config = {}
        for update in [run.get("config", {})] + [r["config"] for r in records if r["type"] == "config"]:
            config.update(update.get("update", {}))
        return config, [(h["item"]["_step"], h["item"]) for h in (r["history"] for r in records
                                                                  if r["type"] == "history")]
    return read


def _mlflow(tmp_path, setenv):
    """A sqlite tracking database in tmp_path, telemetry off; read back with MlflowClient."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    setenv("MLFLOW_TRACKING_URI", uri)
    setenv("MLFLOW_DISABLE_TELEMETRY", "true")

    def read(run_dir):
        from mlflow import MlflowClient
        client = MlflowClient(tracking_uri=uri)
        (run,) = client.search_runs([client.get_experiment_by_name("neuralgrok").experiment_id])
        assert run.info.run_name == run_dir.name
        points = [(m.step, m.key, m.value) for key in run.data.metrics
                  for m in client.get_metric_history(run.info.run_id, key)]
        steps = sorted({step for step, _, _ in points})
        by_step = [(s, {key: value for step, key, value in points if step == s}) for s in steps]
        assert len(points) == sum(len(values) for _, values in by_step)  # no step logged twice
        return run.data.params, by_step
    return read


def _trackio(tmp_path, setenv):
    """TRACKIO_DIR in tmp_path; read back from the project's sqlite database (project = run folder name)."""
    store = tmp_path / "trackio"
    setenv("TRACKIO_DIR", str(store))

    def read(run_dir):
        with closing(sqlite3.connect(store / f"{run_dir.name}.db")) as db:
            ((config,),) = db.execute("SELECT config FROM configs").fetchall()
            rows = db.execute("SELECT step, metrics FROM metrics ORDER BY id").fetchall()
        return json.loads(config), [(step, json.loads(values)) for step, values in rows]
    return read


STORES = {"wandb": _wandb, "mlflow": _mlflow, "trackio": _trackio}


@pytest.fixture(params=NAMES)
def store(request, tmp_path, monkeypatch):
    """(tracker name, read(run_dir) -> (config, [(step, values)])), its environment confined to tmp_path."""
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "HF_HOME"):  # anything else lands here too
        monkeypatch.setenv(var, str(tmp_path / "home" / var.lower()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    read = STORES[request.param](tmp_path, monkeypatch.setenv)  # before any import of the package
    pytest.importorskip(request.param)
    return request.param, read


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny orthograd run trained without a tracker, replayed by each tracker's test."""
    out = tmp_path_factory.mktemp("finished") / "replayed"
    assert main(["train", "--out", str(out), *RUN]) == 0
    return out


def _check(name, run_dir, config, history):
    """The store holds config.json's every value and each metrics line's every number at its step."""
    expected = json.loads((run_dir / "config.json").read_text())
    for key, value in expected.items():
        value = ",".join(map(str, value)) if isinstance(value, list) else value  # amp_hidden as "128,128"
        assert config[key] == (str(value) if name == "mlflow" else value), key  # MLflow params are text
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [step for step, _ in history] == [r["step"] for r in rows]
    for row, (_, stored) in zip(rows, history):
        numbers = {k: v for k, v in row.items() if k != "step" and type(v) in (int, float)}
        assert {"test_acc", "train_loss", "weight_norm", "age"} <= set(numbers)
        assert {k: v for k, v in stored.items() if not k.startswith("_")} == numbers, row["step"]


def test_live_logging(store, tmp_path):
    name, read = store
    out = tmp_path / "live"
    _command("-m", "neuralgrok", "train", "--out", str(out), *RUN, "--log-with", name, cwd=tmp_path)
    _check(name, out, *read(out))


def test_replay_of_a_finished_run(store, tmp_path, request):
    name, read = store
    run = request.getfixturevalue("finished_run")  # after the skip: no training where no package is
    out = _command("-m", "neuralgrok", "log", str(run), "--to", name, cwd=tmp_path)
    assert f"3 metrics lines sent to {name}" in out
    _check(name, run, *read(run))


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_tracker_package_is_one_clean_line(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail, installed or not
    (tmp_path / "config.json").write_text('{"task": "a+b"}')
    (tmp_path / "metrics.jsonl").write_text('{"step": 20, "test_acc": 0.5}\n')
    assert main(["log", str(tmp_path), "--to", name]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"needs its package (pip install 'neuralgrok[{name}]')" in err
