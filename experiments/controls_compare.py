"""Issue 39's comparison: the learnt coefficients against each control and the best tuned baseline, per task.

    python experiments/controls_compare.py experiments/results/controls/arms \
        [--bench experiments/results/bench/controls/bench.json]

Reads the arms' runs (grids/controls/arms.toml, shuffled.toml, unseen.toml; a run's arm is the method part of its
folder name, ``TASK-ARM-sSEED``) and prints, per task:
- every arm's steps to 95% by seed (a seed without 95% within its cap marked ``>cap`` and ranked slowest), median,
  wall-clock and CPU seconds to 95% (medians of the runs' own clocks, ``elapsed_s`` and ``cpu_s`` in their
  metrics), and the lowest test accuracy after first reaching 95%;
- the learnt arm against the tuned form, the shuffled pattern (the three permutations pooled) and the best of the
  other arms by median: the ratio of medians with a 95% percentile-bootstrap interval over seeds (2,000 resamples,
  seed 0), the exact one-sided Mann-Whitney p that the learnt arm is faster, and the ratios of median wall-clock
  and CPU seconds to 95% (a learnt run that missed 95% counted as never, another arm's at the clock of its last
  step: a bound that can only favour the other arm);
and then the verdicts the study's README fixes: the learning does work on a task when the learnt arm beats both the
tuned form and the shuffled pattern at p <= 0.05; on a task no decision saw (no shuffled arm there) the coefficients
carry when the learnt arm beats the tuned form at p <= 0.05, and transfer is shown when they carry on at least two;
the target is met on a task when the steps ratio to the best other arm by steps (with p <= 0.05) and the wall-clock
ratio to the best other arm by seconds are both <= 0.8.
Wall-clock seconds are measured only when the arms ran one run pinned per core on an otherwise idle machine (the
study's README says which did); CPU seconds, which other work on the machine does not inflate, are the check beside
them.  With ``--bench`` (``experiments/bench_methods.py``'s bench.json over the arms' grid cells) each comparison
also shows the benchmark-priced ratio: the steps ratio times the two arms' measured milliseconds a step, on the
task's own benchmark where one was given (its rows name the task), else on a benchmark whose rows name none.
Last, which host (CPU and instruction set, from each run's summary) trained which seeds, naming any seed whose runs
span more than one host. With ``--figure PATH`` it also draws every run's steps to 95%, one panel a task, one row an
arm, beside each arm's lowest test accuracy after first reaching 95%.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from neuralgrok.aggregate import first_row_at, load_run, markdown_table, task_label
from neuralgrok.claims import mann_whitney_less, median_ratio_interval, stability, steps_or_cap
from neuralgrok.clock import CLOCK_FIELDS
from neuralgrok.figures import _save_figure, _task_grid
from neuralgrok.runfolder import grid_runs

LEARNT, TUNED, SHUFFLED = "learnt", "tuned_form", "shuffled"
ALPHA, TARGET = 0.05, 0.8
DEVELOPED = tuple(task_label(t, 97) for t in ("a+b", "a-b", "a*b", "a*a-b"))  # the tasks every decision saw
NEEDED = {"developed": 3, "unseen": 2}  # tasks at the target for the study's target; unseen: also for transfer
CARRIES = "carries (beats the tuned form)"  # the transfer reading's column, on tasks no decision saw


@dataclass
class Seed:
    """One run's outcome: steps to 95% (cap + 0.5 when missed), whether it got there, its low point after 95%, and
    its clocks (``elapsed_s``, ``cpu_s`` where logged) at first reaching 95% and at its last step."""

    seed: int
    steps: float
    reached: bool
    lowest_after: float | None
    at_95: dict[str, float] = field(default_factory=dict)
    at_end: dict[str, float] = field(default_factory=dict)
    host: str = "not recorded"

    def clock(self, name: str, missed: float | None = None) -> float | None:
        """Seconds to 95% on clock ``name``; for a miss, ``missed`` if given, else the clock at the last step."""
        if self.reached:
            return self.at_95.get(name)
        return missed if missed is not None else self.at_end.get(name)

    def shown(self) -> str:
        return f"{self.steps:,.0f}" if self.reached else f">{self.steps - 0.5:,.0f}"


def arm_of(run_dir: Path) -> str:
    """The run's arm from its folder name ``TASK-ARM-sSEED``; the shuffled permutations share one arm."""
    arm = run_dir.name.split("-")[1]
    return SHUFFLED if arm.startswith(SHUFFLED) else arm


