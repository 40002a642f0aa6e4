"""Meta-training across runs: the same amplifier as chaining `neuralgrok train --amplifier` by hand; resumable; reusable."""
import json

import pytest

from neuralgrok.cli import main
from neuralgrok.metatrain import episodes

from conftest import TINY

NG = [*TINY, "--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2", "--meta-lr", "1e-2"]


def test_episode_order():
    assert episodes(["a", "b"], [0, 1], 2) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)] * 2


def test_metatrain_is_chained_training_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "meta"
    args = ["metatrain", "--tasks", "a+b,a-b", "--seeds", "1", "--episode-steps", "30", "--out", str(out), *NG]
    assert main(args) == 0
    learnt = (out / "amplifier.safetensors").read_bytes()
    # the oracle: the same two runs by hand, the second starting from the first's amplifier
    by_hand = [*NG, "--seed", "1", "--max-steps", "30", "--run-on", "--label", "metatrain"]
    assert main(["train", "--out", str(tmp_path / "h1"), *by_hand, "--task", "a+b"]) == 0
    assert main(["train", "--out", str(tmp_path / "h2"), *by_hand, "--task", "a-b",
                 "--amplifier", str(tmp_path / "h1")]) == 0
    assert (tmp_path / "h2" / "amplifier.safetensors").read_bytes() == learnt
    assert (tmp_path / "h1" / "amplifier.safetensors").read_bytes() != learnt  # the second episode trained it on
    log = json.loads((out / "metatrain.json").read_text())
    assert [(e["task"], e["seed"]) for e in log["episodes"]] == [("a+b", 1), ("a-b", 1)]
    assert all("amp_pn_std" in e and "outer_loss" in e for e in log["episodes"])

    # an interrupted second episode is trained again; the first is kept
    first = out / "episodes" / "000-apb-s1"
    first_metrics = (first / "metrics.jsonl").read_text()
    (out / "episodes" / "001-amb-s1" / "summary.json").unlink()
    (out / "amplifier.safetensors").unlink()
    assert main(args) == 0
    assert (out / "amplifier.safetensors").read_bytes() == learnt
    assert (first / "metrics.jsonl").read_text() == first_metrics

    # the result is used frozen on a task it never saw
    assert main(["train", "--out", str(tmp_path / "use"), *NG, "--task", "a*b", "--max-steps", "20",
                 "--amplifier", str(out), "--freeze-amplifier"]) == 0
    assert (tmp_path / "use" / "amplifier.safetensors").read_bytes() == learnt


@pytest.mark.parametrize("extra,message", [(["--method", "standard"], "--method neuralgrok"),
                                           (["--episode-steps", "0"], "--episode-steps >= 1"),
                                           (["--seeds", "x"], "--seeds expects")])
def test_bad_metatrain_arguments(tmp_path, capsys, extra, message):
    assert main(["metatrain", "--tasks", "a+b", "--out", str(tmp_path / "m"), *TINY, *extra]) == 2
    assert message in capsys.readouterr().err
