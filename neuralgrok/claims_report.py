"""`neuralgrok claims`: the claim tests of claims.py applied to run folders, as claims.json, claims.md and figures."""
from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from pathlib import Path

from .aggregate import load_run, markdown_table
from .claims import age_timing, bootstrap_interval, spearman, stability, steps_or_cap
from .portable import relative
from .runfolder import write_atomic, write_json


def per_run(runs) -> list[dict]:
    """One record per finished run: its task, method label, seed, steps to 95%, stability and AGE timing."""
    out = []
    for r in runs:
        if not r.finished:
            continue
        st, age = stability(r.metrics), age_timing(r.metrics)
        out.append({"run": relative(r.path), "task": r.task_label, "label": r.label, "method": r.method,
                    "seed": r.config.get("seed"), "steps_to_95": (r.summary or {}).get("steps_to_95"),
                    "steps_or_cap": steps_or_cap(r), "lowest_after_95": st.lowest_after,
                    "largest_drop": st.largest_drop, "loss_spikes": st.loss_spikes, "memorised": age.memorised,
                    "age_at_memorised": age.age_at_memorised, "age_falls": age.falls, "acc_rises": age.rises,
                    "age_falls_on_value": age.falls_on_value,
                    "lead": age.lead, "age_trend": age.trend, "weight_norm_at_95": _norm_at_95(r)})
    return out


def _norm_at_95(run) -> float | None:
    row = next((m for m in run.metrics if isinstance(m.get("test_acc"), float) and m["test_acc"] >= 0.95), None)
    return None if row is None else row.get("weight_norm")


def _median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):,.3g}" if values else "—"


def by_method(records: list[dict]) -> list[dict[str, str]]:
    """Per method label: how stable after 95%, how AGE moves, how often it falls before accuracy rises."""
    groups = defaultdict(list)
    for rec in records:
        groups[rec["label"]].append(rec)
    rows = []
    for label, recs in sorted(groups.items()):
        reached = [r for r in recs if r["lowest_after_95"] is not None]
        leads = [r["lead"] for r in recs if r["lead"] is not None]
        trends = [r["age_trend"] for r in recs if r["age_trend"] is not None]
        rows.append({"method": label, "runs": str(len(recs)), "reached 95%": str(len(reached)),
                     "median lowest test acc after 95%": _median([r["lowest_after_95"] for r in reached]),
                     "runs dropping > 10 points": str(sum(r["largest_drop"] > 0.1 for r in reached)),
                     "runs with train-loss spikes": str(sum(r["loss_spikes"] > 0 for r in recs)),
                     "AGE falls before the rise": f"{sum(v > 0 for v in leads)}/{len(leads)}",
                     "median lead (steps)": _median(leads),
                     "AGE keeps falling (rho <= -0.5)": f"{sum(t <= -0.5 for t in trends)}/{len(trends)}"})
    return rows


def predictive(records: list[dict], seed: int = 0) -> list[dict[str, str]]:
    """Per task and pooled (ranks within each task): Spearman's rho of AGE at memorisation against steps to 95%."""
    tasks = defaultdict(list)
    for rec in records:
        if rec["age_at_memorised"] is not None:
            tasks[rec["task"]].append(rec)
    rows, pooled_x, pooled_y = [], [], []
    for task, recs in sorted(tasks.items()):
        x, y = [r["age_at_memorised"] for r in recs], [r["steps_or_cap"] for r in recs]
        rows.append(_rho_row(task, x, y, seed))
        if len(recs) >= 3:
            pooled_x += _within(x)
            pooled_y += _within(y)
    if len(tasks) > 1:
        rows.append(_rho_row("all tasks (ranks within each)", pooled_x, pooled_y, seed))
    return rows


def _within(values: list[float]) -> list[float]:
    from .claims import ranks
    r = ranks(values)
    return [(v - 1) / max(1, len(values) - 1) for v in r]


def _rho_row(task: str, x: list[float], y: list[float], seed: int) -> dict[str, str]:
    rho = spearman(x, y)
    ci = bootstrap_interval(x, y, seed=seed) if rho is not None and len(x) >= 5 else None
    return {"task": task, "runs": str(len(x)), "Spearman rho": "—" if rho is None else f"{rho:+.2f}",
            "95% bootstrap interval": "—" if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"}


def write(run_dirs: list[Path], out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Reads the runs, writes ``claims.json``, ``claims.md`` and the figures into ``out``; returns the tables."""
    runs = []
    for d in run_dirs:
        try:
            runs.append(load_run(d))
        except (OSError, ValueError) as e:
            warnings.warn(f"{d}: not a readable run folder ({e})", stacklevel=2)
    return write_runs(runs, out)


def write_runs(runs, out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """As :func:`write`, for runs already read (grouped by their ``label``)."""
    from .claims_figures import plot_age_and_accuracy, plot_leads_and_stability, plot_loss_vs_norm
    out.mkdir(parents=True, exist_ok=True)
    records = per_run(runs)
    methods, rho = by_method(records), predictive(records)
    write_json(out / "claims.json", {"runs": records, "by_method": methods, "age_predicts_steps": rho})
    plot_age_and_accuracy(runs, records, out / "age_and_accuracy.png")
    plot_leads_and_stability(records, out / "leads_and_stability.png")
    plot_loss_vs_norm(runs, out / "loss_vs_weight_norm.png")
    md = ["# Claims on these runs", "", f"{len(records)} finished runs (`neuralgrok claims`, definitions in "
          "`neuralgrok/claims.py`).", "", "## Per method", "", markdown_table(methods, list(methods[0])) if methods
          else "(no finished run)", "", "## Scale-free AGE at memorisation against steps to 95%", "",
          markdown_table(rho, list(rho[0])) if rho else "(no run memorised)", "",
          "![AGE and accuracy](age_and_accuracy.png)", "", "![lead times and stability](leads_and_stability.png)",
          "", "![losses against the weight norm](loss_vs_weight_norm.png)", ""]
    write_atomic(out / "claims.md", "\n".join(md))
    return records, methods, rho


def main(args) -> int:
    records, methods, rho = write([Path(d) for d in args.runs], Path(args.out))
    if methods:
        print(markdown_table(methods, list(methods[0])))
    if rho:
        print("\n" + markdown_table(rho, list(rho[0])))
    print(f"\nwrote {Path(args.out) / 'claims.md'}, claims.json and the figures ({len(records)} finished runs)")
    return 0

