"""Experiment trackers through Accelerate's tracker classes: live while training, or replayed from metrics.jsonl.

``metrics.jsonl`` stays the source of truth; a tracker receives the run's whole config once,
then each metrics line at its step. TensorBoard writes under ``RUN/tensorboard/``; W&B, MLflow
and Trackio use their own settings, which also keep them offline: W&B with ``WANDB_MODE=offline``
writes ``$WANDB_DIR/wandb/offline-run-*/`` (default: the working directory), MLflow its
``MLFLOW_TRACKING_URI`` (default ``sqlite:///mlflow.db`` in the working directory), Trackio
``$TRACKIO_DIR/PROJECT.db`` (default ``$HF_HOME/trackio``); W&B and Trackio name the project,
MLflow the run, after the run folder. ``Trackers`` sets up Accelerate's state itself, as
``neuralgrok log`` has no Accelerator and W&B's and Trackio's classes log through Accelerate's
logger, which needs that state.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
LOG_WITH = ("none", *TRACKERS, "all")
TENSORBOARD_DIR = "tensorboard"


def tracker_names(log_with: str) -> list[str]:
    """The trackers a ``--log-with`` value names."""
    return [] if log_with == "none" else list(TRACKERS) if log_with == "all" else [log_with]


def flat_config(config: dict[str, Any]) -> dict[str, bool | str | float | int | None]:
    """The config as the scalar values trackers store (a tuple such as amp_hidden becomes "128,128")."""
    return {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in config.items()}


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """A metrics line's numbers, per-tensor dictionaries flattened to ``key/name``; nulls left out."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}/{name}": float(x) for name, x in v.items() if isinstance(x, (int, float))})
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
            out[k] = float(v)
    return out


class Trackers:
    """The trackers of one run: ``log(row)`` each metrics line, ``close()`` at the end."""

    def __init__(self, names: Iterable[str], run_dir: str | Path, config: dict[str, Any]):
        from accelerate import PartialState
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        PartialState()  # (the trainer's Accelerator's, or a new one for a replay)
        run_dir = Path(run_dir)
        self.trackers = []
        for name in names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            try:
                if name == "tensorboard":
                    tracker = cls(run_dir.name, run_dir / TENSORBOARD_DIR)
                elif name == "mlflow":
                    tracker = cls(experiment_name="neuralgrok", run_name=run_dir.name)
                else:
                    tracker = cls(run_dir.name)
                tracker.start()  # Accelerate's trackers open their writer or run here
            except ImportError as e:
                raise ConfigError(f"--log-with {name} needs its package (pip install 'neuralgrok[{name}]'): "
                                  f"{e}") from None
            tracker.store_init_configuration(flat_config(config))
            self.trackers.append(tracker)

    def log(self, row: dict[str, Any]) -> None:
        values = scalars(row)
        for tracker in self.trackers:
            tracker.log(values, step=row["step"])

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def replay(run_dir: str | Path, to: str) -> int:
    """Sends a finished (or stopped) run's config and metrics lines to the trackers ``to`` names; returns the count."""
    from .runfolder import read_metrics
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"not a run folder (no config.json): {run_dir}")
    if "tensorboard" in tracker_names(to) and (run_dir / TENSORBOARD_DIR).exists():
        raise ConfigError(f"{run_dir / TENSORBOARD_DIR} exists already (logged live or replayed); remove it first")
    rows = read_metrics(run_dir / "metrics.jsonl")[0]
    trackers = Trackers(tracker_names(to), run_dir, json.loads((run_dir / "config.json").read_text()))
    try:
        for row in rows:
            trackers.log(row)
    finally:
        trackers.close()
    return len(rows)
