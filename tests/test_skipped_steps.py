"""A skipped step leaves no trace: no parameter, optimizer moment, filter state or amplifier weight changes."""
import pytest
import torch

from neuralgrok.cli import parser, resolve_train_args
from neuralgrok.trainer import Trainer

from conftest import TINY

METHODS = {"standard": [], "grokfast_ema": ["--method", "grokfast_ema"],
           "grokfast_ma": ["--method", "grokfast_ma", "--ma-window", "2"],
           "neuralgrok": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2"]}


def _trainer(tmp_path, method):
    args = ["train", *TINY, "--max-steps", "40", "--run-on", *METHODS[method]]
    return Trainer(resolve_train_args(parser().parse_args(args)), tmp_path / "run", quiet=True)


def _tensors(obj):
    """Every tensor and number in a nested state, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        return [obj.detach().clone()]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in _tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return [obj]


def snapshot(t: Trainer) -> list:
    return _tensors([list(t.params), t.inner_opt.state_dict()["state"], t.transform.state_dict()])


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in zip(a, b))


def _take_good_steps(t: Trainer, n: int) -> None:
    for _ in range(n):
        before = snapshot(t)
        t.train_step(log=True)
        assert not same(before, snapshot(t))  # a step taken does change the state (so the checks below can fail)


def _skipped(t: Trainer) -> None:
    before, skipped = snapshot(t), t.skipped_steps
    t.train_step(log=True)
    assert t.skipped_steps == skipped + 1
    assert same(before, snapshot(t))


@pytest.mark.parametrize("method", list(METHODS))
def test_non_finite_raw_gradient(tmp_path, method):
    t = _trainer(tmp_path, method)
    _take_good_steps(t, 4)  # the next step (4) is a meta step for neuralgrok
    poison = t.params[0].register_hook(lambda g: g * float("nan"))
    _skipped(t)
    poison.remove()
    _take_good_steps(t, 2)


def test_grokfast_ema_whose_output_overflows(tmp_path):
    t = _trainer(tmp_path, "grokfast_ema")
    _take_good_steps(t, 2)
    t.transform.h = [torch.full_like(h, 3e38) for h in t.transform.h]  # finite, but g + 2·h is not
    _skipped(t)
    assert all(torch.all(h == 3e38) for h in t.transform.h)


def test_grokfast_ma_whose_output_overflows(tmp_path):
    t = _trainer(tmp_path, "grokfast_ma")
    _take_good_steps(t, 2)  # the window of 2 is full, and the next step is not one that re-sums the buffer
    t.transform.sums = [torch.full_like(s, 3e38) for s in t.transform.sums]  # finite, but g + 5·sum/2 is not
    _skipped(t)


def test_neuralgrok_with_non_finite_outer_loss(tmp_path):
    t = _trainer(tmp_path, "neuralgrok")
    _take_good_steps(t, 4)
    loss_at = t._loss_at
    t._loss_at = lambda params, stream: loss_at(params, stream) * (float("inf") if stream is t.streams["held_out"] else 1)
    meta_steps = t.transform.meta_steps
    _skipped(t)  # step 4: a meta step, whose outer loss is infinite
    assert t.transform.meta_steps == meta_steps
    t._loss_at = loss_at
    _take_good_steps(t, 2)
    assert t.transform.meta_steps == meta_steps + 1
