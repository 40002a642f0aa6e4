"""Shared test settings: a task and model small enough to grok in seconds on two CPU cores."""

# (a+b) mod 23 with 70% of the table for training, a 1-layer width-64 transformer and AdamW with strong
# decoupled weight decay: test accuracy passes 95% within about 400-500 steps (a few seconds) for seeds 0-2.
TINY = ["--task", "a+b", "--p", "23", "--train-frac", "0.7", "--d-model", "64", "--n-layers", "1",
        "--batch-size", "128", "--optimizer", "adamw", "--weight-decay", "1.0", "--lr", "1e-2",
        "--eval-every", "20", "--stop-acc", "0.95", "--stop-patience", "2", "--quiet"]


def experiment_script(name: str):
    """Imports ``experiments/NAME.py`` (a script, not a package module) so that a test can call its functions."""
    import importlib.util
    import sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module
