"""Issue 37's A/B: each variant's steps to 95% against a reference arm's, seed by seed, with the test the grids fix.

    python experiments/setup_ab.py experiments/results/ng_setup --reference neuralgrok [--seeds 0,1,2]

Per task, for every method label in the folder's finished runs, prints each seed's steps to 95% (a run without
95% within its cap counted as slower than any that reached it), the median and its ratio to the reference's, and
the test of the grid files' headers: the variant moves the steps when its seeds and the reference's do not overlap,
which for three seeds each is an exact one-sided Mann-Whitney p = 0.05 (printed for both directions).
"""
from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from neuralgrok.aggregate import load_run, markdown_table
from neuralgrok.claims import mann_whitney_less, steps_or_cap


def table(runs, reference: str) -> list[dict[str, str]]:
    """One row per (task, label): seeds, median, ratio to the reference label's median, overlap, one-sided p's."""
    by = defaultdict(dict)
    for r in runs:
        if r.finished:
            by[(r.task_label, r.label)][r.config.get("seed")] = steps_or_cap(r)
    rows = []
    for (task, label), seeds in sorted(by.items()):
        ref = by.get((task, reference))
        steps = [seeds[s] for s in sorted(seeds)]
        row = {"task": task, "arm": label, "steps to 95% by seed": " / ".join(_fmt(seeds[s]) for s in sorted(seeds)),
               "median": _median(steps)}
        if ref and label != reference:
            base = list(ref.values())
            apart = max(steps) < min(base) or min(steps) > max(base)
            row.update({"× reference": f"{statistics.median(steps) / statistics.median(base):.2f}",
                        "apart from the reference": "yes" if apart else "no",
                        "p (faster)": f"{mann_whitney_less(steps, base):.2f}",
                        "p (slower)": f"{mann_whitney_less(base, steps):.2f}"})
        rows.append(row)
    return rows


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x == int(x) else f"not by {x - 0.5:,.0f}"


def _median(steps: list[float]) -> str:
    """The median as ``_fmt`` writes a run, or a lower bound where it averages a run that reached 95% with one that
    did not (a miss counts as its cap + 0.5, so the true median is above the average with the cap itself)."""
    middle = sorted(steps)[(len(steps) - 1) // 2: len(steps) // 2 + 1]
    if len({x == int(x) for x in middle}) == 2:
        return f"over {sum(int(x) for x in middle) / 2:,.0f}"
    return _fmt(statistics.median(steps))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="a results folder (its runs/)")
    ap.add_argument("--reference", default="neuralgrok", help="the reference arm's method label")
    ap.add_argument("--labels", nargs="*", help="only these labels (and the reference)")
    ap.add_argument("--seeds", type=lambda s: {int(x) for x in s.split(",")},
                    help="only these seeds, e.g. 0,1,2: an A/B's own seeds where a label's runs have more")
    args = ap.parse_args(argv)
    runs = [load_run(d) for d in sorted((args.results / "runs").iterdir()) if d.is_dir() and not d.suffix]
    if args.seeds:
        runs = [r for r in runs if r.config.get("seed") in args.seeds]
    if args.labels:
        runs = [r for r in runs if r.label in {*args.labels, args.reference}]
    rows = table(runs, args.reference)
    columns = ["task", "arm", "steps to 95% by seed", "median", "× reference", "apart from the reference",
               "p (faster)", "p (slower)"]
    print(markdown_table([{c: r.get(c, "") for c in columns} for r in rows], columns))


if __name__ == "__main__":
    main()
