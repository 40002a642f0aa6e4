"""Every relative link and image in a committed markdown file names a file or folder the repository holds.

A code span that is one path starting with ``./`` or ``../`` is checked too: it names a file
relative to the markdown file as a link does (``../../bench/``), and is read as one.
"""
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?:<([^>\n]*)>|([^)\s]*))(?:\s+[\"'(][^)]*)?\)")  # [text](target "title")
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)  # [label]: target
RELATIVE_CODE = re.compile(r"`(\.\.?/[^`\s]*)`")  # `../paper/runs/X`: a path relative to the file
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of committed files")
    return [f for f in out.stdout.decode().split("\0") if f]


def links(text: str) -> list[str]:
    """The link and image targets of a markdown text outside code blocks, then its file-relative code spans."""
    text = FENCE.sub("", text)
    spans = RELATIVE_CODE.findall(text)
    text = CODE.sub("", text)
    return [a or b for a, b in INLINE.findall(text)] + DEFINITION.findall(text) + spans


def test_links_are_found_as_markdown_reads_them():
    text = ("[a](x/a.md) ![b](fig.png \"title\") [c](<with space.md>) [d](https://e.org) [e](#anchor) "
            "[f](g.md#part) [[1]](n.md) `[no](code.md)` `../up/` `not/relative` `../a b`\n```\n[no](fence.md) `../no`\n```\n"
            "[label]: defined.md\n")
    assert links(text) == ["x/a.md", "fig.png", "with space.md", "https://e.org", "#anchor", "g.md#part", "n.md",
                           "defined.md", "../up/"]


def test_every_relative_link_in_a_committed_markdown_file_resolves():
    tracked = set(_tracked())
    folders = {str(Path(f).parent) for f in tracked} | {str(p) for f in tracked for p in Path(f).parents}
    broken = []
    for md in sorted(f for f in tracked if f.endswith(".md")):
        for target in links((ROOT / md).read_text(errors="replace")):
            if not target or target.startswith("#") or SCHEME.match(target) or target.startswith("/"):
                continue
            resolved = _normal(str(Path(md).parent / unquote(target.split("#")[0].split("?")[0])))
            if resolved is None or (resolved not in tracked and resolved not in folders):
                broken.append(f"{md}: {target}")
    assert not broken, "links to nothing the repository holds:\n" + "\n".join(broken)


def _normal(path: str) -> str | None:
    """``a/b/../c`` as ``a/c``; None when it climbs out of the repository."""
    parts = []
    for part in Path(path).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts) if parts else "."
