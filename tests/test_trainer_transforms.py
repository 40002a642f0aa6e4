"""What the trainer hands a transform: float32 gradients in bf16 runs, its live weights (⊥Grad against its formula)."""
import pytest
import torch

from neuralgrok.config import build
from neuralgrok.trainer import Trainer

TINY = {"task": "a+b", "p": 23, "train_frac": 0.7, "d_model": 32, "n_layers": 1, "batch_size": 64,
        "optimizer": "adamw", "weight_decay": 1.0, "lr": 1e-2, "eval_every": 5, "max_steps": 12, "run_on": True}


def _spy(trainer):
    """Records, at every step, the gradients a transform receives, the weights then, and what it returns."""
    calls, update = [], trainer.transform.update

    def spy(grads, ctx):
        out = update(grads, ctx)
        calls.append(([g.clone() for g in grads], [p.detach().clone() for p in ctx.params], out.grads))
        return out
    trainer.transform.update = spy
    return calls


def test_bf16_transforms_see_float32_gradients_and_neuralgrok_takes_its_meta_steps(tmp_path):
    cfg = build({**TINY, "method": "neuralgrok", "amp_hidden": "8,8", "meta_every": 2, "mixed_precision": "bf16"})
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    calls = _spy(trainer)
    trainer.run()
    assert len(calls) == 12 and all(g.dtype == torch.float32 for grads, _, _ in calls for g in grads)
    assert all(g.dtype == torch.float32 for _, _, out in calls for g in out)
    assert trainer.transform.meta_steps == 6  # steps 0, 2, ..., 10


def test_orthograd_through_the_trainer_is_its_formula_on_the_live_weights(tmp_path):
    trainer = Trainer(build({**TINY, "method": "orthograd"}), tmp_path / "run", quiet=True)
    calls = _spy(trainer)
    trainer.run()
    assert len(calls) == 12
    for grads, weights, out in calls[::4]:
        for g, w, o in zip(grads, weights, out):  # g⊥ = g − (w·g / w·w) w, at the norm of g (float64)
            g64, w64 = g.double().reshape(-1), w.double().reshape(-1)
            perp = g64 - (w64 @ g64) / (w64 @ w64) * w64 if w64.norm() > 0 else g64
            expected = perp * g64.norm() / perp.norm() if perp.norm() > 0 else perp
            torch.testing.assert_close(o.double().reshape(-1), expected, rtol=1e-5, atol=1e-12)
            if w64.norm() > 0 and g64.norm() > 0:
                assert abs(float(o.double().reshape(-1) @ w64)) <= 1e-5 * float(g64.norm() * w64.norm())
    # the weights handed over are the step's own: the first call sees the initial weights
    assert not torch.equal(calls[0][1][0], calls[-1][1][0])


@pytest.mark.parametrize("method", ["grokfast_ema", "gradnorm"])
def test_the_optimizer_steps_with_the_transforms_output(tmp_path, method):
    """Through the trainer, the transform's output is what the optimizer steps with (one step of AdamW by hand)."""
    trainer = Trainer(build({**TINY, "method": method, "max_steps": 1}), tmp_path / "run", quiet=True)
    calls = _spy(trainer)
    before = [p.detach().clone() for p in trainer.params]
    trainer.train_step(log=False)
    (_, _, out), = calls
    lr = trainer.cfg.lr * min(1.0, 1 / trainer.cfg.warmup_steps)  # the first step of the linear warm-up
    for w0, g, w1 in zip(before, out, trainer.params):  # AdamW's first step: w(1 − lr·λ) − lr·g/(|g| + ε)
        expected = w0 * (1 - lr * trainer.cfg.weight_decay) - lr * g / (g.abs() + trainer.cfg.eps)
        torch.testing.assert_close(w1.detach(), expected, rtol=1e-5, atol=1e-7)
