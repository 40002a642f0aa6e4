"""neuralgrok rerun: a run re-made from its config.json matches line by line; a changed line and changed code are named."""
import json
import subprocess

import pytest
import torch

from neuralgrok.sweep import rerun
from neuralgrok.cli import main
from neuralgrok.runfolder import code_version

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
    assert "trained at commit" not in out  # same code: a difference is not put down to the code

    summary = json.loads((run / "summary.json").read_text())
    summary["code"]["commit"] = "0" * 40  # as if trained at another commit
    (run / "summary.json").write_text(json.dumps(summary))
    assert rerun.main([str(run), "--threads", threads, "--work", str(tmp_path / "w3")]) == 1
    now = json.loads((tmp_path / "w3" / "committed" / "summary.json").read_text())["code"]["commit"]
    assert f"; trained at commit {'0' * 40}, re-run at {now}" in capsys.readouterr().out


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_code_version_is_the_checkouts_commit_and_flags_changed_code(tmp_path):
    repo = tmp_path / "checkout"
    (repo / "neuralgrok").mkdir(parents=True)
    (repo / "neuralgrok" / "a.py").write_text("x = 1\n")
    (repo / "results.md").write_text("numbers\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    head = git(repo, "rev-parse", "HEAD")
    assert code_version(repo)["commit"] == head
    (repo / "results.md").write_text("more numbers\n")  # results are not code
    assert code_version(repo)["commit"] == head
    (repo / "neuralgrok" / "a.py").write_text("x = 2\n")
    assert code_version(repo)["commit"] == head + "+changes"
    assert code_version(tmp_path)["commit"] is None  # not a checkout


def test_rerun_refuses_a_folder_without_config(tmp_path):
    with pytest.raises(SystemExit, match="no config.json"):
        rerun.main([str(tmp_path)])
