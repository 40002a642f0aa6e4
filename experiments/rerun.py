"""Re-runs committed runs from their own config.json and compares the metrics: the same as ``neuralgrok rerun`` (neuralgrok/rerun.py)."""
import sys

from neuralgrok.rerun import main

if __name__ == "__main__":
    sys.exit(main())
