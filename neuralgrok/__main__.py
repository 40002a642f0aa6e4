"""Lets `python -m neuralgrok` (and `accelerate launch -m neuralgrok`) run the command line."""
import sys

from .cli import main

sys.exit(main())
