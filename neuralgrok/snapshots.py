"""Model snapshots for analysis: which steps to keep (``--snapshot-steps``) and writing them as safetensors."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import ConfigError
from .runfolder import write_atomic

SNAPSHOT_DIR = "snapshots"
PER_DECADE = 8  # ``log``: about eight steps per factor of ten


def snapshot_schedule(spec: str, max_steps: int) -> set[int]:
    """The steps (1..max_steps) a spec names: ``""`` none, ``"100,200"``, ``"every:N"`` or ``"log"`` (log-spaced)."""
    spec = spec.strip()
    if not spec:
        return set()
    if spec == "log":
        return {s for s in (round(10 ** (i / PER_DECADE)) for i in range(PER_DECADE * 12)) if s <= max_steps}
    if spec.startswith("every:"):
        n = spec.removeprefix("every:")
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--snapshot-steps every:N needs an integer N >= 1, got {spec!r}")
        return set(range(int(n), max_steps + 1, int(n)))
    try:
        steps = {int(s) for s in spec.split(",") if s.strip()}
    except ValueError:
        raise ConfigError(f"--snapshot-steps takes steps '100,200', 'every:N' or 'log', got {spec!r}") from None
    if any(s < 1 for s in steps):
        raise ConfigError(f"--snapshot-steps: steps must be >= 1, got {spec!r}")
    return {s for s in steps if s <= max_steps}


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"step-{step:08d}.safetensors"


def save_snapshot(run_dir: str | Path, step: int, model: torch.nn.Module) -> Path:
    """Writes the model's weights (only) at ``step``, atomically; returns the file."""
    from safetensors.torch import save
    path = snapshot_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, save(tensors, metadata={"step": str(step)}))
    return path


def load_snapshot(path: str | Path) -> dict[str, torch.Tensor]:
    """A snapshot's weights by parameter name (load into a model of the run's config with ``load_state_dict``)."""
    from safetensors.torch import load
    return load(Path(path).read_bytes())
