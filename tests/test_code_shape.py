"""The code stays readable in one sitting: files of at most 400 lines, functions of at most 60, a docstring on each file."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([*(ROOT / "neuralgrok").rglob("*.py"), *(ROOT / "baselines").rglob("*.py"),
                *(ROOT / "experiments").glob("*.py")])


def test_files_and_functions_are_short_and_say_what_they_hold():
    long_files, long_functions, undocumented = [], [], []
    for path in FILES:
        text = path.read_text()
        tree = ast.parse(text)
        if len(text.splitlines()) > 400:
            long_files.append(f"{path.relative_to(ROOT)} ({len(text.splitlines())} lines)")
        if text.strip() and not ast.get_docstring(tree):
            undocumented.append(str(path.relative_to(ROOT)))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                      f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long_files and not long_functions and not undocumented, (long_files, long_functions, undocumented)
