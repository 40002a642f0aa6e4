"""Issue 23's comparison: each meta-learned variant against the baselines at their best weight decay, task by task.

    python experiments/meta_comparison.py                  # the committed meta_study, meta_baselines and bench folders
    python experiments/meta_comparison.py --hold experiments/results/meta_hold/runs    # does accuracy hold after 95%?
    python experiments/meta_comparison.py --variants experiments/results/meta_pertask/runs --seeds 1,2
    python experiments/meta_comparison.py --variants experiments/results/meta_nonneg_seeds34/runs \
        --baselines experiments/results/meta_nonneg_seeds34/runs --seeds 3,4

For each task the baselines (``meta_baselines``: gradient normalisation + clip and Grokfast-MA,
each swept over weight decay on the same seeds) are taken at their best weight decay by the
report's rule (most seeds reaching 95%, then the fewest median steps), among the decays finished on
as many seeds as the most complete one. A variant's ratio is its
median steps to 95% over seeds over the best baseline's median; a seed that did not reach 95%
counts as infinitely many steps. Wall-clock is counted in standard steps from the measured step
costs (``bench/methods/bench.json``): a frozen amplifier's step costs its frozen step (with the weight term
over its step-0 rms, that variant's own); the gated
variant's steps cost its inner step until the evaluation that opened the gate and its amortised
meta-step iteration after; a baseline's step costs its own (the wall-clock ratio is left blank when the
best baseline's step cost was not measured, as for ⊥Grad). Baselines run at one decay (not swept by a
grid, as in ``meta_nonneg_seeds34``) count as a family at that decay; the variants are the NeuralGrok
groups of ``--variants``. The last column is the lowest test
accuracy any counted seed fell to after first reaching 95% (how well the accuracy holds). The development cell (the task and seed
the variants were chosen on) is shown and left out of the medians. ``--seeds`` keeps only runs of those
seeds, the baselines' too, so that variants evaluated on some seeds meet the baselines on the same ones.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from neuralgrok.aggregate import (Group, Run, SweepPoint, best_point, first_row_at, group_runs, load_run,
                                  weight_decay_sweeps)

RESULTS = Path(__file__).parent / "results"
ORDER = ["a+b", "a-b", "a*b", "a*a-b"]  # Table 1's order
# Step cost is the same at any decay; standard's is its Adam-L2 step (AdamW's decoupled decay costs the same
# elementwise update). A method missing here (⊥Grad) has no measured cost: its wall-clock ratio is left blank.
BASELINE_BENCH = {"gradnorm": ":gradnorm_clip", "grokfast_ma": ":grokfast_ma_wd", "standard": ":standard"}


def step_costs(bench: Path) -> dict[str, float]:
    """Bench cell spec suffix (``:METHOD[+overrides]``) → cost of a step in standard steps."""
    rows = json.loads(bench.read_text())["rows"]
    return {row["cell"][row["cell"].rindex(":"):]: row["ratio"] for row in rows}


def gate_step(run: Run) -> int:
    """The step of the first evaluation whose training accuracy opened the gate (``meta_start_acc``)."""
    threshold = run.config["meta_start_acc"]
    return next(row["step"] for row in run.metrics if row["train_acc"] >= threshold)


def wall_units(run: Run, costs: dict[str, float]) -> float:
    """Standard steps of wall-clock to 95% (inf when not reached)."""
    steps = run.summary.get("steps_to_95")
    if steps is None:
        return math.inf
    cfg = run.config
    if cfg["method"] != "neuralgrok":
        cell = BASELINE_BENCH.get(cfg["method"])
        return steps * costs[cell] if cell in costs else math.nan
    if cfg.get("freeze_amplifier"):  # the averaged control does the frozen step's work; the step-0 scale its own
        return steps * costs[":ng_coef_init_frozen" if cfg.get("amp_theta_ref") == "init" else ":ng_coef_frozen"]
    gate = min(gate_step(run), steps)
    return gate * costs[":ng_coef"] + (steps - gate) * costs[":ng_coef+meta_start_acc=0"]


def worst_after_95(run: Run) -> float:
    """The lowest test accuracy evaluated after the run first reached 95% (nan when it never did)."""
    steps = run.summary.get("steps_to_95")
    after = [row["test_acc"] for row in run.metrics if steps is not None and row["step"] >= steps]
    return min(after) if after else math.nan


def hold_rows(folder: Path) -> list[str]:
    """Markdown rows for runs past their early stop: when 95% came, how long it held, where it ended."""
    lines = ["| cell | steps to 95% | first evaluation below 90% after that | lowest test acc after 95% | "
             "test acc at the end (step) |", "|---|---|---|---|---|"]
    for run in (load_run(d) for d in sorted(folder.iterdir())):
        hit = first_row_at(run.metrics, 0.95)
        s95 = hit["step"] if hit else None
        after = [row for row in run.metrics if s95 is not None and row["step"] >= s95]
        fell = next((row["step"] for row in after if row["test_acc"] < 0.9), None)
        last = run.metrics[-1]
        lines.append(f"| {run.path.name}{'' if run.finished else ' (running)'} | {fmt(s95 or math.inf)} | "
                     f"{'never' if fell is None else f'{fell:,}'} | "
                     f"{min(r['test_acc'] for r in after):.0%} | {last['test_acc']:.0%} ({last['step']:,}) |"
                     if after else f"| {run.path.name}{'' if run.finished else ' (running)'} | not reached | — | — | "
                                   f"{last['test_acc']:.0%} ({last['step']:,}) |")
    return lines


def is_neuralgrok(group: Group) -> bool:
    """Whether a group's runs are NeuralGrok runs (a variant), not a baseline."""
    return bool(group.finished) and group.finished[0].config["method"] == "neuralgrok"


