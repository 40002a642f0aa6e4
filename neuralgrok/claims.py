"""Tests of the grokking papers' claims on run folders: stability, AGE's trend and lead, rank correlations, intervals.

Each function reads runs as ``aggregate.Run`` (config, metrics lines, summary) and returns numbers;
``neuralgrok claims RUN... --out DIR`` applies them to any runs and writes a table and figures
(``claims_figures.py``).  The definitions, fixed before looking at the project's runs:

- **memorised**: the first evaluation with training accuracy >= 0.99;
- **instability** after the first evaluation at >= 95% test accuracy: the lowest test accuracy
  from there on, the largest peak-to-trough drop of test accuracy, and the *train-loss spikes*
  after memorisation, evaluations whose train loss exceeds both 0.1 and 10x the lowest train
  loss seen before them;
- **AGE falls**: the first evaluation after memorisation from which the effective number of
  gradient entries, exp(scale-free AGE), stays at or below 90% of its highest value up to
  memorisation for the rest of the run (a sustained fall; scale-free AGE itself is bounded by
  ln(number of entries), about 12.96 here, and moves by a few per cent only, so the fall is measured
  on its exponential: AGE at least ln(1/0.9) = 0.105 nats below its peak). The first definition,
  90% of the AGE value itself, was fixed before looking and met by no committed run: the analysis
  reports that count too (``falls_on_value``);
  **generalisation rises**: the first evaluation with test accuracy >= 50%; the **lead** is the
  second step minus the first (positive: AGE fell first);
- **AGE keeps falling** (NeuralGrok's "constantly reduces"): Spearman's rho between step and
  scale-free AGE from memorisation on, <= -0.5.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

MEMORISED, RISE, FALL = 0.99, 0.5, 0.9  # train accuracy that counts as memorised; test accuracy that marks the rise;
# the share of its highest value that scale-free AGE must stay under for a sustained fall
SPIKE_FACTOR, SPIKE_FLOOR = 10.0, 0.1


def first_step(rows: list[dict], key: str, threshold: float) -> int | None:
    """The step of the first evaluation with ``key`` at or above ``threshold`` (None if never)."""
    return next((r["step"] for r in rows if _finite(r.get(key)) and r[key] >= threshold), None)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Stability:
    """Test accuracy after first reaching 95%, and train-loss spikes after memorisation."""

    first_95: int | None
    lowest_after: float | None  # the lowest test accuracy from the first 95% on
    largest_drop: float | None  # the largest peak-to-trough fall of test accuracy from there on
    loss_spikes: int


def stability(rows: list[dict]) -> Stability:
    at = first_step(rows, "test_acc", 0.95)
    lowest = drop = None
    if at is not None:
        accs = [r["test_acc"] for r in rows if r["step"] >= at and _finite(r.get("test_acc"))]
        lowest, peak, drop = min(accs), -1.0, 0.0
        for a in accs:
            peak = max(peak, a)
            drop = max(drop, peak - a)
    spikes, low = 0, math.inf
    memorised = first_step(rows, "train_acc", MEMORISED)
    for r in rows:
        loss = r.get("train_loss")
        if not _finite(loss):
            continue
        if memorised is not None and r["step"] > memorised and loss > max(SPIKE_FLOOR, SPIKE_FACTOR * low):
            spikes += 1
        low = min(low, loss)
    return Stability(at, lowest, drop, spikes)


@dataclass
class AgeTiming:
    """When scale-free AGE falls for good and when test accuracy rises, and AGE's value at memorisation."""

    memorised: int | None
    age_at_memorised: float | None
    falls: int | None
    rises: int | None
    trend: float | None  # Spearman's rho between step and scale-free AGE from memorisation on
    falls_on_value: int | None = None  # the first definition's step: AGE itself at or below 90% of its peak

    @property
    def lead(self) -> int | None:
        return None if self.falls is None or self.rises is None else self.rises - self.falls


def age_timing(rows: list[dict], key: str = "age_scaled") -> AgeTiming:
    memorised = first_step(rows, "train_acc", MEMORISED)
    rises = first_step(rows, "test_acc", RISE)
    series = [(r["step"], r[key]) for r in rows if _finite(r.get(key))]
    if memorised is None or not series:
        return AgeTiming(memorised, None, None, rises, None)
    before = [v for s, v in series if s <= memorised]
    after = [(s, v) for s, v in series if s >= memorised]
    at = after[0][1] if after else None
    falls = _sustained_below(after, max(before) + math.log(FALL)) if before else None  # exp(AGE) <= 0.9 max
    on_value = _sustained_below(after, FALL * max(before)) if before else None
    trend = spearman([s for s, _ in after], [v for _, v in after]) if len(after) >= 3 else None
    return AgeTiming(memorised, at, falls, rises, trend, on_value)


def _sustained_below(series: list[tuple[int, float]], bound: float) -> int | None:
    """The first step from which every value of ``series`` is at or below ``bound``."""
    for i, (s, _) in enumerate(series):
        if all(v <= bound for _, v in series[i:]):
            return s
    return None


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties given their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on the ranks); None when either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def bootstrap_interval(x: list[float], y: list[float], n: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float] | None:
    """A percentile bootstrap interval for Spearman's rho, resampling (x, y) pairs."""
    rng, values = random.Random(seed), []
    idx = range(len(x))
    for _ in range(n):
        pick = [rng.choice(idx) for _ in idx]
        r = spearman([x[i] for i in pick], [y[i] for i in pick])
        if r is not None:
            values.append(r)
    if not values:
        return None
    values.sort()
    lo, hi = values[int((1 - level) / 2 * len(values))], values[min(len(values) - 1, int((1 + level) / 2 * len(values)))]
    return lo, hi


def median_ratio_interval(a: list[float], b: list[float], n: int = 2000, level: float = 0.95,
                          seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for median(a) / median(b), resampling each group on its own."""
    rng, values = random.Random(seed), []
    for _ in range(n):
        values.append(statistics.median(rng.choices(a, k=len(a))) / statistics.median(rng.choices(b, k=len(b))))
    values.sort()
    return values[int((1 - level) / 2 * n)], values[min(n - 1, int((1 + level) / 2 * n))]


def mann_whitney_less(a: list[float], b: list[float]) -> float:
    """One-sided exact p-value that ``a`` tends to be smaller than ``b``: the share of all ways of splitting the
    pooled values into groups of their sizes whose U (pairs first < second, ties a half) is at least ``a``'s.

    U of a group is fixed by its sum of mid-ranks R (U = n m + n (n + 1) / 2 - R), so the share is that of the
    size-n subsets with R at most ``a``'s, counted exactly by a table over (subset size, doubled rank sum):
    O(N^2 n) steps instead of C(N, n) splits, exact with ties (doubled mid-ranks are integers).
    """
    n = len(a)
    doubled = [round(2 * r) for r in ranks([*a, *b])]
    observed = sum(doubled[:n])
    counts = [dict() for _ in range(n + 1)]  # counts[k][s]: subsets of size k with doubled rank sum s
    counts[0][0] = 1
    for r in doubled:
        for k in range(n, 0, -1):
            for s, c in counts[k - 1].items():
                counts[k][s + r] = counts[k].get(s + r, 0) + c
    at_most = sum(c for s, c in counts[n].items() if s <= observed)
    return at_most / math.comb(len(doubled), n)


def steps_or_cap(run) -> float:
    """Steps to 95% test accuracy, or the run's last step where it never got there (ranked slowest)."""
    s95 = (run.summary or {}).get("steps_to_95")
    return float(s95) if s95 is not None else float((run.summary or {}).get("steps", run.max_steps or math.inf)) + 0.5
