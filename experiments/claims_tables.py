"""The numbers behind experiments/results/claims/README.md, from every committed run of the reference model.

    python experiments/claims_tables.py            (prints Markdown tables; --out DIR also writes the claims figures)

Runs are grouped by method family (not by label): the published NeuralGrok amplifier, weight decay without a
gradient method (Adam-L2 or AdamW, decay > 0), gradient normalisation + clip, Grokfast-MA, Grokfast-EMA, ⊥Grad,
the learnt coefficients, training at a constant weight norm (Omnigrok); each group's stability after first reaching
95% and the behaviour of scale-free AGE (neuralgrok/claims.py), and whether AGE at memorisation predicts the steps
to 95% within each task. The runs of a study still in progress (``NOT_READ``) are left out until it is complete.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from neuralgrok.aggregate import load_run, markdown_table
from neuralgrok.claims_report import by_method, per_run, predictive

ROOT = Path(__file__).resolve().parents[1]
NOT_READ = {"controls"}  # issue 39's study, in progress (controls_compare.py reads it): its runs enter when it is done


def family(cfg: dict) -> str | None:
    """A committed run's method family for the claims, or None for runs the claims do not read."""
    if cfg.get("arch", "prenorm") != "reference" or cfg.get("loss", "softmax") != "softmax":
        return None
    method = cfg.get("method")
    if cfg.get("weight_norm"):  # Omnigrok's constant-norm runs: no decay, the norm held fixed; a family of its own
        return "constant weight norm"
    if method == "neuralgrok":
        return "NeuralGrok (published amplifier)" if cfg.get("amp_features", "g") == "g" else "learnt coefficients"
    if method == "standard":
        return "weight decay (no gradient method)" if cfg.get("weight_decay", 0) > 0 else "standard, no decay"
    if method == "gradnorm":
        return "gradnorm + clip" if cfg.get("clip_grad") else "gradnorm"
    return {"grokfast_ma": "Grokfast-MA", "grokfast_ema": "Grokfast-EMA", "orthograd": "⊥Grad"}.get(method)


def committed_runs():
    out = []
    for config in sorted((ROOT / "experiments" / "results").glob("*/runs/*/config.json")):
        if (config.parent / "reused_from.json").exists():  # a grid's copy of a run counted where it was trained
            continue
        run = load_run(config.parent)
        if not run.finished or "prenorm" in config.parts or config.parts[-4] in NOT_READ:
            continue
        name = family(run.config)
        if name is not None:
            run.config = {**run.config, "label": name}  # group by family in the tables
            out.append(run)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write claims.json and the figures here")
    args = ap.parse_args()
    runs = committed_runs()
    if args.out:
        from neuralgrok.claims_report import write_runs
        write_runs(runs, args.out)  # claims.md, claims.json and the figures, by family
    records = per_run(runs)
    methods = by_method(records)
    print(markdown_table(methods, list(methods[0])))
    rho = predictive(records)
    print("\n" + markdown_table(rho, list(rho[0])))
    within = []  # the same within each family: does AGE predict steps when the method is held fixed?
    for name in sorted({r["label"] for r in records}):
        pooled = [row for row in predictive([r for r in records if r["label"] == name]) if row["task"].startswith("all")]
        within += [{**row, "task": f"{name}: {row['task']}"} for row in pooled]
    print("\n" + markdown_table(within, list(within[0])))


if __name__ == "__main__":
    main()
