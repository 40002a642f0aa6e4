"""experiments/claims_tables.py: which committed runs the claims read and how it groups them into method families."""
import json

import pytest

from conftest import experiment_script

REFERENCE = {"arch": "reference", "loss": "softmax"}


def _module():
    return experiment_script("claims_tables")


@pytest.mark.parametrize("cfg, family", [
    ({"method": "neuralgrok"}, "NeuralGrok (published amplifier)"),
    ({"method": "neuralgrok", "amp_features": "g,slow,theta"}, "learnt coefficients"),
    ({"method": "standard", "weight_decay": 1.0}, "weight decay (no gradient method)"),
    ({"method": "standard", "weight_decay": 0.0}, "standard, no decay"),
    ({"method": "standard", "weight_norm": 45.0}, "constant weight norm"),
    ({"method": "gradnorm", "clip_grad": 1.0}, "gradnorm + clip"),
    ({"method": "gradnorm", "clip_grad": 0.0}, "gradnorm"),
    ({"method": "grokfast_ma"}, "Grokfast-MA"),
    ({"method": "orthograd"}, "⊥Grad"),
    ({"method": "grokfast_ema", "loss": "stablemax"}, None),  # another loss: not read
    ({"method": "grokfast_ema", "arch": "prenorm"}, None),  # the pre-norm model's runs are kept apart
])
def test_runs_are_grouped_by_method_family(cfg, family):
    assert _module().family({**REFERENCE, **cfg}) == family


def _run(root, study, name, cfg, finished=True, reused=False):
    d = root / "experiments" / "results" / study / "runs" / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({**REFERENCE, "task": "a+b", "p": 97, "seed": 0, **cfg}))
    (d / "metrics.jsonl").write_text(json.dumps({"step": 10, "test_acc": 0.5, "train_acc": 1.0}) + "\n")
    if finished:
        (d / "summary.json").write_text(json.dumps({"steps_to_95": None, "steps": 10}))
    if reused:
        (d / "reused_from.json").write_text(json.dumps({"run": "elsewhere"}))


def test_every_finished_committed_run_counts_once_and_a_study_in_progress_not_at_all(tmp_path, monkeypatch):
    mod = _module()
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    _run(tmp_path, "paper", "add-grokfast_ma-s0", {"method": "grokfast_ma"})
    _run(tmp_path, "paper", "add-grokfast_ma-s1", {"method": "grokfast_ma"}, finished=False)
    _run(tmp_path, "ng_setup", "add-grokfast_ma-s0", {"method": "grokfast_ma"}, reused=True)  # a copy
    _run(tmp_path, "controls", "add-tf-s0", {"method": "neuralgrok", "amp_features": "g,slow,theta"})
    runs = mod.committed_runs()
    assert [(r.path.parent.parent.name, r.path.name, r.config["label"]) for r in runs] == [
        ("paper", "add-grokfast_ma-s0", "Grokfast-MA")]
