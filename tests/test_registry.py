"""A new method is one class and one registry entry: a toy plugin through the CLI, a grid and the report."""
import json
import os
import subprocess
import sys

import pytest

from neuralgrok.clock import untimed
from neuralgrok.methods import METHODS, Method, register
from neuralgrok.options import Option

PLUGIN = '''"""A toy method: every gradient times s."""
from baselines import GradientTransform, Update
from neuralgrok.methods import Method, register
from neuralgrok.options import Option, above


class ToyScale(GradientTransform):
    def __init__(self, s):
        self.s = s

    def update(self, grads, ctx):
        return Update([g * self.s for g in grads])


register("toy", Method(lambda cfg: ToyScale(cfg.toy_scale), "toy: the gradient times s",
                       options=(Option("toy_scale", 2.0, "toy: the factor s", check=above(0)),),
                       label="toy scaling", colour="#123456"))
'''
TINY = ["--task", "a+b", "--p", "11", "--d-model", "16", "--n-layers", "1", "--batch-size", "32", "--optimizer", "sgd",
        "--weight-decay", "0", "--warmup-steps", "0", "--eval-every", "5", "--max-steps", "20", "--run-on", "--quiet"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(PLUGIN)
    env = {**os.environ, "NEURALGROK_PLUGINS": "toy_plugin",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    monkeypatch.chdir(tmp_path)
    return lambda *args: subprocess.run([sys.executable, "-m", "neuralgrok", *args], env=env, capture_output=True,
                                        text=True)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_registered_method_runs_through_the_cli_the_grid_and_the_report(plugin, tmp_path):
    shown = plugin("train", "--help")
    assert shown.returncode == 0 and "--toy-scale" in shown.stdout and "toy: the factor s" in shown.stdout
    bad = plugin("train", "--method", "toy", "--toy-scale", "0", "--out", "bad")
    assert bad.returncode == 2 and bad.stderr.strip() == "neuralgrok: error: --toy-scale must be > 0, got 0.0"
    # oracle: with plain SGD, gradients times s are the learning rate times s
    assert plugin("train", *TINY, "--method", "toy", "--toy-scale", "0.5", "--lr", "0.2", "--out", "toy").returncode == 0
    assert plugin("train", *TINY, "--method", "standard", "--lr", "0.1", "--out", "std").returncode == 0
    toy, std = _rows(tmp_path / "toy"), _rows(tmp_path / "std")
    assert [r["step"] for r in toy] == [r["step"] for r in std] == [5, 10, 15, 20]
    for a, b in zip(toy, std):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert json.loads((tmp_path / "toy" / "config.json").read_text())["toy_scale"] == 0.5

    options = dict(zip(TINY[:-2:2], TINY[1:-2:2]))  # the flags with values (--run-on and --quiet last)
    (tmp_path / "g.toml").write_text('[grid]\ntasks = ["add"]\nmethods = ["toy"]\nseeds = [0]\n\n[defaults]\n'
                                     + "".join(f"{k[2:].replace('-', '_')} = {json.dumps(_value(v))}\n"
                                               for k, v in options.items())
                                     + 'run_on = true\n\n[methods.toy]\ntoy_scale = 0.5\nlr = 0.2\n')
    grid = plugin("grid", "g.toml", "--out", "grid")
    assert grid.returncode == 0, grid.stderr
    assert list(map(untimed, _rows(tmp_path / "grid" / "runs" / "add-toy-s0"))) == list(map(untimed, toy))

    report = plugin("report", "toy", "std", "--out", "report")
    assert report.returncode == 0, report.stderr
    assert "| toy scaling |" in (tmp_path / "report" / "report.md").read_text()
    colour = subprocess.run([sys.executable, "-c", "from neuralgrok.figures import palette; "
                             "print(palette([('toy scaling', 'toy'), ('standard', 'standard')]))"],
                            env={**os.environ, "NEURALGROK_PLUGINS": "toy_plugin", "PYTHONPATH": str(tmp_path)},
                            capture_output=True, text=True)
    assert "'toy scaling': '#123456'" in colour.stdout and "'standard': '#4d4d4d'" in colour.stdout


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def test_registry_refuses_clashes_and_late_options():
    with pytest.raises(ValueError, match="registered already"):
        register("standard", Method(lambda cfg: None, "again"))
    with pytest.raises(ValueError, match="ema_alpha belong to another method"):
        register("clash", Method(lambda cfg: None, "clash", options=(Option("ema_alpha", 0.5, "x"),)))
    import neuralgrok.config  # noqa: F401  (RunConfig is built: a method with options can no longer join it)
    with pytest.raises(RuntimeError, match="before neuralgrok.config is imported"):
        register("late", Method(lambda cfg: None, "late", options=(Option("late_x", 1.0, "x"),)))
    assert "clash" not in METHODS and "late" not in METHODS
