"""The report's figures: accuracy, AGE and steps-to-95%-against-the-paper, one panel per task, a fixed colour per method."""
from __future__ import annotations

import io
import math
import statistics
import textwrap
from pathlib import Path

from .aggregate import Group, Run, StepsBar, SweepPoint, finite, norm_method, order_key
from .methods import METHODS, label_of
from .png import palette_png
from .runfolder import write_atomic

# the registry's colours, by method name and by the (normalised) label reports show
CANONICAL_COLOURS = {key: m.colour for name, m in METHODS.items() if m.colour
                     for key in (name, norm_method(label_of(name)))}


_WD_COLOURS = ("#8c564b", "#bcbd22", "#c49c94", "#dbdb8d", "#7f7f7f")


_OTHER_COLOURS = ("#ff7f0e", "#17becf", "#e377c2", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#9edae5",
                  "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b")


_DPI = 120
_TERM_COLOURS = {"slow": "#1f77b4", "decay": "#8c564b"}  # the coefficient form's terms
_LEGEND_CHARS, _TITLE_CHARS, _TICK_CHARS = 48, 60, 24  # longer legend labels, titles, tick labels wrap in a panel
_LEGEND_INSIDE = 7  # a panel's legend with more entries goes beside it, where it hides no curve


def _wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters (where it has spaces to break at)."""
    return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)


def palette(labels_methods: list[tuple[str, str]]) -> dict[str, str]:
    """A colour per method label: fixed ones for the canonical methods, the rest assigned in the stable order."""
    colours, wd, other = {}, 0, 0
    for label, method in sorted(set(labels_methods), key=lambda lm: order_key(*lm)):
        if label in colours:
            continue
        norm = norm_method(label)
        if norm in CANONICAL_COLOURS:
            colours[label] = CANONICAL_COLOURS[norm]
        elif method == "standard":
            colours[label] = _WD_COLOURS[wd % len(_WD_COLOURS)]
            wd += 1
        else:
            colours[label] = _OTHER_COLOURS[other % len(_OTHER_COLOURS)]
            other += 1
    return colours


def _series(run: Run, key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` at steps > 0 (log axis), finite values only."""
    pts = [(r["step"], r[key]) for r in run.metrics if r.get("step", 0) > 0 and finite(r.get(key))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _plot_metric(ax, group: Group, key: str, colour: str, linestyle: str = "-", band: bool = True) -> bool:
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
    """Writes ``fig`` as a palette PNG (png.py: the same picture, a third of the bytes) where that keeps it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    write_atomic(path, palette_png(buf.getvalue()) or buf.getvalue())


def _method_legend(ax, groups: list[Group], colours: dict[str, str], extra: list | None = None) -> None:
    from matplotlib.lines import Line2D

    def text(g: Group) -> str:
        return _wrap(f"{g.label} (n={len(g.finished)}" + (f", {len(g.running)} running)" if g.running else ")"),
                     _LEGEND_CHARS)

    handles = [Line2D([], [], color=colours[g.label], lw=2, label=text(g)) for g in groups] + (extra or [])
    if len(handles) <= _LEGEND_INSIDE:
        ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.85)
        return
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig = ax.figure  # a long legend beside its panel, the figure widened for it once (tight_layout fits both)
    if not getattr(fig, "_legends_outside", False):
        fig._legends_outside = True
        width, height = fig.get_size_inches()
        fig.set_size_inches(width * 1.6, height)


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


def plot_accuracy(grouped: dict[str, list[Group]], colours: dict[str, str], path: Path) -> None:
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
        ax.set(title=_wrap(f"{t}: accuracy (mean over seeds, band min–max)", _TITLE_CHARS), xlabel="step",
               ylabel="accuracy")
        ax.grid(alpha=0.3, which="both", lw=0.4)
        style = [Line2D([], [], color="k", ls="-", label="test"), Line2D([], [], color="k", ls="--", label="train")]
        _method_legend(ax, grouped[t], colours, style)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


# The metrics drawn beside test accuracy: (panel title, y-axis label)
BESIDE_ACCURACY = {"age": ("AGE (raw scale)", "AGE"), "age_scaled": ("scale-free AGE (of g/‖g‖₁)", "scale-free AGE"),
                   "weight_norm": ("weight norm ‖θ‖₂", "weight norm"),
                   "amp_pn_std": ("amplifier: std of p·n (0 = uniform)", "std of p·n"),
                   "amp_dev": ("feature amplifier: ‖g′ − gradnorm(g)‖ / ‖gradnorm(g)‖", "distance from gradnorm")}


def plot_beside_accuracy(grouped: dict[str, list[Group]], colours: dict[str, str], key: str, path: Path) -> None:
    """One row per task: the metric ``key`` (AGE, the weight norm, an amplifier statistic, ...) and test accuracy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, ylabel = BESIDE_ACCURACY[key]
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
        ax_age.set(title=f"{t}: {name}", xlabel="step", ylabel=ylabel)
        ax_acc.set(title=f"{t}: test accuracy", xlabel="step", ylabel="test accuracy", ylim=(-0.02, 1.02))
        for ax in (ax_age, ax_acc):
            ax.set_xscale("log")
            ax.grid(alpha=0.3, which="both", lw=0.4)
        _method_legend(ax_acc, grouped[t], colours)
    if key == "age":
        fig.suptitle("AGE depends on the gradient's scale: normalised methods are not comparable with raw ones",
                     fontsize=9, y=1.0)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_steps_vs_paper(table: dict[str, list[StepsBar]], colours: dict[str, str], path: Path) -> None:
    from matplotlib.patches import Patch

    tasks = list(table)
    plt, fig, axes = _task_grid(len(tasks))
    ncol = min(len(tasks), 3)  # the legend's three entries side by side only where the figure is wide enough
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
        ax.set_xticks(range(len(bars)), [_wrap(b.label, _TICK_CHARS) for b in bars], rotation=20, fontsize=8)
        ax.set(title=f"{t}: steps to 95% test accuracy", ylabel="steps", ylim=(0, top * 1.18))
        ax.grid(alpha=0.3, axis="y", lw=0.4)
    fig.legend(handles=[Patch(color="0.3", alpha=0.85, label="here: median; line min–max; dots: seeds"),
                        Patch(fill=False, hatch="..", label="here: no seed reached 95% within its steps"),
                        Patch(facecolor="0.3", alpha=0.35, hatch="//", label="paper (one run)")],
               loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.02 + 0.03 * 3 / ncol, 1, 1))
    _save_figure(fig, path)
    plt.close(fig)



