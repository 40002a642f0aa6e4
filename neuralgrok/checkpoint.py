"""Checkpoints in a run folder: atomic, checksummed, the last K kept, damaged ones detected and skipped.

Each checkpoint is ``checkpoints/step-NNNNNNNN.pt`` (one ``torch.save`` of the trainer's
whole state) plus ``step-NNNNNNNN.json`` (its step and SHA-256), both written under a
temporary name and renamed.  The manifest is written last, so a checkpoint without a
manifest, or whose bytes do not match it, was never completed or was damaged
afterwards; :func:`load_latest` then falls back to the previous one and says so.

Accelerate's ``save_state`` writes several files into a folder with no checksum and no
atomic switch; a single checksummed file per checkpoint gives the guarantees we need,
so the trainer collects every object's ``state_dict`` itself.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from pathlib import Path

import torch

from .runfolder import host_description, write_atomic

FOLDER = "checkpoints"
_NAME = re.compile(r"step-(\d{8})\.pt")


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was expected."""


def _paths(folder: Path, step: int) -> tuple[Path, Path]:
    stem = folder / FOLDER / f"step-{step:08d}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def save(folder: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Writes the checkpoint for ``step`` and deletes all but the newest ``keep``."""
    folder = Path(folder)
    (folder / FOLDER).mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    pt, manifest = _paths(folder, step)
    write_atomic(pt, data)
    write_atomic(manifest, json.dumps({"step": step, "sha256": hashlib.sha256(data).hexdigest(),
                                       "bytes": len(data)}) + "\n")
    for old in steps(folder)[:-keep]:
        for p in _paths(folder, old):
            p.unlink(missing_ok=True)
    for leftover in (folder / FOLDER).glob(".step-*.tmp"):  # from a write that a kill interrupted
        leftover.unlink(missing_ok=True)
    return pt


def steps(folder: str | Path) -> list[int]:
    """Steps of the checkpoint files present, oldest first (complete or not)."""
    d = Path(folder) / FOLDER
    return sorted(int(m.group(1)) for p in d.glob("step-*.pt") if (m := _NAME.fullmatch(p.name))) if d.is_dir() else []


def _check(folder: Path, step: int) -> bytes:
    pt, manifest = _paths(folder, step)
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"{pt.name} has no readable manifest (the write did not finish)") from None
    data = pt.read_bytes()
    if len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{pt.name} does not match its checksum (truncated or damaged)")
    return data


def load_latest(folder: str | Path, warn=lambda msg: print(msg, file=sys.stderr)) -> tuple[int, dict] | None:
    """(step, state) of the newest intact checkpoint, or None if there is none; damaged ones are reported."""
    folder = Path(folder)
    for step in reversed(steps(folder)):
        try:
            data = _check(folder, step)
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except CheckpointError as e:
            warn(f"neuralgrok: skipping checkpoint: {e}; trying an older one")
            continue
        except Exception as e:  # noqa: BLE001 - checksum matched but unpickling failed: still damaged
            warn(f"neuralgrok: skipping checkpoint step-{step:08d}.pt: cannot be read ({str(e).splitlines()[0]})")
            continue
        return step, state
    return None


def setup() -> dict:
    """What a checkpoint records of the process that wrote it, besides the training state: its thread count and
    host, both of which change float rounding."""
    return {"threads": torch.get_num_threads(), "host": host_description()}


def warn_of_setup_change(state: dict, folder: Path, warn=lambda msg: print(msg, file=sys.stderr)) -> None:
    """Says so when a checkpoint was written on another thread count or host than this process has: the float
    rounding differs, so the continuation is not the bits of one run (older checkpoints recorded neither)."""
    written, now = state.get("threads"), torch.get_num_threads()
    if written not in (None, now):
        warn(f"neuralgrok: {folder}'s checkpoint was written on {written} threads and this process has {now}: the "
             f"continuation is not the bits one run would give (set OMP_NUM_THREADS={written} to keep them)")
    written, now = state.get("host"), host_description()
    if written not in (None, now):
        other = ", ".join(f"{k} {written.get(k)} (here {v})" for k, v in now.items() if written.get(k) != v)
        warn(f"neuralgrok: {folder}'s checkpoint was written on another host ({other}): the continuation is a "
             f"genuine run but not the bits one host would give")


def upgrade(state: dict) -> dict:
    """A checkpoint's state in today's layout: older ones kept the held-out and unrolled-step streams under their own
    keys (``outer_stream``, ``meta_stream``) and NeuralGrok's gate in the loop's counters."""
    if "streams" in state:
        return state
    state = dict(state)
    state["streams"] = {name: state.pop(key) for name, key in (("held_out", "outer_stream"), ("train", "meta_stream"))
                        if key in state}
    started = state["counters"].get("meta_started")
    if started is not None and isinstance(state.get("transform"), dict) and "mlp" in state["transform"]:
        state["transform"] = {**state["transform"], "meta_started": started}
    return state
