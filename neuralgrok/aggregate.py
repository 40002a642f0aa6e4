"""Run folders as data: reading them, grouping runs by task and method, and the rows of the steps-to-accuracy table."""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .methods import METHODS, label_of, rank_of
from .runfolder import read_metrics

# Steps to 95% test accuracy published in NeuralGrok (Zhou et al., 2025), Table 1; usable as ``paper_table``.
PAPER_TABLE_1: dict[tuple[str, str], int | str] = {
    ("(a+b) mod 97", "standard"): 1650, ("(a+b) mod 97", "grokfast_ma"): 1780,
    ("(a+b) mod 97", "grokfast_ema"): 1820, ("(a+b) mod 97", "neuralgrok"): 900,
    ("(a-b) mod 97", "standard"): 4330, ("(a-b) mod 97", "grokfast_ma"): 2990,
    ("(a-b) mod 97", "grokfast_ema"): 1340, ("(a-b) mod 97", "neuralgrok"): 1467,
    ("(a*b) mod 97", "standard"): 1280, ("(a*b) mod 97", "grokfast_ma"): 1150,
    ("(a*b) mod 97", "grokfast_ema"): 1400, ("(a*b) mod 97", "neuralgrok"): 918,
    ("(a*a-b) mod 97", "standard"): 4820, ("(a*a-b) mod 97", "grokfast_ma"): 3830,
    ("(a*a-b) mod 97", "grokfast_ema"): 2730, ("(a*a-b) mod 97", "neuralgrok"): 1845,
    ("(a*c+b*d-e) mod 7", "standard"): "fails in 1e6", ("(a*c+b*d-e) mod 7", "grokfast_ma"): 8853,
    ("(a*c+b*d-e) mod 7", "grokfast_ema"): "fails in 1e6", ("(a*c+b*d-e) mod 7", "neuralgrok"): 1896,
}




@dataclass
class Run:
    """One run folder: its config, its metrics lines (complete ones) and its summary (None while unfinished)."""

    path: Path
    config: dict
    metrics: list[dict]
    summary: dict | None
    skipped_lines: int = 0

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def label(self) -> str:
        """The name of the run's method in reports: ``label`` when set and non-empty, else ``method``.

        A run in reduced precision is marked (``"standard bf16"``) unless its label names the precision,
        so that a report never pools float32 and bf16 runs of one method.
        """
        label = self.config.get("label")
        label = label if isinstance(label, str) and label.strip() else label_of(self.method)
        precision = self.config.get("mixed_precision", "no")
        return label if precision in ("no", None) or precision in label else f"{label} {precision}"

    @property
    def task_label(self) -> str:
        return task_label(self.config.get("task", "?"), self.config.get("p"))

    @property
    def max_steps(self) -> int | None:
        return self.config.get("max_steps")


def task_label(task: str, p: int | None) -> str:
    """``(a*b) mod 97`` from the task (a paper-task name or an expression) and the modulus."""
    from .groups import GROUP_TASKS, GroupTask
    from .tasks import PAPER_TASKS
    if task in GROUP_TASKS:
        return GroupTask(task, GROUP_TASKS[task][0]).label
    task = PAPER_TASKS[task][0] if task in PAPER_TASKS else task
    return f"({task}) mod {p}" if p is not None else str(task)


