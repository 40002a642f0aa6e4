"""Which way does a held-out look-ahead objective push the update rule, at horizons of 1 to 1,500 steps?

    python -m experiments.horizon_bias --task a+b --out experiments/results/meta/horizon
    python -m experiments.horizon_bias --task a*b --out experiments/results/meta/horizon    (also redraws the figure)

NeuralGrok's meta step (and ``--meta-horizon K``) moves the gradient transform towards a lower loss on
a held-out slice of the training data after K steps.  This probe asks what that objective rewards once
the base model has memorised: the run trains with plain Adam (L2 1e-3, the paper's setting) on the
inner slice (the outer slice held back, as NeuralGrok holds it) until its training accuracy reaches
100% (or to ``--branch-at`` steps); from that one state, each variant of the update rule continues for up to ``--steps`` steps (the
same batches for all), and the held-out loss (what a K-step meta-objective sees) and the test
accuracy are recorded after K steps.  The variants are the directions a learnt transform can take:
more or less weight decay, and amplifying the slow gradient (Grokfast-EMA) or not.  If the variant
that generalises first (the test column at large K) is the one the objective ranks worst at small K,
the greedy objective steers away from what makes grokking fast: the short-horizon bias.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from neuralgrok.config import build
from neuralgrok.data import BatchStream
from neuralgrok.runfolder import task_slug, write_json
from neuralgrok.trainer import Trainer

HORIZONS = [1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500]
VARIANTS = {  # name: settings changed from the base (standard, Adam with L2 weight decay 1e-3)
    "wd 0": {"weight_decay": 0.0},
    "wd 1e-3 (base)": {},
    "wd 5.4e-3": {"weight_decay": 5.4e-3},
    "wd 2e-2": {"weight_decay": 2e-2},
    "Grokfast-EMA λ=2": {"method": "grokfast_ema", "ema_alpha": 0.98, "ema_lamb": 2.0},
}


def trainer_for(cfg, folder: Path) -> Trainer:
    """A trainer whose training batches come from the inner slice only: the outer slice stays held out."""
    t = Trainer(cfg, folder, quiet=True)
    t.stream = BatchStream(t.data.splits.inner, cfg.batch_size, cfg.seed)
    return t


def train_until(cfg, folder: Path, limit: int, at: int | None) -> tuple[dict, int, float]:
    """Trains to step ``at``, or without it until the inner slice is fitted (100% training accuracy).

    Returns the state, the step and the training accuracy on the inner slice there.
    """
    t = trainer_for(cfg, folder)
    while t.step < (at or limit):
        t.train_step(log=False)
        if at is None and t.step % 10 == 0 and t.evaluate(t.data.splits.inner)[1] == 1.0:
            break
    train_acc = t.evaluate(t.data.splits.inner)[1]
    if at is None and train_acc < 1.0:
        raise SystemExit(f"horizon_bias: the inner slice was not fitted in {limit} steps")
    return copy.deepcopy(t.state_dict()), t.step, train_acc


def branch(cfg, state: dict, changes: dict, steps: int, folder: Path) -> dict[int, dict]:
    """Continues from ``state`` with the changed update rule; the held-out loss and test accuracy after K steps."""
    t = trainer_for(dataclasses.replace(cfg, **changes), folder)
    fresh_transform = t.transform.state_dict()  # the variant's own filter starts at the branch point
    t.load_state_dict({**state, "transform": fresh_transform}, 0.0)
    for group in t.inner_opt.param_groups:  # the optimizer state carries the base's decay: set the variant's
        group["weight_decay"] = t.cfg.weight_decay
    out, start = {}, t.step
    for k in range(1, steps + 1):
        t.train_step(log=False)
        if k in HORIZONS:
            held_loss, held_acc, _ = t.evaluate(t.data.splits.outer)
            test_loss, test_acc, _ = t.evaluate(t.data.splits.test)
            out[k] = {"step": start + k, "held_out_loss": held_loss, "held_out_acc": held_acc,
                      "test_loss": test_loss, "test_acc": test_acc}
    return out


def table(results: dict, key: str, fmt: str) -> list[str]:
    names = list(results)
    lines = ["| K | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in HORIZONS:
        if all(str(k) in results[n] for n in names):
            row = [results[n][str(k)][key] for n in names]
            best = min(row) if key.endswith("loss") else max(row)
            cells = [(f"**{fmt.format(v)}**" if v == best else fmt.format(v)) for v in row]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def plot(files: list[Path], path: Path) -> None:
    """Held-out loss and test accuracy against K, one row of panels per probe file."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(files), 2, figsize=(11, 3.6 * len(files)), squeeze=False)
    for row, f in zip(axes, files):
        probe = json.loads(f.read_text())
        for name, by_k in probe["results"].items():
            ks = sorted(int(k) for k in by_k)
            for ax, key in zip(row, ("held_out_loss", "test_acc")):
                ax.plot(ks, [by_k[str(k)][key] for k in ks], marker=".", label=name)
        title = f"({probe['task']}) mod 97, seed {probe['seed']}, from step {probe['branched_at']}"
        for ax, what in zip(row, ("held-out loss after K steps (the meta-objective)", "test accuracy after K steps")):
            ax.set_xscale("log")
            ax.set_xlabel("K (steps after the branch)")
            ax.set_title(f"{what}\n{title}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="a+b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1500, help="longest horizon")
    ap.add_argument("--branch-at", type=int, help="branch at this step (default: once the inner slice is fitted)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot-only", action="store_true", help="only draw OUT/horizon_bias.png from OUT/*.json")
    args = ap.parse_args(argv)
    if args.plot_only:
        plot(sorted(args.out.glob("*.json")), args.out / "horizon_bias.png")
        return 0
    torch.set_num_threads(1)
    cfg = build({"task": args.task, "p": 97, "seed": args.seed, "weight_decay": 1e-3, "max_steps": 100_000})
    with tempfile.TemporaryDirectory() as tmp:
        state, branched, train_acc = train_until(cfg, Path(tmp) / "base", 3000, args.branch_at)
        print(f"branching at step {branched} (inner-slice accuracy {train_acc:.3f})", file=sys.stderr)
        results = {name: {str(k): v for k, v in branch(cfg, state, changes, args.steps, Path(tmp) / name).items()}
                   for name, changes in VARIANTS.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{task_slug(args.task)}-s{args.seed}" + (f"-at{args.branch_at}" if args.branch_at else "")
    write_json(args.out / f"{stem}.json", {"task": args.task, "seed": args.seed, "branched_at": branched,
                                           "inner_train_acc": train_acc, "variants": VARIANTS, "results": results})
    md = [f"## ({args.task}) mod 97, seed {args.seed}: branched at step {branched} "
          f"(training accuracy on the inner slice {train_acc:.1%})", "",
          "Held-out loss after K steps (what a K-step meta-objective minimises; best in bold):", "",
          *table(results, "held_out_loss", "{:.3f}"), "", "Test accuracy after K steps:", "",
          *table(results, "test_acc", "{:.3f}"), ""]
    (args.out / f"{stem}.md").write_text("\n".join(md))
    plot(sorted(args.out.glob("*.json")), args.out / "horizon_bias.png")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
