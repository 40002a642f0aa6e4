"""Re-runs committed runs from their own config.json and compares the metrics: the same as ``neuralgrok rerun`` (neuralgrok/sweep/rerun.py)."""
import sys

from neuralgrok.sweep.rerun import main

if __name__ == "__main__":
    sys.exit(main())
