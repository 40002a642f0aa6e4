"""The command line: bad input gives one line and exit code 2; a tiny run trains and writes its run folder."""
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import neuralgrok
from neuralgrok.cli import main

from conftest import TINY


@pytest.mark.parametrize("args,msg", [
    (["--task", "a^b"], "unsupported operator"),
    (["--task", "a/b", "--p", "12"], "prime"),
    (["--task", "a+b", "--p", "7", "--operand-range", "b=5:2"], "empty"),
    (["--train-frac", "1.5"], "train-frac"),
    (["--train-frac", "0"], "train-frac"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "abc"], "--lr expects float"),
    (["--ema-alpha", "1.0"], "ema-alpha"),
    (["--ma-window", "0"], "ma-window"),
    (["--gradnorm-c", "0"], "gradnorm-c"),
    (["--amp-hidden", "12,x"], "amp-hidden"),
    (["--d-model", "100", "--n-heads", "3"], "divisible"),
    (["--method", "neuralgrok", "--freeze-amplifier"], "needs --amplifier"),
    (["--task", "a+b", "--p", "100000"], "more than the 10,000,000"),
])
def test_bad_input_exit_2_one_line(args, msg, tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and msg in err, err
    assert not (tmp_path / "run").exists()


def test_unknown_config_key_named(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('task = "a+b"\nlearning_rate = 0.1\n')
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_choice_and_missing_value_rejected_by_argparse():
    proc = subprocess.run([sys.executable, "-m", "neuralgrok", "train", "--method", "magic"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_tiny_run_learns_and_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 1500\nseed: 1\n")
    assert main(["train", "--config", str(cfg), "--out", str(out), *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "a+b" and config["max_steps"] == 1500 and config["seed"] == 1
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    keys = {"step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "elapsed_s", "age", "age_raw"}
    assert keys <= set(lines[0])
    assert [r["step"] for r in lines] == list(range(20, 20 * len(lines) + 1, 20))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_test_acc"] >= 0.95, summary
    first95 = next(r["step"] for r in lines if r["test_acc"] >= 0.95)
    assert summary["steps_to_95"] == first95
    assert summary["stopped"] == "target" and summary["steps"] == lines[-1]["step"] < 1500
    assert summary["code"]["version"] == importlib.metadata.version("neuralgrok")
    repo = Path(neuralgrok.__file__).resolve().parents[1]
    if (repo / ".git").exists():  # the commit of the checkout that trained it, as git says
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert summary["code"]["commit"].removesuffix("+changes") == head.strip()


def test_existing_run_folder_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    assert main(["train", "--out", str(out), "--max-steps", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == "{}\n"


def test_tasks_command_lists_paper_tasks(capsys):
    assert main(["tasks"]) == 0
    text = capsys.readouterr().out
    for expr in ("(a+b) mod 97", "(a-b) mod 97", "(a*b) mod 97", "(a/b) mod 97", "(a*a-b) mod 97",
                 "(a*c+b*d-e) mod 7"):
        assert expr in text


def test_out_that_is_a_file_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("data")
    assert main(["train", "--out", str(tmp_path / "f"), *TINY]) == 2
    assert "not a folder" in capsys.readouterr().err and (tmp_path / "f").read_text() == "data"
