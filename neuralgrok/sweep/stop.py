"""Stopping a local grid cleanly: a stop signal reaches its running runs, and no further cell starts.

On SIGTERM, SIGINT or SIGUSR2 the grid passes the signal on to every training process it started (each writes a
checkpoint and exits, as ``neuralgrok train`` does on its own), starts nothing more, and exits with 128 + the
signal once they have ended; the same command continues every stopped run from its checkpoint. Without this a
signal to the grid alone (``kill PID``, a scheduler's warning to the batch script) would end the grid and leave its
runs training on, unsupervised.
"""
from __future__ import annotations

import signal
import subprocess
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class GridStop:
    """While entered (in the main thread), catches the stop signals for the grid and its running runs."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GridStop":
        if threading.current_thread() is threading.main_thread():  # only the main thread may catch signals
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            self._signal(proc, signum)

    @staticmethod
    def _signal(proc: subprocess.Popen, signum: int) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass  # it ended in between

    def started(self, proc: subprocess.Popen) -> None:
        """A run's training process has started (``run_cell``'s ``on_start``): signal it too if the grid is stopping."""
        with self._lock:
            self._procs.add(proc)
        if self.signum is not None:
            self._signal(proc, self.signum)

    @property
    def stopping(self) -> bool:
        return self.signum is not None

    def message(self) -> str:
        return (f"neuralgrok grid: stopped by {signal.Signals(self.signum).name}; its running runs stopped at a "
                "checkpoint and no further cell started; the same command continues them")
