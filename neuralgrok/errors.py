"""User errors: one small base class, so that the command line prints any of them as one line and exits 2.

Each names what the user asked for that cannot be done (a config value, a task, a file, a grid
cell); code that checks input raises the subclass of its concern, and nothing else here imports.
"""
from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input; its message is one line naming the problem."""


class ConfigError(UserError):
    """A configuration value that cannot be run."""


class TaskError(UserError):
    """A task specification that cannot produce a dataset."""


class AmplifierFileError(UserError):
    """A missing, corrupt or mismatched amplifier file."""


class PresetError(UserError):
    """A published-setup preset asked for a task it has no settings for."""


class GridError(UserError):
    """A grid file that cannot be run: not TOML, an unknown table or key, or a cell whose options are invalid."""
