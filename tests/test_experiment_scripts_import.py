"""Every script in experiments/ imports: a name moved or renamed in the package fails here, not when a benchmark
or an analysis is next run (experiments/bench_forward.py once imported EVAL_CHUNK from where it no longer was)."""
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "experiments").glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_imports(name):
    module = importlib.import_module(f"experiments.{name}")
    assert callable(getattr(module, "main", None)), f"experiments/{name}.py has no main()"
