"""Comparison report from run folders: report.md with the steps-to-accuracy table, and accuracy / AGE figures."""
from __future__ import annotations

import io
import json
import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runfolder import read_metrics, write_atomic

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

# Colour and order of the methods, the same in every figure: standard, weight-decay (standard-method) variants,
# gradient normalisation, Grokfast-MA, Grokfast-EMA, ⊥Grad, NeuralGrok, then any other label.
_RANK = {"standard": 0, "gradnorm": 2, "grokfast_ma": 3, "grokfast_ema": 4, "orthograd": 5, "neuralgrok": 6}
_CANONICAL_COLOURS = {"standard": "#4d4d4d", "gradnorm": "#9467bd", "grokfast_ma": "#1f77b4",
                      "grokfast_ema": "#2ca02c", "orthograd": "#e6a817", "neuralgrok": "#d62728"}
_WD_COLOURS = ("#8c564b", "#bcbd22", "#c49c94", "#dbdb8d", "#7f7f7f")
_OTHER_COLOURS = ("#ff7f0e", "#17becf", "#e377c2", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#9edae5",
                  "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b")
_DPI = 120


# -- reading run folders ---------------------------------------------------------------------------

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
        """The name of the run's method in reports: ``label`` when set and non-empty, else ``method``."""
        label = self.config.get("label")
        return label if isinstance(label, str) and label.strip() else self.method

    @property
    def task_label(self) -> str:
        return task_label(self.config.get("task", "?"), self.config.get("p"))

    @property
    def max_steps(self) -> int | None:
        return self.config.get("max_steps")


def task_label(task: str, p: int | None) -> str:
    """``(a*b) mod 97`` from the task (a paper-task name or an expression) and the modulus."""
    try:
        from .tasks import PAPER_TASKS
        task = PAPER_TASKS[task][0] if task in PAPER_TASKS else task
    except ImportError:  # the report works without the training stack
        pass
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


# -- the table --------------------------------------------------------------------------------------

def _order_key(label: str, method: str) -> tuple:
    norm = _norm_method(label)
    if norm in _RANK:
        return (_RANK[norm], 0, label)
    if method == "standard":  # a standard-method variant: weight decay settings
        return (1, 1, label)
    return (_RANK.get(method, len(_RANK)), 1, label)


def _palette(labels_methods: list[tuple[str, str]]) -> dict[str, str]:
    """A colour per method label: fixed ones for the canonical methods, the rest assigned in the stable order."""
    colours, wd, other = {}, 0, 0
    for label, method in sorted(set(labels_methods), key=lambda lm: _order_key(*lm)):
        if label in colours:
            continue
        norm = _norm_method(label)
        if norm in _CANONICAL_COLOURS:
            colours[label] = _CANONICAL_COLOURS[norm]
        elif method == "standard":
            colours[label] = _WD_COLOURS[wd % len(_WD_COLOURS)]
            wd += 1
        else:
            colours[label] = _OTHER_COLOURS[other % len(_OTHER_COLOURS)]
            other += 1
    return colours


def _norm_method(s: str) -> str:
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
            flat.update({(_norm_task(k), _norm_method(m)): x for m, x in v.items()})
        elif isinstance(k, tuple) and len(k) == 2:
            flat[(_norm_task(k[0]), _norm_method(k[1]))] = v
    for t in (task_lab, task):
        v = flat.get((_norm_task(t), _norm_method(label)))
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


def _first_row_at(metrics: list[dict], threshold: float, key: str = "test_acc") -> dict | None:
    return next((r for r in metrics if _finite(r.get(key)) and r[key] >= threshold), None)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class _Group:
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


def _group(runs: list[Run]) -> dict[str, list[_Group]]:
    """Runs grouped by task (in order of first appearance) and method label (in the palette order)."""
    by_task: dict[str, dict[str, _Group]] = {}
    for r in runs:
        groups = by_task.setdefault(r.task_label, {})
        g = groups.setdefault(r.label, _Group(r.task_label, str(r.config.get("task", "?")), r.label, r.method))
        g.runs.append(r)
    return {t: sorted(gs.values(), key=lambda g: _order_key(g.label, g.method)) for t, gs in by_task.items()}


def _table_row(g: _Group, paper_table: dict | None) -> dict[str, str]:
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
    walls = []
    for r in fin:
        hit = _first_row_at(r.metrics, 0.95)
        if hit is not None and _finite(hit.get("elapsed_s")):
            walls.append(hit["elapsed_s"])
    row["wall s to 95%"] = f"{statistics.median(walls):.1f}" if walls else "—"
    sps = [r.summary["seconds_per_step"] for r in fin if _finite(r.summary.get("seconds_per_step"))]
    row["s/step"] = f"{statistics.median(sps):.3g}" if sps else "—"
    paper = _paper_value(paper_table, g.task_label, g.task, g.label)
    row["paper"] = "—" if paper is None else str(paper)
    return row


