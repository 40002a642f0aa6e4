"""Bounded evaluation: cheaper test passes that leave every training number, and every accuracy at or above the bound, unchanged."""
import json

import pytest

from neuralgrok import evaluation
from neuralgrok.cli import main
from neuralgrok.evaluation import min_correct as _min_correct

from conftest import TINY


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("n,acc", [(4704, 0.95), (100, 0.95), (7, 0.5), (3, 1.0), (10, 0.0)])
def test_min_correct_is_the_summary_comparison(n, acc):
    c = _min_correct(n, acc)
    assert c / n >= acc and (c == 0 or (c - 1) / n < acc)


def test_bounded_test_evaluation_changes_no_training_number_nor_the_crossing(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "BOUNDED_CHUNK", 16)  # the tiny task's test split is 152 rows: ten passes
    run = [*TINY, "--train-frac", "0.7", "--max-steps", "600", "--eval-every", "10", "--train-eval-rows", "0"]
    assert main(["train", "--out", str(tmp_path / "full"), *run, "--eval-exact-from", "0"]) == 0
    assert main(["train", "--out", str(tmp_path / "bounded"), *run, "--eval-exact-from", "0.95"]) == 0
    full, bounded = _rows(tmp_path / "full"), _rows(tmp_path / "bounded")
    n_test = full[0]["test_rows"]
    assert len(full) == len(bounded) and n_test == 152
    partial = 0
    for f, b in zip(full, bounded):
        for key in ("step", "train_loss", "train_acc", "weight_norm", "age", "age_raw", "awe"):
            assert f[key] == b[key], key  # training is untouched by how the test split is evaluated
        if b["test_rows"] == n_test:
            assert b["test_acc"] == f["test_acc"]  # counts: exact
            assert abs(b["test_loss"] - f["test_loss"]) <= 1e-6 * f["test_loss"]  # summed in other chunks
        else:  # stopped early: only when the whole split is below 95%, and the estimate is below it too
            partial += 1
            assert b["test_rows"] < n_test and b["test_rows"] % 16 == 0
            assert f["test_acc"] < 0.95 and b["test_acc"] < 0.95
    assert partial >= 3  # the bound did cut evaluations short (this check could fail)
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "bounded")]
    assert summaries[0]["steps_to_95"] is not None
    assert summaries[0]["steps_to_95"] == summaries[1]["steps_to_95"]
    assert summaries[0]["final_test_acc"] == summaries[1]["final_test_acc"]


def test_train_evaluation_subset_is_fixed_and_sized(tmp_path):
    assert main(["train", "--out", str(tmp_path / "r"), *TINY, "--max-steps", "40", "--train-eval-rows", "50"]) == 0
    rows = _rows(tmp_path / "r")
    assert [r["train_rows"] for r in rows] == [50, 50]
    assert all(abs(r["train_acc"] * 50 - round(r["train_acc"] * 50)) < 1e-9 for r in rows)  # a count over 50 rows


def test_last_evaluation_is_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "BOUNDED_CHUNK", 16)
    assert main(["train", "--out", str(tmp_path / "r"), *TINY, "--max-steps", "40", "--eval-every", "20"]) == 0
    rows = _rows(tmp_path / "r")
    assert rows[0]["test_rows"] < 152 and rows[-1]["test_rows"] == 152  # at step 40 of 600 accuracy is near chance
