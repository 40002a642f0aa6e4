"""Modular-arithmetic tasks: expression parsing, table generation, token layouts and splits."""
from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass

import torch

from .errors import TaskError
from .groups import GROUP_TASKS, GroupTask, group_rows

OPERANDS = "abcde"
SYMBOLS = ("+", "-", "*", "/", "(", ")", "=")
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
LAYOUTS = ("postfix", "infix")
MAX_ROWS = 10_000_000  # a table is built in memory; beyond this it would take minutes and gigabytes

# The paper tasks, by name: (expression, default p, operands besides `a` that include 0).
PAPER_TASKS: dict[str, tuple[str, int, frozenset[str]]] = {
    "add": ("a+b", 97, frozenset()),
    "sub": ("a-b", 97, frozenset()),
    "mul": ("a*b", 97, frozenset()),
    "div": ("a/b", 97, frozenset()),
    "square_sub": ("a*a-b", 97, frozenset()),
    "mod7_five": ("a*c+b*d-e", 7, frozenset("be")),
}


@dataclass(frozen=True)
class Task:
    """A parsed task: expression, modulus and inclusive operand ranges."""

    expr: str
    p: int
    operands: tuple[str, ...]  # distinct operands, alphabetical
    ranges: dict[str, tuple[int, int]]
    tree: ast.expr

    @property
    def ops(self) -> list[str]:
        """Operator symbols in the order they appear in the expression."""
        return [_BINOPS[type(n.op)] for n in _walk_in_order(self.tree) if isinstance(n, ast.BinOp)]

    @property
    def label(self) -> str:
        return f"({self.expr}) mod {self.p}"


@dataclass
class Vocab:
    """Token ids: residues 0..p-1, then the symbols."""

    p: int

    def __len__(self) -> int:
        return self.p + len(SYMBOLS)

    def symbol(self, s: str) -> int:
        return self.p + SYMBOLS.index(s)


def _walk_in_order(node: ast.AST):
    """Yields the nodes of an expression tree left to right (in-order)."""
    if isinstance(node, ast.BinOp):
        yield from _walk_in_order(node.left)
        yield node
        yield from _walk_in_order(node.right)
    elif isinstance(node, ast.UnaryOp):
        yield node
        yield from _walk_in_order(node.operand)
    else:
        yield node


def _check_tree(node: ast.AST, expr: str) -> None:
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise TaskError(f"unsupported operator in task {expr!r}: only + - * / and parentheses are allowed")
        _check_tree(node.left, expr)
        _check_tree(node.right, expr)
    elif isinstance(node, ast.Name):
        if node.id not in OPERANDS:
            raise TaskError(f"unknown operand {node.id!r} in task {expr!r}: operands are a, b, c, d, e")
    elif isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        pass
    else:
        raise TaskError(f"cannot parse task {expr!r}: use operands a..e, non-negative integers, + - * / and parentheses")


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


def _has_division(tree: ast.AST) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) for n in ast.walk(tree))


def parse_ranges(spec: str) -> dict[str, tuple[int, int]]:
    """Parses 'b=1:96,c=0:6' into {'b': (1, 96), 'c': (0, 6)} (inclusive bounds)."""
    out: dict[str, tuple[int, int]] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        try:
            name, bounds = part.split("=")
            lo, hi = (int(x) for x in bounds.split(":"))
        except ValueError:
            raise TaskError(f"bad operand range {part!r}: write NAME=LO:HI, e.g. b=1:96") from None
        out[name.strip()] = (lo, hi)
    return out


def default_p(task: str) -> int:
    """The modulus a task takes when none is given: its paper's, the group's order, or 97."""
    if task in GROUP_TASKS:
        return GroupTask(task, GROUP_TASKS[task][0]).p
    expr = PAPER_TASKS[task][0] if task in PAPER_TASKS else task.replace(" ", "")
    return next((dp for e, dp, _ in PAPER_TASKS.values() if e == expr), 97)