def baseline_points(grouped: dict[str, list[Group]]) -> dict[str, dict[str, list[SweepPoint]]]:
    """Per task, per baseline family, its weight decays: the swept families, and a method run at one decay.

    A group the sweep does not place (no grid records a weight-decay sweep for it: a method run at one chosen
    decay, as in ``meta_nonneg_seeds34``) is a family of its own at its config's decay. NeuralGrok groups are
    variants, never baselines.
    """
    base = {t: [g for g in gs if g.finished and not is_neuralgrok(g)] for t, gs in grouped.items()}
    out = weight_decay_sweeps(base, min_points=1)  # a family at one decay so far too
    for task, groups in base.items():
        placed = {id(p.group) for points in out.get(task, {}).values() for p in points}
        for g in groups:
            if id(g) not in placed:
                wd = float(g.finished[0].config.get("weight_decay", 0.0))
                out.setdefault(task, {})[g.label] = [SweepPoint(wd, g)]
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.inf


def fmt(x: float) -> str:
    return "not reached" if math.isinf(x) else f"{x:,.0f}"


def ratio(a: float, b: float) -> str:
    return "—" if math.isinf(a) or math.isinf(b) else f"{a / b:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=Path, default=RESULTS / "meta_study" / "runs")
    ap.add_argument("--baselines", type=Path, default=RESULTS / "meta_baselines" / "runs")
    ap.add_argument("--bench", type=Path, default=RESULTS / "bench" / "methods" / "bench.json")
    ap.add_argument("--dev", default="a+b:0", help="TASK:SEED of the development cell")
    ap.add_argument("--seeds", help="only runs of these seeds, variants and baselines alike (comma-separated)")
    ap.add_argument("--hold", type=Path, help="instead, the table of runs trained past their early stop in this "
                                              "runs folder (experiments/results/meta_hold/runs)")
    args = ap.parse_args(argv)
    if args.hold:
        print("\n".join(hold_rows(args.hold)))
        return 0
    costs = step_costs(args.bench)
    dev_task, dev_seed = args.dev.rsplit(":", 1)
    dev = lambda r: r.config["task"] == dev_task and str(r.config["seed"]) == dev_seed  # noqa: E731
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    finished = lambda folder: [r for r in map(load_run, sorted(folder.iterdir()))  # noqa: E731
                               if r.finished and (seeds is None or r.config.get("seed", 0) in seeds)]
    sweeps = baseline_points(group_runs(finished(args.baselines)))
    lines = ["| task | variant | steps to 95% by seed | median | best baseline (weight decay): median steps | "
             "steps ratio | wall-clock ratio | lowest test acc after 95%, variant / best baseline |",
             "|---|---|---|---|---|---|---|---|"]
    variants = {t: [g for g in gs if is_neuralgrok(g)] for t, gs in group_runs(finished(args.variants)).items()}
    for task, groups in sorted(variants.items(), key=lambda kv: ORDER.index(kv[1][0].task)
                               if kv[1][0].task in ORDER else len(ORDER)):
        if task not in sweeps:
            continue
        best = {family: best_point(points) for family, points in sweeps[task].items()}
        base_steps = {f: median([r.summary["steps_to_95"] or math.inf for r in p.group.finished])
                      for f, p in best.items()}
        base_wall = {f: median([wall_units(r, costs) for r in p.group.finished]) for f, p in best.items()}
        top = min(base_steps, key=base_steps.get)
        for g in groups:
            runs = sorted(g.finished, key=lambda r: r.config["seed"])
            counted = [r for r in runs if not dev(r)]
            steps = median([r.summary["steps_to_95"] or math.inf for r in counted])
            wall = median([wall_units(r, costs) for r in counted])
            by_seed = " / ".join(("(" if dev(r) else "") + f"s{r.config['seed']} "
                                 + fmt(r.summary["steps_to_95"] or math.inf) + (", dev)" if dev(r) else "")
                                 for r in runs)
            baseline = "; ".join(f"{f} ({best[f].weight_decay:g}): {fmt(base_steps[f])}" for f in best)
            drops = [[x for x in map(worst_after_95, rs) if not math.isnan(x)]
                     for rs in (counted, best[top].group.finished)]
            drops = [f"{min(d):.0%}" if d else "—" for d in drops]
            known = [w for w in base_wall.values() if not math.isnan(w)]
            wall_ratio = "—" if math.isnan(base_wall[top]) else ratio(wall, min(known))  # no cost for the best
            lines.append(f"| {task} | {g.label} | {by_seed} | {fmt(steps)} | {baseline} | "
                         f"{ratio(steps, base_steps[top])} | {wall_ratio} | "
                         f"{' / '.join(drops)} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
