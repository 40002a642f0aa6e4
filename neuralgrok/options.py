"""A method's run options, declared once: name, default, help, choices and check; the config and the CLI read them.

    Option("ema_alpha", 0.98, "Grokfast-EMA: momentum alpha in [0, 1)", check=in_range(0, 1))

becomes the run option ``--ema-alpha`` (a field of ``RunConfig``), shown in ``neuralgrok train --help``
under its method's group, and checked with a one-line error (``--ema-alpha must be in [0, 1), got 2``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Check = Callable[[Any], "str | None"]  # a value -> None when it is allowed, else what is wrong ("must be > 0, got -1")


@dataclass(frozen=True)
class Option:
    """One run option of a method; its type is its default's (a tuple default: comma-separated integers)."""

    name: str
    default: Any
    help: str
    choices: tuple | None = None
    check: Check | None = None
    group: str = "method"

    @property
    def type(self) -> Any:
        return tuple[int, ...] if isinstance(self.default, tuple) else type(self.default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low:g}, got {v}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"must be > {low:g}, got {v}"


def in_range(low: float, high: float, closed: bool = False) -> Check:
    """``[low, high)``, or ``[low, high]`` when ``closed``."""
    def check(v):
        ok = low <= v <= high if closed else low <= v < high
        return None if ok else f"must be in [{low:g}, {high:g}{']' if closed else ')'}, got {v}"
    return check


def sizes(v) -> str | None:
    """One or more sizes, each >= 1 (hidden layers)."""
    ok = len(v) >= 1 and all(h >= 1 for h in v)
    return None if ok else f"must be one or more sizes >= 1, got {','.join(map(str, v)) or 'nothing'}"
