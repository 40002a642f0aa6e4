"""A run's clocks: wall-clock and CPU seconds so far, carried across resumes, and the metrics fields they fill.

``elapsed_s`` (wall-clock) counts whatever else the machine does and any pause of the process; ``cpu_s`` (the
training process's CPU time, all its threads) counts only the run's own work, so it is the steadier measure of
what a method costs on a shared machine. Neither is reproducible, so comparisons of runs leave both out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

CLOCK_FIELDS = ("elapsed_s", "cpu_s")


def untimed(row: dict) -> dict:
    """A metrics line without its clock fields, which no two runs share."""
    return {k: v for k, v in row.items() if k not in CLOCK_FIELDS}


@dataclass
class RunClock:
    """Seconds of one run so far, from ``wall_before`` / ``cpu_before`` at a resume (``cpu_before`` None: a
    checkpoint older than the CPU record, whose CPU time is then unknown)."""

    wall_before: float = 0.0
    cpu_before: float | None = 0.0
    _wall0: float = field(init=False)
    _cpu0: float = field(init=False)

    def __post_init__(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self._wall0

    def cpu(self) -> float | None:
        return None if self.cpu_before is None else self.cpu_before + time.process_time() - self._cpu0

    def fields(self) -> dict[str, float]:
        """The metrics line's clock fields (``cpu_s`` only where known)."""
        cpu = self.cpu()
        return {"elapsed_s": round(self.wall(), 3), **({} if cpu is None else {"cpu_s": round(cpu, 3)})}