def make_task(task: str, p: int | None = None, ranges: dict[str, tuple[int, int]] | None = None) -> Task | GroupTask:
    """Builds a Task from a paper-task name or an expression (or a GroupTask from a group task's name).

    Default operand ranges follow the papers: ``a`` takes 0..p-1 and every other
    operand 1..p-1, except in the five-operand task ``a*c+b*d-e`` where b and e take
    0..p-1 too (only the multipliers c and d exclude 0).
    ``ranges`` overrides any operand's inclusive range.
    """
    if task in GROUP_TASKS:
        group = GroupTask(task, GROUP_TASKS[task][0])
        if p not in (None, group.p):
            raise TaskError(f"task {task} is over the {group.p} elements of S5: --p must be {group.p} or left out, "
                            f"got {p}")
        if ranges:
            raise TaskError(f"task {task} takes every element of S5 as x and y: no --operand-range")
        return group
    if task in PAPER_TASKS:
        task, default_p, _ = PAPER_TASKS[task]
        p = default_p if p is None else p
    expr = task.replace(" ", "")
    if p is None:  # a paper task written as its expression keeps its modulus
        p = next((dp for e, dp, _ in PAPER_TASKS.values() if e == expr), None)
    if p is None:
        raise TaskError(f"task {task!r} needs a modulus p")
    if not isinstance(p, int) or p < 2:
        raise TaskError(f"p must be an integer >= 2, got {p!r}")
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise TaskError(f"cannot parse task {task!r}: use operands a..e, + - * / and parentheses") from None
    _check_tree(tree, task)
    operands = tuple(sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}))
    if not operands:
        raise TaskError(f"task {task!r} has no operand (use a..e)")
    if _has_division(tree) and not is_prime(p):
        raise TaskError(f"task {task!r} divides, which needs a prime p for modular inverses; got p={p}")
    with_zero = {"a"} | next((z for e, _, z in PAPER_TASKS.values() if e == expr), frozenset())
    rng = {x: (0 if x in with_zero else 1, p - 1) for x in operands}
    for name, (lo, hi) in (ranges or {}).items():
        if name not in rng:
            raise TaskError(f"operand range given for {name!r}, which task {task!r} does not use")
        rng[name] = (lo, hi)
    for name, (lo, hi) in rng.items():
        if not 0 <= lo <= hi <= p - 1:
            raise TaskError(f"operand range {name}={lo}:{hi} is empty or outside 0..{p - 1}")
    rows = math.prod(hi - lo + 1 for lo, hi in rng.values())
    if rows > MAX_ROWS:
        raise TaskError(f"task {task!r} mod {p} has {rows:,} rows, more than the {MAX_ROWS:,} a table may hold; "
                        f"use a smaller p or narrower operand ranges")
    return Task(expr, p, operands, rng, tree)


def evaluate(task: Task, values: dict[str, int]) -> int | None:
    """The answer of one row modulo p, or None when a divisor is 0 mod p."""
    p = task.p

    def ev(node: ast.AST) -> int | None:
        if isinstance(node, ast.Name):
            return values[node.id] % p
        if isinstance(node, ast.Constant):
            return node.value % p
        left, right = ev(node.left), ev(node.right)
        if left is None or right is None:
            return None
        op = type(node.op)
        if op is ast.Add:
            return (left + right) % p
        if op is ast.Sub:
            return (left - right) % p
        if op is ast.Mult:
            return (left * right) % p
        if right == 0:
            return None
        return (left * pow(right, -1, p)) % p

    return ev(task.tree)


def encode(task: Task, values: dict[str, int], layout: str, vocab: Vocab) -> list[int]:
    """The input tokens of one row (without the answer), ending with '='."""
    if layout == "postfix":  # operands first, then operator tokens
        tokens = [values[x] for x in task.operands] + [vocab.symbol(s) for s in task.ops]
    elif layout == "infix":  # the expression written out (Power et al., Grokfast, NeuralGrok)
        tokens = [vocab.symbol(t) if t in SYMBOLS else values[t] if t in OPERANDS else int(t) % task.p
                  for t in _infix_tokens(task.tree)]
    else:
        raise TaskError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return tokens + [vocab.symbol("=")]


