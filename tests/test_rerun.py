"""neuralgrok rerun: a run re-made from its config.json matches line by line; a changed line is named."""
import json

import pytest
import torch

from neuralgrok import rerun
from neuralgrok.cli import main

from conftest import TINY


def test_rerun_matches_and_names_the_first_changed_line(tmp_path, capsys):
    run = tmp_path / "committed"
    assert main(["train", "--out", str(run), *TINY, "--max-steps", "60", "--run-on"]) == 0
    threads = str(torch.get_num_threads())  # the count the in-process run used: float sums depend on it
    assert rerun.main([str(run), "--threads", threads, "--work", str(tmp_path / "w1")]) == 0
    assert "committed (" in (out := capsys.readouterr().out) and "): identical metrics;" in out

    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    lines[1]["train_loss"] += 1e-9  # as if the committed run had rounded differently at its second evaluation
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert rerun.main([str(run), "--threads", threads, "--work", str(tmp_path / "w2")]) == 1
    out = capsys.readouterr().out
    assert f"first difference at step {lines[1]['step']}: train_loss" in out and "1 fields differ" in out


def test_rerun_refuses_a_folder_without_config(tmp_path):
    with pytest.raises(SystemExit, match="no config.json"):
        rerun.main([str(tmp_path)])
