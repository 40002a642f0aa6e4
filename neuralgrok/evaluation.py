"""Evaluation of a model on rows of its task's table: every row once, across processes, bounded when it may stop early."""
from __future__ import annotations

import math

import torch

from .losses import cross_entropy
from .model import answer_logits

EVAL_CHUNK = 4096  # rows per evaluation pass
BOUNDED_CHUNK = 512  # rows per pass of a bounded test evaluation, which may stop between passes


def min_correct(n: int, accuracy: float) -> int:
    """The fewest correct answers out of ``n`` for which ``correct / n >= accuracy``, as the summary compares."""
    c = max(0, min(n, math.ceil(accuracy * n)))
    while c > 0 and (c - 1) / n >= accuracy:
        c -= 1
    while c < n and c / n < accuracy:
        c += 1
    return c


@torch.inference_mode()
def evaluate(model, acc, x_all: torch.Tensor, y_all: torch.Tensor, rows: torch.Tensor, loss: str,
             exact_from: float = 0.0) -> tuple[float, float, int]:
    """Mean loss, accuracy and the number of rows they cover, over ``rows`` of (x_all, y_all) in their order.

    Every row is evaluated once whatever the process count (``acc``: the run's Accelerator). With
    ``exact_from`` > 0 the evaluation stops after the first chunk whose errors prove that the accuracy
    over all ``rows`` is below ``exact_from``, and returns the loss and accuracy of the rows seen (an
    estimate; ``rows`` is in random order). An accuracy at or above ``exact_from`` is therefore always exact.
    """
    model.eval()
    n, world, rank = len(rows), acc.num_processes, acc.process_index
    allowed = n - min_correct(n, exact_from) if exact_from > 0 else n  # more errors than this: below
    loss_sum = torch.zeros((), device=acc.device)
    correct = torch.zeros((), device=acc.device)
    seen = 0
    for chunk in rows.split(BOUNDED_CHUNK if exact_from > 0 else EVAL_CHUNK):
        share = chunk.tensor_split(world)[rank]
        x, y = x_all[share].to(acc.device), y_all[share].to(acc.device)
        logits = answer_logits(model, x).float()
        part = torch.stack([cross_entropy(logits, y, loss, reduction="sum"), (logits.argmax(-1) == y).sum().float()])
        part = acc.reduce(part, "sum") if world > 1 else part
        loss_sum += part[0]
        correct += part[1]
        seen += len(chunk)
        if exact_from > 0 and seen - correct.item() > allowed:
            break
    return loss_sum.item() / seen, correct.item() / seen, seen