def outcomes(folder: Path) -> dict[str, dict[str, list[Seed]]]:
    """task label -> arm -> finished runs' outcomes (sorted by seed)."""
    out: dict[str, dict[str, list[Seed]]] = defaultdict(lambda: defaultdict(list))
    for run_dir in grid_runs(folder):
        run = load_run(run_dir)
        if not run.finished:
            continue
        reached = run.summary.get("steps_to_95") is not None
        at = first_row_at(run.metrics, 0.95) if reached else None
        out[run.task_label][arm_of(run.path)].append(
            Seed(run.config["seed"], steps_or_cap(run), reached, stability(run.metrics).lowest_after,
                 _clocks(at), _clocks(run.metrics[-1] if run.metrics else None), host_label(run.summary)))
    for arms in out.values():
        for seeds in arms.values():
            seeds.sort(key=lambda s: s.seed)
    return out


def host_label(summary: dict) -> str:
    """``CPU (instruction set)`` from a summary's ``host`` (recorded since session twenty), else "not recorded"."""
    host = summary.get("host") or {}
    return f"{host.get('cpu')} ({host.get('isa')})" if host else "not recorded"


def host_rows(data: dict[str, dict[str, list[Seed]]]) -> tuple[list[dict[str, str]], list[int]]:
    """Which hosts trained which seeds (one row a host), and the seeds whose runs span more than one host: the study
    runs a seed block whole on one host, so that a seconds ratio never compares two machines."""
    seeds_of, runs_of, hosts_of = defaultdict(set), defaultdict(int), defaultdict(set)
    for arms in data.values():
        for seeds in arms.values():
            for s in seeds:
                seeds_of[s.host].add(s.seed)
                runs_of[s.host] += 1
                hosts_of[s.seed].add(s.host)
    rows = [{"host": host, "seeds": ", ".join(map(str, sorted(seeds))), "runs": str(runs_of[host])}
            for host, seeds in sorted(seeds_of.items())]
    return rows, sorted(seed for seed, hosts in hosts_of.items() if len(hosts) > 1)


def _clocks(row: dict | None) -> dict[str, float]:
    return {k: row[k] for k in CLOCK_FIELDS if k in row} if row else {}


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):,.0f}" if known else "–"


def arm_rows(task: str, arms: dict[str, list[Seed]]) -> list[dict[str, str]]:
    """One row per arm: its seeds' steps, medians and the lowest accuracy after 95%."""
    rows = []
    for arm, seeds in sorted(arms.items(), key=lambda kv: (kv[0] != LEARNT, kv[0])):
        lows = [s.lowest_after for s in seeds if s.lowest_after is not None]
        rows.append({"task": task, "arm": arm, "seeds": f"{seeds[0].seed}-{seeds[-1].seed} ({len(seeds)})",
                     "steps to 95% by seed": " / ".join(s.shown() for s in seeds),
                     "median": f"{statistics.median(s.steps for s in seeds):,.0f}",
                     "at 95%": f"{sum(s.reached for s in seeds)}/{len(seeds)}",
                     "seconds to 95% (median)": _median([s.clock("elapsed_s") for s in seeds if s.reached]),
                     "CPU seconds to 95% (median)": _median([s.clock("cpu_s") for s in seeds if s.reached]),
                     "lowest after 95%": f"{min(lows):.2f}" if lows else "–"})
    return rows


@dataclass
class Comparison:
    """The learnt arm against one other on the seeds both ran."""

    other: str
    ratio: float
    interval: tuple[float, float]
    p: float
    seconds_ratio: float | None = None
    cpu_ratio: float | None = None
    priced_ratio: float | None = None

    def row(self, task: str) -> dict[str, str]:
        lo, hi = self.interval
        return {"task": task, "learnt against": self.other, "ratio of medians": f"{self.ratio:.2f}",
                "95% interval": f"{lo:.2f}-{hi:.2f}", "p (learnt faster)": f"{self.p:.3g}",
                "seconds ratio": _ratio(self.seconds_ratio), "CPU seconds ratio": _ratio(self.cpu_ratio),
                "benchmark-priced ratio": _ratio(self.priced_ratio)}


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def step_costs(benches: list[Path]) -> dict[str | None, dict[str, float]]:
    """Task label -> arm name -> ms a step, from bench_methods.py's bench.json files (cells ``GRID:ARM[+overrides]``).
    A row names the task it trained since session twenty-four; an older file's rows come under None, the costs
    for every task that no file benchmarked itself."""
    costs: dict[str | None, dict[str, float]] = defaultdict(dict)
    for bench in benches:
        for row in json.loads(bench.read_text())["rows"]:
            costs[row.get("task")][row["cell"].rsplit(":", 1)[1].split("+")[0]] = row["ms_per_step"]
    return dict(costs)


