"""Group tasks: S5 composition tables against an independent oracle, their tokens, splits and a run through the CLI."""
import itertools
import json

import pytest

from neuralgrok.cli import main
from neuralgrok.config import build
from neuralgrok.data import load_task_data
from neuralgrok.groups import ELEMENTS
from neuralgrok.tasks import SYMBOLS, TaskError, make_task, table


def _oracle():
    """S5 by hand: permutations as dicts, composed by applying the right one first."""
    perms = sorted(itertools.permutations(range(5)))
    as_maps = [dict(enumerate(p)) for p in perms]

    def index(m):
        return perms.index(tuple(m[i] for i in range(5)))

    def comp(f, g):
        return {i: f[g[i]] for i in range(5)}

    def inv(f):
        return {v: k for k, v in f.items()}
    return as_maps, index, comp, inv


@pytest.mark.parametrize("name", ["s5_compose", "s5_conjugate"])
@pytest.mark.parametrize("layout", ["infix", "postfix"])
def test_table_is_the_group_operation_on_every_pair(name, layout):
    maps, index, comp, inv = _oracle()
    task = make_task(name)
    rows = table(task, layout)[:]
    assert task.p == 120 and len(rows["label"]) == 120 * 120 and list(ELEMENTS) == sorted(ELEMENTS)
    op, eq = 120 + SYMBOLS.index("*"), 120 + SYMBOLS.index("=")
    for k in range(0, 14400, 37):  # a spread of pairs, every one checked by hand
        x, y = rows["x"][k], rows["y"][k]
        f, g = maps[x], maps[y]
        expected = comp(f, g) if name == "s5_compose" else comp(comp(f, g), inv(f))
        assert rows["label"][k] == index(expected)
        assert rows["input_ids"][k] == ([x, op, y, eq] if layout == "infix" else [x, y, op, eq])
    labels = rows["label"]
    if name == "s5_compose":  # a group's table is a Latin square: each row holds every element once
        assert all(sorted(labels[i * 120:(i + 1) * 120]) == list(range(120)) for i in range(120))
        assert labels[0] == 0 and all(labels[x * 120] == x for x in range(120))  # x∘e = x (e is index 0)


def test_group_tasks_take_their_own_modulus_and_refuse_others():
    assert build({"task": "s5_compose"}).p == 120 and build({"task": "mod7_five"}).p == 7
    assert build({"task": "a+b"}).p == 97
    with pytest.raises(TaskError, match="--p must be 120"):
        make_task("s5_compose", 97)
    with pytest.raises(TaskError, match="no --operand-range"):
        make_task("s5_compose", None, {"x": (0, 3)})
    data = load_task_data("s5_conjugate", 120, "", "infix", 0.5, 49.0, 0)
    assert data.vocab_size == 127 and data.seq_len == 4 and len(data.splits.test) == 7200
    assert data.task.label == "(x∘y∘x⁻¹) in S5"


def test_a_group_task_trains_reports_and_is_refused_by_the_fourier_analysis(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "s5_compose", "--d-model", "32", "--n-layers", "1", "--max-steps", "4",
                 "--eval-every", "2", "--batch-size", "64", "--snapshot-steps", "4", "--out", str(out),
                 "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["p"] == 120 and config["task"] == "s5_compose"
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert "(x∘y) in S5" in (tmp_path / "rep" / "report.md").read_text()
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 2
    assert "group task s5_compose" in capsys.readouterr().err
