"""The claims' figures: scale-free AGE beside test accuracy with its fall and the rise marked, lead times and
stability per method, and train and test loss against the weight norm (Omnigrok's L and U)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .figures import _save_figure, _wrap, palette


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_age_and_accuracy(runs, records: list[dict], path: Path, per_method: int = 3) -> None:
    """One panel per method: up to ``per_method`` runs' effective number of gradient entries, exp(scale-free AGE),
    over its highest value (solid; the quantity whose sustained 10% fall claims.py times), test accuracy (dashed),
    the sustained fall (solid vertical) and the rise of accuracy (dotted vertical)."""
    import math
    plt = _plt()
    found = {rec["run"]: rec for rec in records}
    methods = defaultdict(list)
    for r in runs:
        if str(r.path) in found and len(methods[r.label]) < per_method:
            methods[r.label].append(r)
    labels = sorted(methods)
    cols = min(3, max(1, len(labels)))
    rows = (len(labels) + cols - 1) // cols or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.4 * rows), squeeze=False)
    colours = palette([(r.label, r.method) for rs in methods.values() for r in rs])
    for ax, label in zip(axes.flat, labels):
        for r in methods[label]:
            rec = found[str(r.path)]
            pts = [(m["step"], m.get("age_scaled"), m.get("test_acc")) for m in r.metrics if m.get("step", 0) > 0]
            top = max((a for _, a, _ in pts if isinstance(a, (int, float))), default=0.0)
            ax.plot([s for s, a, _ in pts if a is not None], [math.exp(a - top) for _, a, _ in pts if a is not None],
                    color=colours[label], lw=1)
            ax.plot([s for s, _, t in pts if t is not None], [t for _, _, t in pts if t is not None],
                    color=colours[label], lw=1, ls="--")
            for step, style in ((rec["age_falls"], "-"), (rec["acc_rises"], ":")):
                if step:
                    ax.axvline(step, color=colours[label], lw=0.8, ls=style, alpha=0.7)
        ax.set(title=_wrap(label, 48), xscale="log", xlabel="step", ylim=(-0.02, 1.05),
               ylabel="exp(AGE) / its max (solid); test acc (dashed)")
        ax.grid(alpha=0.3, lw=0.4)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_leads_and_stability(records: list[dict], path: Path) -> None:
    """Left: each run's lead (generalisation rise minus AGE fall, steps) per method; right: its lowest test
    accuracy after first reaching 95%."""
    plt = _plt()
    labels = sorted({r["label"] for r in records})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 0.5 * len(labels) + 2.5))
    for i, label in enumerate(labels):
        recs = [r for r in records if r["label"] == label]
        leads = [r["lead"] for r in recs if r["lead"] is not None]
        lows = [r["lowest_after_95"] for r in recs if r["lowest_after_95"] is not None]
        left.plot(leads, [i] * len(leads), "o", ms=4, alpha=0.7)
        right.plot(lows, [i] * len(lows), "o", ms=4, alpha=0.7)
    for ax, title, xlabel in ((left, "AGE falls before accuracy rises by (steps)", "lead (steps)"),
                              (right, "lowest test accuracy after first reaching 95%", "test accuracy")):
        ax.set_yticks(range(len(labels)), [_wrap(lb, 36) for lb in labels], fontsize=7)
        ax.set(title=title, xlabel=xlabel)
        ax.grid(alpha=0.3, lw=0.4)
    left.axvline(0, color="k", lw=0.8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_loss_vs_norm(runs, path: Path) -> None:
    """Every evaluation's train loss (left) and test loss (right) against the weight norm, a colour per method."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.0))
    colours = palette([(r.label, r.method) for r in runs])
    for r in runs:
        pts = [(m["weight_norm"], m["train_loss"], m["test_loss"]) for m in r.metrics
               if all(isinstance(m.get(k), (int, float)) for k in ("weight_norm", "train_loss", "test_loss"))]
        for ax, k in zip(axes, (1, 2)):
            ax.plot([p[0] for p in pts], [p[k] for p in pts], ".", ms=2, alpha=0.4, color=colours[r.label],
                    label=r.label)
    for ax, name in zip(axes, ("train loss", "test loss")):
        ax.set(yscale="log", xlabel="weight norm", ylabel=name, title=f"{name} against the weight norm")
        ax.grid(alpha=0.3, lw=0.4)
    handles = {h.get_label(): h for h in axes[1].get_lines()}
    axes[1].legend(handles.values(), [_wrap(k, 40) for k in handles], fontsize=7, markerscale=4)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