def load_run(run_dir: str | Path) -> Run:
    """Reads a run folder. Raises FileNotFoundError without config.json; tolerates a truncated metrics line."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{run_dir / 'config.json'}: not a JSON object")
    metrics, skipped = read_metrics(run_dir / "metrics.jsonl")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return Run(run_dir, config, metrics, summary, skipped)


def order_key(label: str, method: str) -> tuple:
    """Tables and figures list methods in the registry's order (methods.py), each method's variants after it."""
    norm = norm_method(label)
    if norm in METHODS:
        return (rank_of(norm), 0, label)
    return (rank_of(method), 1, label)


def norm_method(s: str) -> str:
    return str(s).strip().lower().replace("-", "_").replace(" ", "_")


def _norm_task(s: str) -> str:
    s = str(s).lower()
    for a, b in (("·", "*"), ("×", "*"), ("−", "-"), ("–", "-")):
        s = s.replace(a, b)
    return "".join(s.split())


def _paper_value(paper_table: dict | None, task_lab: str, task: str, label: str) -> Any:
    """The published number for (task label, method label); keys may be tuples or nested dicts, spelt loosely."""
    if not paper_table:
        return None
    flat: dict[tuple[str, str], Any] = {}
    for k, v in paper_table.items():
        if isinstance(v, dict):
            flat.update({(_norm_task(k), norm_method(m)): x for m, x in v.items()})
        elif isinstance(k, tuple) and len(k) == 2:
            flat[(_norm_task(k[0]), norm_method(k[1]))] = v
    for t in (task_lab, task):
        v = flat.get((_norm_task(t), norm_method(label)))
        if v is not None:
            return v
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _median_spread(values: list[float]) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return _num(med)
    return f"{_num(med)} ({_num(min(values))}–{_num(max(values))})"


def first_row_at(metrics: list[dict], threshold: float, key: str = "test_acc") -> dict | None:
    """The first metrics row whose ``key`` is at or above ``threshold`` (how summary.json's steps_to_N are found)."""
    return next((r for r in metrics if finite(r.get(key)) and r[key] >= threshold), None)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Group:
    task_label: str
    task: str
    label: str
    method: str
    runs: list[Run] = field(default_factory=list)

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.finished]

    @property
    def running(self) -> list[Run]:
        return [r for r in self.runs if not r.finished]

    def reached(self, pct: int) -> list[int]:
        """Steps to ``pct``% test accuracy of the finished seeds that reached it."""
        return [r.summary[f"steps_to_{pct}"] for r in self.finished if r.summary.get(f"steps_to_{pct}") is not None]

    def fewest_steps_ran(self) -> int | None:
        """The shortest finished run's length (its step count, else its cap): what "not within N steps" means."""
        ran = [s for s in (r.summary.get("steps") or r.max_steps for r in self.finished) if s is not None]
        return min(ran) if ran else None


def group_runs(runs: list[Run]) -> dict[str, list[Group]]:
    """Runs grouped by task (in order of first appearance) and method label (in the palette order)."""
    by_task: dict[str, dict[str, Group]] = {}
    for r in runs:
        groups = by_task.setdefault(r.task_label, {})
        g = groups.setdefault(r.label, Group(r.task_label, str(r.config.get("task", "?")), r.label, r.method))
        g.runs.append(r)
    return {t: sorted(gs.values(), key=lambda g: order_key(g.label, g.method)) for t, gs in by_task.items()}


def table_row(g: Group, paper_table: dict | None) -> dict[str, str]:
    fin, n_run = g.finished, len(g.running)
    n = len(fin)
    running = f" +{n_run} (running)" if n_run else ""
    caps = sorted({r.max_steps for r in g.runs if r.max_steps is not None})
    row = {"task": f"`{g.task_label}`", "method": g.label}
    for pct in (95, 99):
        reached = g.reached(pct)
        if n == 0:
            cell = "(running)"
        elif not reached:
            ran = g.fewest_steps_ran()
            cell = f"not within {ran} steps" if ran is not None else "not reached"
        else:
            cell = _median_spread(reached)
        row[f"steps to {pct}%"] = cell
        row[f"seeds reached {pct}%"] = f"{len(reached)}/{n}{running}"
    row["step cap"] = "—" if not caps else (str(caps[0]) if len(caps) == 1 else f"{caps[0]}–{caps[-1]}")
    hits = [hit for r in fin if (hit := first_row_at(r.metrics, 0.95)) is not None]
    for column, clock in (("wall s to 95%", "elapsed_s"), ("CPU s to 95%", "cpu_s")):
        seconds = [hit[clock] for hit in hits if finite(hit.get(clock))]
        row[column] = f"{statistics.median(seconds):.1f}" if seconds else "—"
    sps = [r.summary["seconds_per_step"] for r in fin if finite(r.summary.get("seconds_per_step"))]
    row["s/step"] = f"{statistics.median(sps):.3g}" if sps else "—"
    paper = _paper_value(paper_table, g.task_label, g.task, g.label)
    row["paper"] = "—" if paper is None else str(paper)
    return row


def markdown_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class StepsBar:
    """One method on one task for the steps-vs-paper figure: our seeds' steps to 95%, the cap, the paper's number."""

    label: str
    reached: list[int]
    n_finished: int
    cap: int | None
    paper: int | str | None


def steps_vs_paper(grouped: dict[str, list[Group]], paper_table: dict) -> dict[str, list[StepsBar]]:
    """Per task, one entry per method with finished runs: our steps to 95% beside the published number."""
    out: dict[str, list[StepsBar]] = {}
    for t, groups in grouped.items():
        bars = []
        for g in groups:
            if g.finished:
                bars.append(StepsBar(g.label, sorted(g.reached(95)), len(g.finished), g.fewest_steps_ran(),
                                      _paper_value(paper_table, g.task_label, g.task, g.label)))
        if any(b.paper is not None for b in bars):
            out[t] = bars
    return out


