"""The Accelerate edges of a run: its Accelerator, a sum over processes, and a line saying what the setup is."""
from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState


def make_accelerator(mixed_precision: str) -> Accelerator:
    """An Accelerator for this run, also when an earlier run in this process used another precision.

    Accelerate keeps one process-wide state and refuses a second precision; we drop that
    state (not the process group, which ``PartialState`` keeps) so that runs with different
    ``--mixed-precision`` can follow each other in one Python session.
    """
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state()
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)


def sum_over_processes(acc: Accelerator, t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the run's processes (itself on one process)."""
    return acc.reduce(t, "sum") if acc.num_processes > 1 else t


def describe(acc: Accelerator) -> str:
    """One line stating the distributed setup, so that a silent single-process fallback is visible."""
    return (f"neuralgrok: {acc.num_processes} process{'es' if acc.num_processes > 1 else ''} "
            f"({acc.distributed_type.value}), device {acc.device}, mixed precision {acc.mixed_precision}")
