"""The run's objects that follow from its config alone: the task's data and the base model.

Training, analysis, export and the reports all build them here, so that none of them needs the trainer.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import RunConfig
from .data import TaskData, load_task_data
from .errors import ConfigError
from .mlp import ARCH as MLP_ARCH, MLPConfig, OperandMLP, operand_positions
from .model import ModelConfig, Transformer


def task_data(cfg: RunConfig) -> TaskData:
    """The run's task table and splits."""
    return load_task_data(cfg.task, cfg.p, cfg.operand_range, cfg.layout, cfg.train_frac, cfg.inner_outer_ratio,
                          cfg.seed)


def build_model(cfg: RunConfig, data: TaskData, cls: type[Transformer] = Transformer) -> nn.Module:
    """The run's base model for ``data`` (a ``cls``, or an :class:`OperandMLP` for ``--arch mlp``), initialised from
    the current RNG state, ``--init-scale`` applied."""
    if cfg.arch == MLP_ARCH:
        try:
            inputs = operand_positions(data.x, data.task.p)
        except ValueError as e:
            raise ConfigError(f"--arch mlp on {data.task.label}: {e}") from None
        model = OperandMLP(MLPConfig(data.task.p, inputs, cfg.mlp_hidden))
    else:
        model = cls(ModelConfig(data.vocab_size, data.seq_len, cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.dropout,
                                cfg.arch, cfg.attention))
    if cfg.init_scale != 1.0:  # Omnigrok's initialisation scale: every weight multiplied by alpha
        with torch.no_grad():
            torch._foreach_mul_(list(model.parameters()), cfg.init_scale)
    return model


def coefficient_run(run: Path) -> tuple[dict, dict, RunConfig]:
    """A run folder's coefficient-form amplifier: (its tensors, its amplifier.json, the run's config); SystemExit
    with one line when the folder holds another kind. The tools that derive controls from a learnt set start here."""
    import json

    from safetensors.torch import load_file

    from .amplifier_files import AMPLIFIER_FILE, AMPLIFIER_META
    from .config import from_json
    info = json.loads((run / AMPLIFIER_META).read_text())
    if info.get("form") != "coefficients":
        raise SystemExit(f"{run} does not hold a coefficient-form amplifier (amp_form {info.get('form')!r})")
    return load_file(run / AMPLIFIER_FILE), info, from_json((run / "config.json").read_text())


def parameters_of(cfg: RunConfig) -> list[tuple[str, int]]:
    """(name, dimensions) of each trained parameter of the model ``cfg`` builds, in the gradients' order."""
    return [(n, p.dim()) for n, p in build_model(cfg, task_data(cfg)).named_parameters() if p.requires_grad]
