"""Test helper run under torchrun: trains with the CLI's options, then saves this rank's final state for comparison.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_worker.py STATE_DIR RUN_DIR [train options]
"""
import sys
from pathlib import Path

import torch

from neuralgrok.cli import parser, resolve_train_args
from neuralgrok.trainer import Trainer

state_dir, run_dir, options = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
trainer = Trainer(resolve_train_args(parser().parse_args(["train", *options])), run_dir, quiet=True)
trainer.run()
acc = trainer.acc
kernels = sorted({m.kernel for m in acc.unwrap_model(trainer.model).modules() if hasattr(m, "kernel")})
state_dir.mkdir(parents=True, exist_ok=True)
torch.save({"world": acc.num_processes, "type": acc.distributed_type.value,
            "params": [p.detach().clone() for p in trainer.params], "kernels": kernels,
            "transform": trainer.transform.state_dict()},
           state_dir / f"rank{acc.process_index}.pt")