def task_costs(costs: dict[str | None, dict[str, float]] | None, task: str) -> dict[str, float] | None:
    """The step costs that price ``task``: its own benchmark's, else the untasked one's, else None."""
    return None if not costs else costs.get(task, costs.get(None))


def seconds_ratio(mine: list[Seed], theirs: list[Seed], clock: str = "elapsed_s") -> float | None:
    """Median seconds to 95% on ``clock``, learnt over other: a learnt miss is never (inf), another arm's miss its
    last clock (a lower bound on its time to 95%), so the ratio can only be too high; None where a run has no
    such clock."""
    learnt = [s.clock(clock, missed=math.inf) for s in mine]
    other = [s.clock(clock) for s in theirs]
    if None in learnt or None in other:
        return None
    return statistics.median(learnt) / statistics.median(other)


def compare(arms: dict[str, list[Seed]], other: str) -> Comparison | None:
    """The learnt arm on the other arm's seeds against the other arm (every run of it; None without both)."""
    theirs = arms.get(other, [])
    seeds = {s.seed for s in theirs}
    mine = [s for s in arms.get(LEARNT, []) if s.seed in seeds]
    if not mine or not theirs:
        return None
    a, b = [s.steps for s in mine], [s.steps for s in theirs]
    return Comparison(other, statistics.median(a) / statistics.median(b), median_ratio_interval(a, b),
                      mann_whitney_less(a, b), seconds_ratio(mine, theirs), seconds_ratio(mine, theirs, "cpu_s"))


def best_other(arms: dict[str, list[Seed]], clock: str | None = None) -> str | None:
    """The fastest arm among the tuned form and the baselines (not the shuffled controls): by median steps, or with
    ``clock`` by median seconds to 95% on it (a miss at its last clock; an arm without the clock is never fastest)."""
    def median(arm: str) -> float:
        if clock is None:
            return statistics.median(s.steps for s in arms[arm])
        seconds = [s.clock(clock) for s in arms[arm]]
        return math.inf if None in seconds else statistics.median(seconds)

    others = [a for a in arms if a not in (LEARNT, SHUFFLED)]
    return min(others, key=lambda a: (median(a), a)) if others else None


def verdicts(task: str, arms: dict[str, list[Seed]], costs: dict[str, float] | None = None
             ) -> tuple[list[Comparison], dict[str, str]]:
    """The task's comparisons and its two verdicts: 'yes', 'no', or which arm is missing; ``costs`` (ms a step per
    arm) adds the benchmark-priced ratios."""
    best, quickest = best_other(arms), best_other(arms, "elapsed_s")
    names = [n for n in (TUNED, SHUFFLED, best, quickest) if n in arms]
    comps = {n: compare(arms, n) for n in dict.fromkeys(names)}
    for name, comp in comps.items():
        if comp is not None and costs and LEARNT in costs and name in costs:
            comp.priced_ratio = comp.ratio * costs[LEARNT] / costs[name]
    missing = [n for n in (LEARNT, TUNED, SHUFFLED) if n not in arms]
    controls = [comps.get(TUNED), comps.get(SHUFFLED)]
    learning = (f"not run ({', '.join(missing)} missing)" if missing else
                "no shared seeds" if None in controls else
                "yes" if all(c.p <= ALPHA for c in controls) else "no")
    form = comps.get(TUNED)
    carries = ("–" if task in DEVELOPED else "not run" if form is None else "yes" if form.p <= ALPHA else "no")
    top, wall = comps.get(best) if best else None, comps.get(quickest) if quickest else None
    target = ("not run" if top is None or wall is None else
              "yes" if top.ratio <= TARGET and top.p <= ALPHA and wall.seconds_ratio is not None
              and wall.seconds_ratio <= TARGET else "no")
    shown = [c for c in comps.values() if c is not None]
    return shown, {"task": task, "best other arm (steps)": best or "–", "best other arm (seconds)": quickest or "–",
                   "learning does work": learning, CARRIES: carries, "target met": target}


def study_verdict(verdict_rows: list[dict[str, str]]) -> str:
    """One line: on how many developed and unseen tasks each verdict holds, and whether the study's target is met
    (a family with fewer tasks run than it needs cannot meet it yet)."""
    def count(developed: bool, key: str) -> tuple[int, int]:
        rows = [r for r in verdict_rows if (r["task"] in DEVELOPED) == developed]
        return sum(r.get(key) == "yes" for r in rows), len(rows)

    (dev, n_dev), (new, n_new) = count(True, "target met"), count(False, "target met")
    met = dev >= NEEDED["developed"] and new >= NEEDED["unseen"]
    learning, n_learning = count(True, "learning does work")
    line = (f"target met on {dev} of {n_dev} developed mod-97 tasks (needs {NEEDED['developed']}) and {new} of "
            f"{n_new} unseen tasks (needs {NEEDED['unseen']}): study target {'met' if met else 'not met'}; "
            f"the learning does work on {learning} of {n_learning} developed tasks")
    if not n_new:
        return line
    carried, _ = count(False, CARRIES)
    return (line + f"; the coefficients carry to {carried} of {n_new} unseen tasks (needs {NEEDED['unseen']}): "
            f"transfer {'shown' if carried >= NEEDED['unseen'] else 'not shown'}")


