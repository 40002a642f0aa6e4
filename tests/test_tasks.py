"""Task tables against brute force, token layouts, splits, and rejected task specifications."""
import itertools

import pytest
import torch

from neuralgrok.tasks import (PAPER_TASKS, SYMBOLS, TaskError, Vocab, make_task, parse_ranges, split, table)


def brute_force(expr: str, p: int, a, b=None, c=None, d=None, e=None):
    """The answer computed directly with Python's modular arithmetic (None: division by zero)."""
    inv = lambda x: None if x % p == 0 else pow(x, p - 2, p)  # Fermat, p prime
    if expr == "a+b":
        return (a + b) % p
    if expr == "a-b":
        return (a - b) % p
    if expr == "a*b":
        return (a * b) % p
    if expr == "a/b":
        return None if inv(b) is None else (a * inv(b)) % p
    if expr == "a*a-b":
        return (a * a - b) % p
    if expr == "a*c+b*d-e":
        return (a * c + b * d - e) % p
    raise AssertionError(expr)


@pytest.mark.parametrize("name,p", [("add", 13), ("sub", 13), ("mul", 13), ("div", 13), ("square_sub", 13),
                                    ("mod7_five", 7)])
def test_every_row_matches_brute_force(name, p):
    expr = PAPER_TASKS[name][0]
    task = make_task(name, p)
    ds = table(task)
    rows = ds[:]
    seen = set()
    for i in range(len(ds)):
        values = {x: rows[x][i] for x in task.operands}
        assert rows["label"][i] == brute_force(expr, p, **values)
        seen.add(tuple(values.values()))
    spans = [range(lo, hi + 1) for lo, hi in task.ranges.values()]
    expected = {combo for combo in itertools.product(*spans)
                if brute_force(expr, p, **dict(zip(task.operands, combo))) is not None}
    assert seen == expected


def test_paper_ranges():
    assert make_task("a*b").ranges == {"a": (0, 96), "b": (1, 96)}
    five = make_task("a*c+b*d-e", 7).ranges
    assert five == {"a": (0, 6), "b": (0, 6), "c": (1, 6), "d": (1, 6), "e": (0, 6)}
    assert len(table(make_task("mod7_five"))) == 7 * 7 * 6 * 6 * 7
    assert make_task("a/b", 97, parse_ranges("b=5:9")).ranges["b"] == (5, 9)


def test_layouts():
    task = make_task("a*a-b", 11)
    v = Vocab(11)
    row = table(task, "postfix")[0]
    assert row["input_ids"] == [row["a"], row["b"], v.symbol("*"), v.symbol("-"), v.symbol("=")]
    row = table(task, "infix")[0]
    assert row["input_ids"] == [row["a"], v.symbol("*"), row["a"], v.symbol("-"), row["b"], v.symbol("=")]
    paren = table(make_task("(a+b)*c", 5), "infix")[0]
    assert paren["input_ids"][0] == v.symbol("(") - 11 + 5  # '(' in a p=5 vocabulary
    assert len(Vocab(97)) == 97 + len(SYMBOLS)


@pytest.mark.parametrize("expr,written", [("a-(b-c)", "a - ( b - c ) ="), ("(a-b)-c", "a - b - c ="),
                                          ("a*(b+c)", "a * ( b + c ) ="), ("(a*b)+c", "a * b + c ="),
                                          ("a/(b*c)", "a / ( b * c ) ="), ("a-(b+(c-d))", "a - ( b + ( c - d ) ) =")])
def test_infix_keeps_exactly_the_parentheses_the_value_needs(expr, written):
    task, v = make_task(expr, 5), Vocab(5)
    row = table(task, "infix")[0]
    names = {v.symbol(s): s for s in SYMBOLS}
    tokens = [names.get(i) for i in row["input_ids"]]
    assert " ".join(t if t is not None else "x" for t in tokens) == " ".join(
        "x" if w in "abcde" else w for w in written.split())
    assert [t for t in row["input_ids"] if t not in names] == [row[w] for w in written.split() if w in "abcde"]


def test_division_by_zero_rows_dropped():
    ds = table(make_task("a/(b-c)", 5))
    assert all((r["b"] - r["c"]) % 5 != 0 for r in ds)
    assert len(ds) == 5 * sum(1 for b in range(1, 5) for c in range(1, 5) if b != c)


def test_splits_disjoint_complete_deterministic():
    s = split(1000, 0.3, 49.0, seed=3)
    train, test = set(s.train.tolist()), set(s.test.tolist())
    assert len(train) == 300 and train.isdisjoint(test) and train | test == set(range(1000))
    assert set(s.inner.tolist()) | set(s.outer.tolist()) == train and len(s.outer) == 6
    assert set(s.inner.tolist()).isdisjoint(set(s.outer.tolist()))
    again = split(1000, 0.3, 49.0, seed=3)
    assert torch.equal(s.train, again.train) and torch.equal(s.outer, again.outer)
    assert not torch.equal(s.test, split(1000, 0.3, 49.0, seed=4).test)
    # the test split does not depend on the inner:outer ratio, so every method shares it
    assert torch.equal(s.test, split(1000, 0.3, 9.0, seed=3).test)


@pytest.mark.parametrize("task,p,ranges,msg", [
    ("a^b", 7, None, "unsupported operator"),
    ("a+f", 7, None, "unknown operand"),
    ("a+", 7, None, "cannot parse"),
    ("a/b", 12, None, "prime"),
    ("a+b", 7, {"b": (5, 3)}, "empty"),
    ("a+b", 7, {"b": (0, 7)}, "outside"),
    ("a+b", 7, {"c": (0, 3)}, "does not use"),
    ("a+b", 1, None, "p must be"),
])
def test_bad_tasks_rejected(task, p, ranges, msg):
    with pytest.raises(TaskError, match=msg):
        make_task(task, p, ranges)


def test_bad_split_rejected():
    with pytest.raises(TaskError, match="train fraction"):
        split(100, 1.0, 49, 0)
    with pytest.raises(TaskError, match="too small"):
        split(2, 0.5, 49, 0)