def plot_steps_vs_weight_decay(sweeps: dict[str, dict[str, list[SweepPoint]]], path: Path) -> None:
    """Per task, each swept method's steps to 95% against its weight decay (0 at the left of a symlog axis)."""
    plot_steps_vs_option(sweeps, path, "weight decay", log=True)


def plot_steps_vs_option(sweeps: dict[str, dict[str, list[SweepPoint]]], path: Path, name: str,
                         log: bool = False) -> None:
    """Per task, each swept method's steps to 95% against the swept option's value (a symlog axis with ``log``)."""
    tasks = list(sweeps)
    families = sorted({(f, ps[0].group.method) for fs in sweeps.values() for f, ps in fs.items()})
    colours = palette(families)
    plt, fig, axes = _task_grid(len(tasks))
    for ax, t in zip(axes.flat, tasks):
        positive = [p.value for ps in sweeps[t].values() for p in ps if p.value > 0]
        top = 1
        for family, points in sweeps[t].items():
            c = colours[family]
            xs, meds = [], []
            for p in points:
                reached = p.group.reached(95)
                missed = [r.summary.get("steps") or r.max_steps or 0 for r in p.group.finished
                          if r.summary.get("steps_to_95") is None]
                cap = max(missed, default=0)  # how long the seeds that missed 95% ran
                top = max([top, cap, *reached])
                ax.plot([p.value] * len(reached), reached, "o", color=c, ms=3, alpha=0.6)
                if len(reached) == len(p.group.finished):
                    xs.append(p.value)
                    meds.append(statistics.median(reached))
                else:  # not every seed got there: an open marker at the step cap
                    ax.plot([p.value], [cap], marker="v", mfc="none", color=c, ms=7)
            ax.plot(xs, meds, "-", color=c, lw=1.6, label=family)
        if log:
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1e-3)
        ax.set(title=f"{t}: steps to 95% against {name}", xlabel=name, ylabel="steps", ylim=(0, top * 1.1))
        ax.grid(alpha=0.3, which="both", lw=0.4)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    caption = _wrap("line: median over seeds where all reached 95%; dots: seeds; open triangle: some seed did not "
                    "reach 95% within the steps it ran", int(14 * fig.get_figwidth()))  # ~14 characters an inch at 8 pt
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.03 * (caption.count("\n") + 1), 1, 1))
    _save_figure(fig, path)
    plt.close(fig)


