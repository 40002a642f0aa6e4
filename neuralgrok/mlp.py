"""An MLP on one-hot operands, the model of Prieto et al.'s (2025) Figure 1: ReLU hidden layers, no biases.

The equation's operand tokens (the positions whose token varies over the table: a and b in
``a + b =``) are each one-hot over the p residues and concatenated, so (a + b) mod 113 has
226 inputs, as in the reference code. The layers are ``nn.Linear(bias=False)`` with their
default initialisation; the output is one logit per residue.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCH = "mlp"


@dataclass
class MLPConfig:
    n_values: int  # p: each operand is one-hot over the residues, and there is one logit per residue
    inputs: tuple[int, ...]  # token positions read, in order
    hidden: tuple[int, ...] = (200, 200)


def operand_positions(x: torch.Tensor, n_values: int) -> tuple[int, ...]:
    """The positions of the token table ``x`` (N, T) whose token varies across rows: the operands.

    Raises ValueError if none varies or one holds a token that is not a residue (< ``n_values``).
    """
    varying = (x != x[:1]).any(0).nonzero().flatten().tolist()
    if not varying:
        raise ValueError("no token position varies across the table: the MLP has no input")
    if (x[:, varying] >= n_values).any():
        raise ValueError("an operand position holds a non-residue token: the MLP reads residues only")
    return tuple(varying)


class OperandMLP(nn.Module):
    """One-hot operands (B, n·p) -> ReLU layers ``hidden`` -> p answer logits, all without bias.

    Applying the first layer to a concatenation of one-hots sums one column per operand, so
    the forward gathers those columns instead of building the (B, n·p) input: the same
    function and gradients (tested against the explicit one-hot product).
    """

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        if not cfg.inputs or not cfg.hidden or min(cfg.hidden) < 1:
            raise ValueError(f"an MLP needs inputs and hidden sizes >= 1, got {cfg.inputs} and {cfg.hidden}")
        self.cfg = cfg
        sizes = [len(cfg.inputs) * cfg.n_values, *cfg.hidden, cfg.n_values]
        self.layers = nn.ModuleList(nn.Linear(m, n, bias=False) for m, n in zip(sizes, sizes[1:]))
        self.register_buffer("inputs", torch.tensor(cfg.inputs), persistent=False)
        self.register_buffer("offsets", torch.arange(len(cfg.inputs)) * cfg.n_values, persistent=False)

    def forward(self, idx: torch.Tensor, answer_only: bool = False) -> torch.Tensor:
        """Token ids (B, T) -> answer logits (B, p). An MLP predicts the answer only: pass ``answer_only=True``."""
        if not answer_only:
            raise ValueError("the MLP predicts the answer alone: call it with answer_only=True (or answer_logits)")
        columns = idx[:, self.inputs] + self.offsets  # (B, n): the one-hot input's nonzero columns
        x = F.embedding(columns, self.layers[0].weight.t()).sum(1)
        for layer in self.layers[1:]:
            x = layer(F.relu(x))
        return x
