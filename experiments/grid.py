"""Runs a grid of training runs (tasks × methods × seeds) from a TOML file: the same as ``neuralgrok grid`` (neuralgrok/sweep/grid.py)."""
import sys

from neuralgrok.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
