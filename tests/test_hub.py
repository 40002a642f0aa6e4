"""Exported folders: from_pretrained gives the run's final weights; --amplifier takes an exported amplifier."""
import json

import torch
from safetensors.torch import load

from neuralgrok import checkpoint
from neuralgrok.cli import main
from neuralgrok.hub import PretrainedAmplifier, PretrainedTransformer

from conftest import TINY


def test_export_and_reload(tmp_path, capsys):
    run = tmp_path / "run"
    ng = [*TINY, "--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2", "--max-steps", "40", "--run-on"]
    assert main(["train", "--out", str(run), *ng]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "shared")]) == 0
    _, state = checkpoint.load_latest(run)
    model = PretrainedTransformer.from_pretrained(tmp_path / "shared" / "model")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state["model"].items())
    amp = PretrainedAmplifier.from_pretrained(tmp_path / "shared" / "amplifier")
    learnt = load((run / "amplifier.safetensors").read_bytes())
    assert all(torch.equal(amp.state_dict()[k], v) for k, v in learnt.items())
    card = (tmp_path / "shared" / "model" / "README.md").read_text()
    assert "(a+b) mod 23" in card and "neuralgrok" in card and run.name in card
    assert json.loads((tmp_path / "shared" / "amplifier" / "run_config.json").read_text())["method"] == "neuralgrok"
    # the exported amplifier, frozen, on another run: its weights are used and kept
    frozen = [*ng[:-3], "--max-steps", "20", "--run-on", "--amplifier", str(tmp_path / "shared" / "amplifier"),
              "--freeze-amplifier"]
    assert main(["train", "--out", str(tmp_path / "reuse"), *frozen]) == 0
    assert load((tmp_path / "reuse" / "amplifier.safetensors").read_bytes()).keys() == learnt.keys()
    assert all(torch.equal(load((tmp_path / "reuse" / "amplifier.safetensors").read_bytes())[k], v)
               for k, v in learnt.items())
    capsys.readouterr()
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_export_of_a_feature_amplifier_run_writes_the_model_and_says_where_the_amplifier_is(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--method", "neuralgrok", "--amp-features", "g,slow",
                 "--amp-hidden", "4", "--max-steps", "20", "--run-on"]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "shared")]) == 0
    assert (tmp_path / "shared" / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "shared" / "amplifier").exists()
    assert "feature amplifier is not exported" in capsys.readouterr().out
