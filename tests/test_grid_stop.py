"""neuralgrok.sweep.stop.GridStop: the grid's stop signal reaches every run it started, before or after the signal,
and the grid's own handlers are put back when it is done."""
import signal
import subprocess
import sys

from neuralgrok.sweep.stop import SIGNALS, GridStop


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_run_started_before_or_after_the_signal_gets_it_and_the_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in SIGNALS}
    with GridStop() as stop:
        assert not stop.stopping and all(signal.getsignal(s) == stop._handle for s in SIGNALS)
        running = _sleeper()
        stop.started(running)
        signal.raise_signal(signal.SIGUSR2)  # as `kill -USR2 GRID_PID`: the grid's handler runs, the grid lives on
        assert stop.stopping and stop.signum == signal.SIGUSR2
        late = _sleeper()  # a cell whose process started as the signal arrived
        stop.started(late)
        assert running.wait(timeout=30) == -signal.SIGUSR2 and late.wait(timeout=30) == -signal.SIGUSR2
        assert "stopped by SIGUSR2" in stop.message() and "the same command continues" in stop.message()
    assert {s: signal.getsignal(s) for s in SIGNALS} == before