def _infix_tokens(node: ast.AST, parent_prec: int = 0, right: bool = False) -> list[str]:
    """Token strings of an expression with the parentheses that its tree needs."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Constant):
        return [str(node.value)]
    prec = 1 if isinstance(node.op, (ast.Add, ast.Sub)) else 2
    toks = _infix_tokens(node.left, prec) + [_BINOPS[type(node.op)]] + _infix_tokens(node.right, prec, True)
    if prec < parent_prec or (right and prec == parent_prec):
        return ["(", *toks, ")"]
    return toks


def table(task: Task, layout: str = "infix"):
    """The whole operation table as a Hugging Face ``datasets.Dataset``.

    Columns: ``input_ids`` (the tokens up to '='), ``label`` (the answer residue) and
    one column per operand.  Rows whose divisor is 0 mod p are left out.
    """
    import datasets

    vocab = Vocab(task.p)
    if isinstance(task, GroupTask):
        return datasets.Dataset.from_dict(group_rows(task, layout, vocab.symbol("*"), vocab.symbol("=")))
    cols: dict[str, list] = {"input_ids": [], "label": [], **{x: [] for x in task.operands}}
    spans = [range(lo, hi + 1) for lo, hi in (task.ranges[x] for x in task.operands)]
    for combo in itertools.product(*spans):
        values = dict(zip(task.operands, combo))
        answer = evaluate(task, values)
        if answer is None:
            continue
        cols["input_ids"].append(encode(task, values, layout, vocab))
        cols["label"].append(answer)
        for x, v in values.items():
            cols[x].append(v)
    if not cols["label"]:
        raise TaskError(f"task {task.label} with ranges {task.ranges} has no valid row")
    return datasets.Dataset.from_dict(cols)


@dataclass
class Splits:
    """Row indices of the table for each split (all disjoint; inner + outer = train)."""

    train: torch.Tensor
    test: torch.Tensor
    inner: torch.Tensor
    outer: torch.Tensor


def split(n: int, train_frac: float, inner_outer_ratio: float, seed: int) -> Splits:
    """Splits n rows by seed: train/test by ``train_frac``, train into inner:outer.

    The test split depends only on (n, train_frac, seed), so every method run with
    the same seed is measured on the same test set.
    """
    if not 0.0 < train_frac < 1.0:
        raise TaskError(f"train fraction must be in (0, 1), got {train_frac}")
    if not inner_outer_ratio > 0:
        raise TaskError(f"inner:outer ratio must be > 0, got {inner_outer_ratio}")
    n_train = round(n * train_frac)
    n_outer = max(1, round(n_train / (inner_outer_ratio + 1)))
    if n_train < 2 or n - n_train < 1 or n_train - n_outer < 1:
        raise TaskError(f"a table of {n} rows is too small for train fraction {train_frac} "
                        f"and inner:outer ratio {inner_outer_ratio}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train, test = perm[:n_train], perm[n_train:]
    return Splits(train=train, test=test, inner=train[: n_train - n_outer], outer=train[n_train - n_outer:])


def describe_paper_tasks() -> str:
    """A human-readable list of the paper tasks and how to write one's own."""
    lines = ["Paper tasks (use the name or the expression with --task, and --p):", ""]
    for name in PAPER_TASKS:
        t = make_task(name)
        ranges = ", ".join(f"{x}={lo}:{hi}" for x, (lo, hi) in t.ranges.items())
        lines.append(f"  {name:<11} {t.label:<22} operands {ranges}")
    lines += [
        "",
        "Your own task: any expression over operands a..e with + - * / and parentheses,",
        "modulo --p; '/' multiplies by the modular inverse (needs a prime p; rows with a",
        "zero divisor are left out). Defaults: operand a takes 0..p-1, the others 1..p-1;",
        "override with --operand-range 'b=0:96,c=1:10'. Token layout: --layout infix",
        "('a op b =', the default, as Grokfast's code) or postfix (operands, operator tokens, '=': NeuralGrok's main).",
        "  e.g. neuralgrok train --task 'a*a+b*b' --p 31",
        "",
        "Group tasks (Power et al.): composition in the permutation group S5, over its 120 elements",
        "(the modulus is the group's order, 120):",
        *(f"  {name:<13} {GroupTask(name, expr).label}" for name, (expr, _) in GROUP_TASKS.items()),
    ]
    return "\n".join(lines)
