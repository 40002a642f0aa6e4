"""The run folder: atomic JSON files, the append-only metrics log, and the run summary."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Writes ``data`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def code_version(root: Path | None = None) -> dict[str, str | None]:
    """The code a run is trained with: the package version and, in a git checkout, its commit.

    The commit gets ``+changes`` when the package's or the baselines' files differ from it. Float
    results change with the code as with the thread count, so an exact re-run needs this version.
    ``root``: the checkout to read (default: the one this package sits in).
    """
    from importlib.metadata import PackageNotFoundError, version
    try:
        package = version("neuralgrok")
    except PackageNotFoundError:
        package = None
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    if not (root / ".git").exists():  # installed from a wheel: a checkout around it is not this code's
        return {"version": package, "commit": None}

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--", "neuralgrok", "baselines").stdout.strip()
    except OSError:  # no git here
        return {"version": package, "commit": None}
    commit = head.stdout.strip() if head.returncode == 0 else None
    return {"version": package, "commit": commit and commit + ("+changes" if changed else "")}


def host_description() -> dict[str, str | None]:
    """The machine a run trains on: CPU model, the instruction set torch's CPU kernels use (with the CPU's bf16
    extensions), torch's version and the GPU, if any. Floats round differently from one host to another, so a
    bit-identical re-run needs the same one; a resume on another host warns (``checkpoint.warn_of_setup_change``)."""
    import torch
    cpu, flags = platform.processor() or None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:  # not Linux: platform's word for the CPU
        pass
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu, "isa": "+".join([torch.backends.cpu.get_cpu_capability(), *bf16]),
            "torch": str(torch.__version__), "gpu": gpu}  # a plain str: checkpoints load weights-only


def task_slug(task: str) -> str:
    """A task's formula as a folder-name fragment: ``a*b-c`` → ``axbmc``."""
    return re.sub(r"[^\w]+", "", task.replace("*", "x").replace("/", "div").replace("+", "p").replace("-", "m"))


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


SET_ASIDE = ".incomplete"  # a grid moves a half-done run whose settings no longer match its cell to NAME.incomplete


def grid_runs(folder: str | Path) -> list[Path]:
    """A results folder's run folders (``folder/runs/NAME`` with a config.json) by name, set-aside ones left out."""
    runs = (c.parent for c in Path(folder, "runs").glob("*/config.json"))
    return sorted(r for r in runs if not r.name.endswith(SET_ASIDE))


COMPRESSED = ".xz"  # a finished run's committed metrics: metrics.jsonl.xz (neuralgrok compact, compact.py)


class MetricsFileError(UserError):
    """A compressed metrics file that cannot be read; its message is one line naming the file."""


def metrics_file(path: str | Path) -> Path:
    """The file that holds the metrics log ``path`` (``RUN/metrics.jsonl``): itself, or its compressed copy.

    The plain log wins when both exist (a run resumed from a compressed log writes the plain one
    first), so that a kill between two steps of a compaction or a resume never loses a line.
    """
    path = Path(path)
    if path.suffix == COMPRESSED or path.exists():
        return path
    packed = path.with_name(path.name + COMPRESSED)
    return packed if packed.exists() else path


def metrics_text(path: str | Path) -> str:
    """The text of a metrics log, decompressed if it is a ``.xz`` file; MetricsFileError if that is damaged."""
    path = Path(path)
    if path.suffix != COMPRESSED:
        return path.read_text(errors="replace")
    import lzma
    try:
        return lzma.decompress(path.read_bytes()).decode(errors="replace")
    except (lzma.LZMAError, EOFError) as e:
        raise MetricsFileError(f"{path}: damaged compressed metrics, not a readable xz file ({e})") from None


def read_metrics(path: str | Path) -> tuple[list[dict], int]:
    """The metrics lines that parse as JSON objects, sorted by step, and how many lines were skipped.

    ``path`` is a run's ``metrics.jsonl``; when only its compressed copy ``metrics.jsonl.xz``
    exists (a finished, committed run), that is read. A truncated last line (a kill mid-write)
    or an unreadable line is skipped with a warning naming it; nothing is raised for a damaged
    log, but a damaged ``.xz`` file raises MetricsFileError.
    """
    path = metrics_file(path)
    if not path.exists():
        return [], 0
    rows, skipped = [], 0
    lines = metrics_text(path).split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError("not a metrics object")
        except ValueError:
            skipped += 1
            where = "truncated last line" if i >= len(lines) - 1 else "unreadable line"
            warnings.warn(f"{path}: skipped {where} {i}: {line[:60]!r}", stacklevel=2)
            continue
        rows.append(row)
    rows.sort(key=lambda r: r["step"])
    return rows, skipped


class MetricsLog:
    """Appends one JSON line per evaluation, each flushed to disk before the next step."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_to(self, last_step: int) -> list[dict]:
        """Keeps only the complete lines with step <= last_step (used when resuming).

        A compacted run's ``metrics.jsonl.xz`` is decompressed into the plain log, which the run
        appends to, and then removed.
        """
        rows = [r for r in read_metrics(self.path)[0] if r["step"] <= last_step]
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self.path.with_name(self.path.name + COMPRESSED).unlink(missing_ok=True)
        return rows


def first_step_at(rows: Iterable[dict], threshold: float, key: str = "test_acc") -> int | None:
    """The first evaluated step whose ``key`` is at or above ``threshold``, or None."""
    return next((r["step"] for r in rows if r[key] >= threshold), None)


def summarize(rows: list[dict], steps: int, wall_seconds: float, stopped: str) -> dict:
    """The run's summary.json from its metrics lines."""
    accs = [r["test_acc"] for r in rows]
    return {
        "steps_to_95": first_step_at(rows, 0.95),
        "steps_to_99": first_step_at(rows, 0.99),
        "best_test_acc": max(accs) if accs else None,
        "final_test_acc": accs[-1] if accs else None,
        "steps": steps,
        "wall_seconds": round(wall_seconds, 3),
        "seconds_per_step": round(wall_seconds / steps, 6) if steps else None,
        "stopped": stopped,
    }
