"""Paths as records keep them: relative to the current directory where they are inside it, so a clone elsewhere can use them.

A grid's ``commands.txt``, a reused run's ``reused_from.json`` and log, and a metatrained
amplifier's path in ``config.json`` are read later, from another checkout; an absolute path
of the author's checkout would not exist there.
"""
from __future__ import annotations

import os
from pathlib import Path


def relative(path: str | Path, start: str | Path | None = None) -> str:
    """``path`` relative to ``start`` (default: the current directory) when it lies inside it, else unchanged."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    base = os.path.abspath(start if start is not None else os.getcwd())
    inside = os.path.normpath(text)
    if inside == base:
        return "."
    return os.path.relpath(inside, base) if inside.startswith(base.rstrip(os.sep) + os.sep) else text


def relative_words(words: list[str], start: str | Path | None = None) -> list[str]:
    """A command's words with each absolute path inside ``start`` made relative, ``--opt=PATH`` included."""
    out = []
    for word in words:
        flag, eq, value = word.partition("=")
        if eq and flag.startswith("-") and os.path.isabs(value):
            out.append(f"{flag}={relative(value, start)}")
        else:
            out.append(relative(word, start))
    return out
