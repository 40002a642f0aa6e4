"""The tests of claims (e), (h), (k), (l) and (m), as fixed in the headers of experiments/grids/claims/*.toml.

    python experiments/claims_sweeps.py [--results experiments/results]

Reads the finished runs of experiments/results/claims (and the reference runs the tests name: c = 1 from
ng_setup, initial scale 1 from wd_sweep, Grokfast-MA from grokfast) and prints, per claim, the numbers and the
verdict of its test; a cell without finished runs is reported as missing, and its claim as not decided.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from neuralgrok.aggregate import load_run
from neuralgrok.claims import first_step, spearman, steps_or_cap

ROOT = Path(__file__).resolve().parents[1]


def runs(folder: Path, pattern: str) -> dict[str, object]:
    """Finished runs under ``folder/runs`` whose name matches ``pattern``, by name."""
    out = {}
    for path in sorted((folder / "runs").glob(pattern)):
        run = load_run(path)
        if run.finished:
            out[path.name] = run
    return out


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}" if x == int(x) else f"{x:,.1f}"


def verdict_line(verdict: str) -> str:
    print(f"verdict: {verdict}\n")
    return verdict


def amp_c(res: Path) -> str:
    """(e): every c reaches 95% on all seeds, each median within 1.5x of c = 1's (in part: true of c <= 1 only)."""
    print("## (e) NeuralGrok's rescaling coefficient c, (a+b) mod 97")
    medians, all_reached = {}, {}
    for c in ("0.5", "1", "2", "4"):
        got = runs(res / "claims", f"add-ng_c-amp_c{c}-s*")
        if len(got) < 3:
            print(f"c = {c}: {len(got)} of 3 seeds finished")
            continue
        steps = [steps_or_cap(r) for r in got.values()]
        medians[c], all_reached[c] = statistics.median(steps), all(r.summary["steps_to_95"] for r in got.values())
        print(f"c = {c}: {' / '.join(fmt(s) for s in steps)}, median {fmt(medians[c])}, all reached 95%: {all_reached[c]}")
    if len(medians) < 4 or "1" not in medians:
        return verdict_line("not decided (cells missing)")
    ok = {c: all_reached[c] and medians[c] <= 1.5 * medians["1"] for c in medians}
    ratios = ", ".join(f"c={c}: {medians[c] / medians['1']:.2f}x" for c in medians)
    verdict = "holds" if all(ok.values()) else "holds in part" if ok["0.5"] and ok["1"] else "does not hold"
    print(f"median / c=1's: {ratios}")
    return verdict_line(verdict)


def baseline_50k(res: Path) -> str:
    """(h): the unfiltered baseline's steps over Grokfast-MA's median (the paper: 39,890 / 790, about 50x); the grid's
    test: at least 25x holds, 10-25x in part, below 10x not. A run stopped early without 95% gives a lower bound."""
    print("## (h) Grokfast's acceleration over the unfiltered baseline, (a*b) mod 97")
    path = res / "claims" / "runs" / "mul-baseline-s0"
    ma = [steps_or_cap(r) for r in runs(res / "grokfast", "mul-grokfast_ma-s*").values()]
    if not (path / "config.json").exists() or not ma:
        print("baseline or Grokfast-MA runs missing")
        return verdict_line("not decided")
    run, med = load_run(path), statistics.median(ma)
    s95 = first_step(run.metrics, "test_acc", 0.95)
    last = run.metrics[-1]["step"] if run.metrics else 0
    done = "" if run.finished else " (stopped before its cap)"
    print(f"baseline seed 0: {'95% at ' + fmt(s95) if s95 else 'no 95% by step ' + fmt(last)}{done}, best test "
          f"accuracy {max((r.get('test_acc', 0) for r in run.metrics), default=0):.3f}; Grokfast-MA median {fmt(med)} "
          f"({' / '.join(fmt(s) for s in ma)})")
    ratio = (s95 or last) / med
    print(f"acceleration: {'at least ' if not s95 else ''}{ratio:.1f}x (the paper: 39,890 / 790 = 50.5x)")
    if s95 or run.finished:
        return verdict_line("holds" if ratio >= 25 else "holds in part" if ratio >= 10 else "does not hold")
    return verdict_line("holds" if ratio >= 25 else "not decided")


def constant_norm(res: Path) -> str:
    """(k): at some norm both seeds reach 95% test within 200 steps of first reaching 95% train accuracy."""
    print("## (k) Omnigrok: training at a constant weight norm, (a*b) mod 97, Adam without decay")
    found, seen = False, 0
    for norm in ("30", "45", "60"):
        got = runs(res / "claims", f"mul-constant_norm-weight_norm{norm}-s*")
        gaps, seen = [], seen + len(got)
        for name, run in got.items():
            train, test = first_step(run.metrics, "train_acc", 0.95), first_step(run.metrics, "test_acc", 0.95)
            gaps.append(None if train is None or test is None else test - train)
            print(f"norm {norm} {name[-2:]}: train 95% at {fmt(train)}, test 95% at {fmt(test)}, "
                  f"best test {run.summary['best_test_acc']:.3f}")
        found |= len(gaps) == 2 and all(g is not None and g <= 200 for g in gaps)
    verdict = ("holds" if found else "does not hold" if seen == 6 else
               "not decided (no finished run)" if not seen else f"not met by the {seen} finished runs of 6")
    return verdict_line(verdict)


def large_init(res: Path) -> str:
    """(l): steps to 95% grow with the initial scale 1 -> 2 -> 4 on seed 0 (AdamW 0.3)."""
    print("## (l) Omnigrok: a large initialisation delays generalisation, (a*b) mod 97, AdamW 0.3, seed 0")
    steps = {"1": runs(res / "wd_sweep", "mul-standard_adamw-wd0.3-s0")}
    for scale in ("2", "4"):
        steps[scale] = runs(res / "claims", f"mul-large_init-init_scale{scale}-s0")
    if not all(steps.values()):
        print(f"missing: {[s for s, r in steps.items() if not r]}")
        return verdict_line("not decided")
    values = {s: steps_or_cap(next(iter(r.values()))) for s, r in steps.items()}
    print(", ".join(f"scale {s}: {fmt(v)}" for s, v in values.items()))
    grows = values["1"] < values["2"] < values["4"]
    return verdict_line("holds" if grows else "does not hold")  # a run without 95% counts as its last step


def train_frac(res: Path) -> str:
    """(m): median steps to 95% fall with the training fraction, Spearman rho <= -0.9 over the six medians."""
    print("## (m) Power et al.: steps to 95% against the training fraction, (a*b) mod 97, AdamW 1")
    fracs, medians = [], []
    for frac in ("0.3", "0.4", "0.5", "0.6", "0.7", "0.8"):
        got = runs(res / "claims", f"mul-adamw-train_frac{frac}-s*")
        steps = [steps_or_cap(r) for r in got.values()]
        print(f"fraction {frac}: {' / '.join(fmt(s) for s in steps) or 'no finished run'}")
        if steps:
            fracs.append(float(frac))
            medians.append(statistics.median(steps))
    if len(fracs) < 6:
        return verdict_line("not decided (fractions missing)")
    rho = spearman(fracs, medians)
    print(f"Spearman rho (fraction, median steps) = {rho:+.2f}")
    return verdict_line("holds" if rho is not None and rho <= -0.9 else "does not hold")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "experiments" / "results")
    res = ap.parse_args().results
    for test in (amp_c, baseline_50k, constant_norm, large_init, train_frac):
        test(res)


if __name__ == "__main__":
    main()
