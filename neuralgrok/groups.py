"""Group tasks: composition in the permutation group S5 (Power et al.'s x∘y and x∘y∘x⁻¹) over its 120 elements.

An element is a permutation of (0, 1, 2, 3, 4); its token is its index in lexicographic order
(``ELEMENTS``), so the task's "residues" are the 120 elements and everything downstream (the
vocabulary, the answer classes, the splits, layouts and reports) is as for a modular task with
p = 120.  ``(x∘y)(i) = x(y(i))``: y acts first.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

Perm = tuple[int, ...]
ELEMENTS: tuple[Perm, ...] = tuple(itertools.permutations(range(5)))
INDEX: dict[Perm, int] = {perm: i for i, perm in enumerate(ELEMENTS)}


def compose(x: Perm, y: Perm) -> Perm:
    """x∘y: first y, then x."""
    return tuple(x[y[i]] for i in range(len(y)))


def inverse(x: Perm) -> Perm:
    out = [0] * len(x)
    for i, xi in enumerate(x):
        out[xi] = i
    return tuple(out)


GROUP_TASKS: dict[str, tuple[str, Callable[[Perm, Perm], Perm]]] = {
    "s5_compose": ("x∘y", compose),
    "s5_conjugate": ("x∘y∘x⁻¹", lambda x, y: compose(compose(x, y), inverse(x))),
}


@dataclass(frozen=True)
class GroupTask:
    """A binary operation on S5, written like a modular task: operands x and y, one operator token, '='."""

    name: str
    expr: str
    p: int = len(ELEMENTS)  # the number of elements: the answer classes
    operands: tuple[str, ...] = ("x", "y")
    ranges: dict[str, tuple[int, int]] = field(default_factory=lambda: {"x": (0, 119), "y": (0, 119)})

    @property
    def ops(self) -> list[str]:
        return ["*"]

    @property
    def label(self) -> str:
        return f"({self.expr}) in S5"

    def answer(self, x: int, y: int) -> int:
        return INDEX[GROUP_TASKS[self.name][1](ELEMENTS[x], ELEMENTS[y])]


def group_rows(task: GroupTask, layout: str, op_token: int, eq_token: int) -> dict[str, list]:
    """Every (x, y) pair's input tokens, answer and operands: infix ``x op y =`` or postfix ``x y op =``."""
    cols: dict[str, list] = {"input_ids": [], "label": [], "x": [], "y": []}
    for x in range(task.p):
        for y in range(task.p):
            cols["input_ids"].append([x, op_token, y, eq_token] if layout == "infix" else [x, y, op_token, eq_token])
            cols["label"].append(task.answer(x, y))
            cols["x"].append(x)
            cols["y"].append(y)
    return cols
