"""--flush-denormal: subnormal floats flush to zero during training (where the CPU supports it), and only then."""
import pytest
import torch

from neuralgrok.config import build
from neuralgrok.trainer import Trainer

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38
TINY = {"task": "a+b", "p": 11, "d_model": 32, "n_layers": 1, "batch_size": 64, "max_steps": 3, "eval_every": 1,
        "run_on": True}


def _kept_during_training(tmp_path, flush: bool) -> list[bool]:
    """Whether a float32 subnormal survives arithmetic inside the model's forward passes of a short run."""
    trainer = Trainer(build({**TINY, "flush_denormal": flush}), tmp_path / f"run{flush}", quiet=True)
    seen: list[bool] = []
    trainer.model.register_forward_hook(
        lambda *_: seen.append((torch.tensor([SUBNORMAL], dtype=torch.float32) * 1.0).item() != 0.0))
    trainer.run()
    return seen


def test_subnormals_flush_only_in_a_run_that_asks_and_the_process_is_left_as_found(tmp_path):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals (torch.set_flush_denormal returned False)")
    assert all(_kept_during_training(tmp_path, flush=False))
    flushed = _kept_during_training(tmp_path, flush=True)
    assert flushed and not any(flushed)
    assert (torch.tensor([SUBNORMAL], dtype=torch.float32) * 1.0).item() != 0.0  # off again after the run
    assert (tmp_path / "runTrue" / "summary.json").exists()
