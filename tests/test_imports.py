"""The package's import graph: no cycles (function-level imports included), and imports flow one way,
experiments -> neuralgrok -> baselines (baselines needs only torch)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere in its text (in functions too), by absolute name."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for candidate in [target] + [f"{target}.{a.name}" for a in node.names]:
                if candidate in modules and candidate != name:
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found


def graph() -> dict[str, set[str]]:
    files = [p for d in ("neuralgrok", "baselines") for p in (ROOT / d).rglob("*.py")]
    modules = {_module(p) for p in files}
    return {_module(p): _imports(p, modules) for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_flow_one_way():
    g = graph()
    assert not {m: sorted(t for t in ts if t.startswith("neuralgrok")) for m, ts in g.items()
                if m.startswith("baselines") and any(t.startswith("neuralgrok") for t in ts)}
    for path in (ROOT / "neuralgrok").rglob("*.py"):  # the library never reaches into experiments/
        assert "experiments" not in {n.module.split(".")[0] for n in ast.walk(ast.parse(path.read_text()))
                                     if isinstance(n, ast.ImportFrom) and n.module}, path