ARM_COLOURS = {LEARNT: "#d62728", TUNED: "#ff9896", SHUFFLED: "#c5b0d5", "adamw": "#8c564b",
               "orthograd": "#17becf", "grokfast_ma": "#ff7f0e"}  # other arms grey


def plot_steps(data: dict[str, dict[str, list[Seed]]], path: Path) -> dict[str, list[tuple]]:
    """Every run's steps to 95% (log axis; a run without 95% as an open triangle at its cap), each arm's median as a
    bar, and its lowest test accuracy after first reaching 95% at the right; returns task -> the rows drawn, top to
    bottom: (arm, [(steps, reached)], median steps, lowest accuracy after 95% or None)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    tasks = sorted(data)
    plt, fig, axes = _task_grid(len(tasks))
    drawn = {}
    for ax, task in zip(axes.flat, tasks):
        order = sorted(data[task], key=lambda a: (a != LEARNT, a != TUNED, a != SHUFFLED, a), reverse=True)
        drawn[task] = []
        for y, arm in enumerate(order):
            seeds, colour = data[task][arm], ARM_COLOURS.get(arm, "0.5")
            hit = [s.steps for s in seeds if s.reached]
            miss = [s.steps - 0.5 for s in seeds if not s.reached]
            ax.plot(hit, [y] * len(hit), "o", color=colour, ms=5, alpha=0.8)
            ax.plot(miss, [y] * len(miss), ">", mfc="none", color=colour, ms=7)
            median = statistics.median(s.steps for s in seeds)
            ax.plot([median], [y], "|", color="k", ms=16, mew=2)
            lows = [s.lowest_after for s in seeds if s.lowest_after is not None]
            low = min(lows) if lows else None
            ax.annotate("–" if low is None else f"{low:.2f}", (1.01, y), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8)
            drawn[task].insert(0, (arm, [(s.steps, s.reached) for s in seeds], median, low))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(range(len(order)), order, fontsize=8)
        ax.set(title=task, xlabel="steps to 95% test accuracy (log)", ylim=(-0.6, len(order) - 0.4))
        ax.annotate("lowest\nafter 95%", (1.01, len(order) - 0.45), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7)
        ax.grid(alpha=0.3, axis="x", lw=0.4, which="both")
    fig.suptitle("dots: seeds; open triangles: no 95% by the cap; bars: medians", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="the arms' grid folder (--out of arms.toml, shuffled.toml, unseen.toml)")
    ap.add_argument("--bench", type=Path, nargs="+", help="bench_methods.py's bench.json files over the arms' grid "
                    "cells, one per task benchmarked: adds the benchmark-priced ratios (a file whose rows name no "
                    "task prices every task without its own)")
    ap.add_argument("--figure", type=Path, help="also draw every run's steps to 95% per task and arm to this PNG")
    args = ap.parse_args(argv)
    costs = step_costs(args.bench) if args.bench else None
    data = outcomes(args.folder)
    if not data:
        raise SystemExit(f"controls_compare: no finished runs under {args.folder / 'runs'}")
    rows, cmp_rows, verdict_rows = [], [], []
    for task, arms in sorted(data.items()):
        rows += arm_rows(task, arms)
        shown, verdict = verdicts(task, arms, task_costs(costs, task))
        cmp_rows += [c.row(task) for c in shown]
        verdict_rows.append(verdict)
    print(markdown_table(rows, list(rows[0])))
    if cmp_rows:
        print("\n" + markdown_table(cmp_rows, list(cmp_rows[0])))
    print("\n" + markdown_table(verdict_rows, list(verdict_rows[0])))
    print("\n" + study_verdict(verdict_rows))
    own = [task for task in sorted(data) if costs and task in costs]
    if own:
        print(f"\nbenchmark-priced at their own step costs: {', '.join(own)}; any other task at those of the "
              f"benchmark that names no task" + ("" if None in costs else " (none given: not priced)"))
    hosts, split = host_rows(data)
    print("\n" + markdown_table(hosts, list(hosts[0])))
    if split:
        print(f"\nseeds whose runs span more than one host (their seconds compare machines): "
              f"{', '.join(map(str, split))}")
    if args.figure:
        plot_steps(data, args.figure)
        print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