def _markdown_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# -- figures ----------------------------------------------------------------------------------------

def _series(run: Run, key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` at steps > 0 (log axis), finite values only."""
    pts = [(r["step"], r[key]) for r in run.metrics if r.get("step", 0) > 0 and _finite(r.get(key))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _plot_metric(ax, group: _Group, key: str, colour: str, linestyle: str = "-", band: bool = True) -> bool:
    """The finished seeds' mean where every one has data, a light min–max band there, each seed thin beyond it;
    unfinished runs as thin faint lines of their own (a group with only unfinished runs is averaged like finished)."""
    import numpy as np

    runs = group.finished or group.running
    if group.finished:
        for r in group.running:
            xs, vs = _series(r, key)
            ax.plot(xs, vs, color=colour, ls=linestyle, lw=0.8, alpha=0.45)
    series = [s for s in (_series(r, key) for r in runs) if s[0]]
    if not series:
        return False
    lo = max(s[0][0] for s in series)
    hi = min(s[0][-1] for s in series)
    grid = np.array(sorted({x for s in series for x in s[0] if lo <= x <= hi}), dtype=float)
    if len(series) > 1 and len(grid) > 0:
        ys = np.stack([np.interp(grid, s[0], s[1]) for s in series])
        ax.plot(grid, ys.mean(0), color=colour, ls=linestyle, lw=1.8)
        if band:
            ax.fill_between(grid, ys.min(0), ys.max(0), color=colour, alpha=0.15, lw=0)
        for xs, vs in series:  # the parts of the seeds outside the common range
            xs, vs = np.asarray(xs, float), np.asarray(vs, float)
            for part in (xs <= lo, xs >= hi):
                if part.sum() > 1:
                    ax.plot(xs[part], vs[part], color=colour, ls=linestyle, lw=0.8, alpha=0.6)
    else:
        for xs, vs in series:
            ax.plot(xs, vs, color=colour, ls=linestyle, lw=1.8 if len(series) == 1 else 0.8)
    return True


def _save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    write_atomic(path, buf.getvalue())


def _method_legend(ax, groups: list[_Group], colours: dict[str, str], extra: list | None = None) -> None:
    from matplotlib.lines import Line2D

    def text(g: _Group) -> str:
        return f"{g.label} (n={len(g.finished)}" + (f", {len(g.running)} running)" if g.running else ")")

    handles = [Line2D([], [], color=colours[g.label], lw=2, label=text(g)) for g in groups]
    ax.legend(handles=handles + (extra or []), fontsize=8, loc="best", framealpha=0.85)


def _task_grid(n_tasks: int):
    """(pyplot, figure, axes) with one panel per task, three to a row, spare panels hidden; Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(n_tasks, 3)
    nrows = math.ceil(n_tasks / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.2 * nrows), squeeze=False)
    for ax in list(axes.flat)[n_tasks:]:
        ax.set_visible(False)
    return plt, fig, axes


def _plot_accuracy(grouped: dict[str, list[_Group]], colours: dict[str, str], path: Path) -> None:
    from matplotlib.lines import Line2D

    tasks = list(grouped)
    plt, fig, axes = _task_grid(len(tasks))
    for ax, t in zip(axes.flat, tasks):
        for g in grouped[t]:
            c = colours[g.label]
            _plot_metric(ax, g, "train_acc", c, "--", band=False)
            _plot_metric(ax, g, "test_acc", c, "-")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.axhline(0.95, color="0.6", lw=0.6, ls=":")
        ax.set(title=f"{t}: accuracy (mean over seeds, band min–max)", xlabel="step", ylabel="accuracy")
        ax.grid(alpha=0.3, which="both", lw=0.4)
        style = [Line2D([], [], color="k", ls="-", label="test"), Line2D([], [], color="k", ls="--", label="train")]
        _method_legend(ax, grouped[t], colours, style)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _plot_age(grouped: dict[str, list[_Group]], colours: dict[str, str], key: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaled = key.endswith("scaled")
    name = "scale-free AGE (of g/‖g‖₁)" if scaled else "AGE (raw scale)"
    tasks = list(grouped)
    fig, axes = plt.subplots(len(tasks), 2, figsize=(12.0, 4.0 * len(tasks)), squeeze=False)
    for (ax_age, ax_acc), t in zip(axes, tasks):
        values = []
        for g in grouped[t]:
            c = colours[g.label]
            _plot_metric(ax_age, g, key, c)
            _plot_metric(ax_acc, g, "test_acc", c)
            values += [v for r in g.runs for v in _series(r, key)[1]]
        if values and min(values) > 0 and max(values) / min(values) > 50:
            ax_age.set_yscale("log")
        ax_age.set(title=f"{t}: {name}", xlabel="step", ylabel="scale-free AGE" if scaled else "AGE")
        ax_acc.set(title=f"{t}: test accuracy", xlabel="step", ylabel="test accuracy", ylim=(-0.02, 1.02))
        for ax in (ax_age, ax_acc):
            ax.set_xscale("log")
            ax.grid(alpha=0.3, which="both", lw=0.4)
        _method_legend(ax_acc, grouped[t], colours)
    if not scaled:
        fig.suptitle("AGE depends on the gradient's scale: normalised methods are not comparable with raw ones",
                     fontsize=9, y=1.0)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


@dataclass
class _StepsBar:
    """One method on one task for the steps-vs-paper figure: our seeds' steps to 95%, the cap, the paper's number."""

    label: str
    reached: list[int]
    n_finished: int
    cap: int | None
    paper: int | str | None


def _steps_vs_paper(grouped: dict[str, list[_Group]], paper_table: dict) -> dict[str, list[_StepsBar]]:
    """Per task, one entry per method with finished runs: our steps to 95% beside the published number."""
    out: dict[str, list[_StepsBar]] = {}
    for t, groups in grouped.items():
        bars = []
        for g in groups:
            if g.finished:
                bars.append(_StepsBar(g.label, sorted(g.reached(95)), len(g.finished), g.fewest_steps_ran(),
                                      _paper_value(paper_table, g.task_label, g.task, g.label)))
        if any(b.paper is not None for b in bars):
            out[t] = bars
    return out


def _plot_steps_vs_paper(table: dict[str, list[_StepsBar]], colours: dict[str, str], path: Path) -> None:
    from matplotlib.patches import Patch

    tasks = list(table)
    plt, fig, axes = _task_grid(len(tasks))
    w = 0.38
    for ax, t in zip(axes.flat, tasks):
        bars = table[t]
        top = max([x for b in bars for x in b.reached + ([b.cap] if b.cap else [])]
                  + [b.paper for b in bars if isinstance(b.paper, (int, float))] + [1])
        for i, b in enumerate(bars):
            c = colours[b.label]
            if b.reached:  # ours: median bar, min-max whisker, every seed a dot
                med = statistics.median(b.reached)
                ax.bar(i - w / 2, med, w, color=c, alpha=0.85)
                ax.vlines(i - w / 2, min(b.reached), max(b.reached), color="k", lw=1)
                ax.plot([i - w / 2] * len(b.reached), b.reached, "o", color="k", ms=3)
                if len(b.reached) < b.n_finished:
                    ax.text(i - w / 2, med, f"{len(b.reached)}/{b.n_finished}", ha="center", va="bottom", fontsize=7)
            elif b.cap:  # ours never reached 95%: an outline up to the cap
                ax.bar(i - w / 2, b.cap, w, fill=False, edgecolor=c, hatch="..", lw=1.2)
                ax.text(i - w / 2, b.cap, f"not in\n{b.cap}", ha="center", va="bottom", fontsize=7)
            if isinstance(b.paper, (int, float)):
                ax.bar(i + w / 2, b.paper, w, color=c, alpha=0.35, hatch="//", edgecolor=c)
            else:  # e.g. "fails in 1e6", no bar to scale; or a method the paper does not report
                note = "not in paper" if b.paper is None else f"paper:\n{b.paper}"
                ax.text(i + w / 2, top * 0.02, note, ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(range(len(bars)), [b.label for b in bars], rotation=20, fontsize=8)
        ax.set(title=f"{t}: steps to 95% test accuracy", ylabel="steps", ylim=(0, top * 1.18))
        ax.grid(alpha=0.3, axis="y", lw=0.4)
    fig.legend(handles=[Patch(color="0.3", alpha=0.85, label="here: median; line min–max; dots: seeds"),
                        Patch(fill=False, hatch="..", label="here: no seed reached 95% within its steps"),
                        Patch(facecolor="0.3", alpha=0.35, hatch="//", label="paper (one run)")],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save_figure(fig, path)
    plt.close(fig)


# -- the report -------------------------------------------------------------------------------------

def _has_key(grouped: dict[str, list[_Group]], key: str) -> bool:
    return any(_finite(m.get(key)) for gs in grouped.values() for g in gs for r in g.runs for m in r.metrics)


def build_report(run_dirs: list[Path], out_dir: Path, paper_table: dict | None = None) -> Path:
    """Writes ``out_dir/report.md`` (table of steps to 95%/99% test accuracy) and its PNG figures; returns report.md.

    Unfinished runs (no summary.json) are plotted but not counted in the table. ``paper_table`` maps
    (task label such as "(a*b) mod 97", method label) to a published number (see PAPER_TABLE_1), or
    {task label: {method: number}}; when it matches a row, a "paper" column is shown.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, unreadable = [], []
    for d in map(Path, run_dirs):
        try:
            runs.append(load_run(d))
        except (OSError, ValueError) as e:
            warnings.warn(f"{d}: not a readable run folder ({e})", stacklevel=2)
            unreadable.append(f"`{d}` ({type(e).__name__})")
    grouped = _group(runs)
    colours = _palette([(r.label, r.method) for r in runs])
    n_fin = sum(r.finished for r in runs)
    parents = sorted({str(r.path.parent) for r in runs})
    skipped = sum(r.skipped_lines for r in runs)

    md = ["# Grokking runs: comparison", ""]
    md.append(f"Read {len(runs)} runs ({n_fin} finished, {len(runs) - n_fin} unfinished) from "
              + ", ".join(f"`{p}`" for p in parents) + "." if runs else "Read 0 runs.")
    if unreadable:
        md.append(f"Not run folders, skipped: {', '.join(unreadable)}.")
    if skipped:
        md.append(f"{skipped} unreadable metrics line(s) skipped (a run killed mid-write).")
    md.append("")

    md += ["## Steps to test accuracy", "",
           "Steps to 95% / 99% test accuracy: median (min–max) over the finished seeds that reached it; "
           "\"seeds reached\" is k/n of the finished runs (unfinished ones are marked \"(running)\" and not "
           "counted). \"not within N steps\": no finished seed reached it in the N steps it ran. "
           "\"wall s to 95%\": median wall-clock seconds (evaluation included) at the first evaluation at or above "
           "95%; \"s/step\": median seconds per training step.", ""]
    rows = [_table_row(g, paper_table) for gs in grouped.values() for g in gs]
    columns = ["task", "method", "steps to 95%", "seeds reached 95%", "steps to 99%", "seeds reached 99%",
               "step cap", "wall s to 95%", "s/step"]
    if any(r["paper"] != "—" for r in rows):
        columns.append("paper")
        md_note = "\"paper\": steps to 95% test accuracy as published."
    else:
        md_note = ""
    md.append(_markdown_table(rows, columns) if rows else "(no runs)")
    if md_note:
        md += ["", md_note]
    md.append("")

    comparison = _steps_vs_paper(grouped, paper_table) if paper_table else {}
    if comparison:
        _plot_steps_vs_paper(comparison, colours, out_dir / "steps_vs_paper.png")
        md += ["## Against the published numbers", "",
               "Steps to 95% test accuracy, ours (solid: median bar, min–max line, one dot per seed that reached "
               "it; an outline up to the cap where none did) beside the paper's (hatched; a published number that "
               "is not a step count is written instead).", "",
               "![steps to 95%, ours and the paper's](steps_vs_paper.png)", ""]

    if runs:
        _plot_accuracy(grouped, colours, out_dir / "accuracy.png")
        md += ["## Accuracy", "",
               "Train (dashed) and test (solid) accuracy against step, log scale: mean over the finished seeds "
               "where all of them have data, light band min–max of test accuracy, single seeds thin beyond; "
               "unfinished runs thin and faint.", "",
               "![train and test accuracy](accuracy.png)", ""]
        md += ["## Absolute gradient entropy (AGE)", "",
               "AGE = −Σ|g|·ln|g| of the gradient the optimizer receives. It depends on the gradient's scale, "
               "so methods that normalise the gradient (gradnorm, NeuralGrok) are not comparable with raw ones; "
               "the scale-free AGE (of g/‖g‖₁) is."]
        for key, fname, alt in (("age", "age.png", "AGE"), ("age_scaled", "age_scaled.png", "scale-free AGE")):
            if _has_key(grouped, key):
                _plot_age(grouped, colours, key, out_dir / fname)
                md += ["", f"![{alt} and test accuracy]({fname})"]
            else:
                md += ["", f"(no run logged `{key}`)"]
        md.append("")

    md += ["## Runs", "", "| folder | task | method | seed | status | steps | best test acc |",
           "|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r.summary
        status = f"finished ({s.get('stopped', '?')})" if s else "(running)"
        steps = s.get("steps") if s else (r.metrics[-1]["step"] if r.metrics else 0)
        accs = [m["test_acc"] for m in r.metrics if _finite(m.get("test_acc"))]
        best = f"{max(accs):.4f}" if accs else "—"
        md.append(f"| `{r.path}` | `{r.task_label}` | {r.label} | {r.config.get('seed', '?')} | {status} | "
                  f"{steps} | {best} |")
    path = out_dir / "report.md"
    write_atomic(path, "\n".join(md) + "\n")
    return path