def has_key(grouped: dict[str, list[Group]], key: str) -> bool:
    return any(finite(m.get(key)) for gs in grouped.values() for g in gs for r in g.runs for m in r.metrics)



# -- weight-decay sweeps ----------------------------------------------------------------------------

@dataclass
class SweepPoint:
    """One value of a swept option (weight decay, say) of one method on one task: its group of seeds."""

    value: float
    group: Group

    @property
    def weight_decay(self) -> float:
        return self.value


def option_sweeps(grouped: dict[str, list[Group]], option: str = "weight_decay",
                  min_points: int = 2) -> dict[str, dict[str, list[SweepPoint]]]:
    """Per task, per method family (the grid's ``family``), its values of the swept ``option`` in order.

    Only families run at ``min_points`` or more values count as swept.
    """
    out: dict[str, dict[str, list[SweepPoint]]] = {}
    for t, groups in grouped.items():
        families: dict[str, list[SweepPoint]] = {}
        for g in groups:
            config = g.finished[0].config if g.finished else {}
            if config.get("swept") == option:  # the grid's record of a swept cell (its family, its option)
                families.setdefault(config["family"], []).append(SweepPoint(float(config[option]), g))
        swept = {f: sorted(ps, key=lambda p: p.value) for f, ps in families.items() if len(ps) >= min_points}
        if swept:
            out[t] = swept
    return out


def weight_decay_sweeps(grouped: dict[str, list[Group]],
                        min_points: int = 2) -> dict[str, dict[str, list[SweepPoint]]]:
    """Per task, per method family ("standard" for "standard wd=0.001"), its swept weight decays in order."""
    return option_sweeps(grouped, "weight_decay", min_points)


def swept_options(grouped: dict[str, list[Group]]) -> list[str]:
    """The options that the grid swept for these runs, in order of first appearance."""
    found = [g.finished[0].config.get("swept") for gs in grouped.values() for g in gs if g.finished]
    return list(dict.fromkeys(o for o in found if o))


def best_point(points: list[SweepPoint]) -> SweepPoint:
    """The best weight decay of a sweep: the largest share of seeds reaching 95%, then the fewest median steps.

    Only decays finished on as many seeds as the most complete one compete, so that a decay whose
    other seeds are still running cannot win on one lucky seed.
    """
    def score(p: SweepPoint) -> tuple:
        reached = p.group.reached(95)
        return (-len(reached) / len(p.group.finished), statistics.median(reached) if reached else math.inf)
    most = max(len(p.group.finished) for p in points)
    return min((p for p in points if len(p.group.finished) == most), key=score)


def _steps_at_decay(points: list[SweepPoint], decay: float) -> str:
    """Steps to 95% at one decay of a sweep with the share of seeds that reached it; "—" where it was not run."""
    match = [p for p in points if math.isclose(p.weight_decay, decay)]
    if not match:
        return "—"
    reached, finished = match[0].group.reached(95), match[0].group.finished
    share = f"({len(reached)}/{len(finished)})"
    return f"{_median_spread(reached)} {share}" if reached else f"not reached {share}"


def best_tuned_rows(sweeps: dict[str, dict[str, list[SweepPoint]]],
                    default_decay: float | None = None) -> list[dict[str, str]]:
    """Each swept method at its best weight decay (:func:`best_point`), task by task.

    Among the decays tried, those finished on fewer seeds than the method's most complete one
    (so not compared) carry their seed count. With ``default_decay`` (the papers' shared
    setting), a column gives each method's steps at that decay beside its best ("—" where it
    was not run there).
    """
    rows = []
    for families in sweeps.values():
        for family, points in families.items():
            best = best_point(points)
            reached, n = best.group.reached(95), len(best.group.finished)
            at_default = {} if default_decay is None else {
                f"steps to 95% at {default_decay:g}": _steps_at_decay(points, default_decay)}
            most = max(len(p.group.finished) for p in points)
            tried = [f"{p.weight_decay:g}" + ("" if len(p.group.finished) == most else
                                              f" ({len(p.group.finished)} seed{'s' * (len(p.group.finished) != 1)})")
                     for p in points]
            rows.append({"task": f"`{best.group.task_label}`", "method": family,
                         "best weight decay": f"{best.weight_decay:g}",
                         "steps to 95%": _median_spread(reached) if reached else "not reached",
                         "seeds reached 95%": f"{len(reached)}/{n}", **at_default,
                         "weight decays tried": ", ".join(tried)})
    return rows