def plot_amplifier_shapes(shapes: dict[str, list[tuple[str, int, list[float], list[float]]]], colours: dict[str, str],
                          path: Path) -> None:
    """One panel per task: each run's learnt amplifier as the weight of an entry g against a zero entry."""
    plt, fig, axes = _task_grid(len(shapes))
    for ax, (task, curves) in zip(axes.flat, shapes.items()):
        for label, seed, xs, ws in curves:
            ax.plot(xs, ws, color=colours[label], lw=1.2, label=f"{label} s{seed}")
        weights = [w for *_, ws in curves for w in ws]
        if min(weights) > 0 and max(weights) / min(weights) > 50:  # a learnt amplifier far from uniform
            ax.set_yscale("log")
        ax.axhline(1.0, color="0.5", lw=0.6, ls=":")
        ax.set_xscale("symlog", linthresh=1e-6)
        ax.set_xticks([-1e-1, -1e-3, -1e-5, 0, 1e-5, 1e-3, 1e-1])
        ax.set(title=f"{task}: learnt amplifier", xlabel="gradient entry g", ylabel="weight against g = 0")
        ax.grid(alpha=0.3, lw=0.4)
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_amplifier_coefficients(found: list[tuple[str, list[str], dict[str, list[float]]]], path: Path) -> None:
    """One panel per distinct set of the coefficient form's values (titled with the runs that hold it): its learnt
    coefficient of each term, tensor by tensor."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(found), 1, figsize=(max(8.0, 0.45 * max(len(f[1]) for f in found)), 3.6 * len(found)),
                             squeeze=False)
    for ax, (title, names, terms) in zip(axes[:, 0], found):
        width = 0.8 / len(terms)
        for k, (term, values) in enumerate(terms.items()):
            ax.bar([i + (k - (len(terms) - 1) / 2) * width for i in range(len(names))], values, width,
                   label=f"{term} coefficient", color=_TERM_COLOURS.get(term, "#7f7f7f"))
        ax.axhline(0.0, color="0.4", lw=0.6)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set(title=_wrap(f"{title} (0: gradient normalisation)", 2 * _TITLE_CHARS), ylabel="learnt coefficient")
        ax.grid(axis="y", alpha=0.3, lw=0.4)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_analysis(summary: dict, path: Path) -> None:
    """A run's Fourier analysis: the last snapshot's embedding spectrum, the losses, and the weight norm, by step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_spec, ax_loss, ax_norm) = plt.subplots(1, 3, figsize=(15.0, 4.0))
    energy, keys = summary["energy"][-1], set(summary["key_frequencies"])
    freqs = list(range(1, len(energy) + 1))
    ax_spec.bar(freqs, energy, color=["#d62728" if k in keys else "0.6" for k in freqs])
    ax_spec.set(xlabel=f"frequency k (mod {summary['p']})", ylabel="share of energy")
    ax_spec.set_title(f"token embedding: energy per frequency at step {summary['steps'][-1]} (red: key)", fontsize=9)
    for key, style in (("train_loss", "-"), ("test_loss", "-"), ("restricted_loss", "--"), ("excluded_loss", ":")):
        ax_loss.plot(summary["steps"], summary[key], style, label=key.replace("_", " "))
    ax_loss.set(xlabel="step", ylabel="cross-entropy")
    ax_loss.set_title("losses; restricted: key frequencies only, excluded: without them", fontsize=9)
    ax_loss.set_yscale("log")
    ax_norm.plot(summary["steps"], summary["weight_norm"], "k-")
    ax_norm.set(xlabel="step", ylabel="‖θ‖₂")
    ax_norm.set_title("weight norm", fontsize=9)
    for ax in (ax_loss, ax_norm):
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both", lw=0.4)
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
