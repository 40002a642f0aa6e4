"""Training data on tensors: the task table as (inputs, answers) and a resumable batch stream."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .tasks import Splits, Task, Vocab, make_task, parse_ranges, split, table


@dataclass
class TaskData:
    """The whole table as tensors, with the row indices of every split."""

    task: Task
    x: torch.Tensor  # (N, T) token ids up to '='
    y: torch.Tensor  # (N,) answers
    splits: Splits
    vocab_size: int

    @property
    def seq_len(self) -> int:
        return self.x.shape[1]


def load_task_data(task: str, p: int, operand_range: str, layout: str, train_frac: float,
                   inner_outer_ratio: float, seed: int) -> TaskData:
    t = make_task(task, p, parse_ranges(operand_range))
    cols = table(t, layout).with_format("torch")[:]
    x, y = cols["input_ids"], cols["label"]
    return TaskData(t, x, y, split(len(y), train_frac, inner_outer_ratio, seed), len(Vocab(t.p)))


class BatchStream:
    """An endless stream of batches of row indices: epoch after epoch, each freshly shuffled.

    Batches are always full (they run on into the next epoch).  The stream's whole state
    is the number of indices consumed, so it restarts exactly from ``state_dict()``.
    Under data parallelism each process takes its own share of every global batch.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.indices, self.batch_size, self.seed = indices, batch_size, seed
        self.rank, self.world = rank, world
        self.consumed = 0
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, self.indices[torch.randperm(len(self.indices), generator=g)]
        return self._perm

    def next(self) -> torch.Tensor:
        """The next global batch's share for this process."""
        n, out, need = len(self.indices), [], self.batch_size
        while need:
            epoch, offset = divmod(self.consumed, n)
            take = min(need, n - offset)
            out.append(self._permutation(epoch)[offset:offset + take])
            self.consumed += take
            need -= take
        batch = torch.cat(out)
        return batch.tensor_split(self.world)[self.rank]

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
