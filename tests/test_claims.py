"""The claim tests on made-up runs whose answers are known: stability, AGE's fall and lead, ranks and intervals."""
import itertools
import json
import math
import random

import pytest

from neuralgrok.claims import (age_timing, bootstrap_interval, mann_whitney_less, median_ratio_interval, ranks,
                               spearman, stability, steps_or_cap)
from neuralgrok.cli import main


def rows(n=40, every=10, memorise_at=100, rise_at=250, age_peak=12.2, age_end=11.7, fall_at=200, collapse=None,
         spike_at=None):
    """A run: train accuracy 1 from ``memorise_at``; test accuracy 0.02, then 0.6 from ``rise_at`` and 0.99 after;
    scale-free AGE at ``age_peak`` until ``fall_at``, then ``age_end``; optional collapse and loss spike."""
    out = []
    for i in range(1, n + 1):
        s = i * every
        test = 0.02 if s < rise_at else 0.6 if s < rise_at + 50 else 0.99
        if collapse and collapse[0] <= s < collapse[1]:
            test = 0.3
        loss = 0.001 if s >= memorise_at else 2.0
        if spike_at == s:
            loss = 0.5
        out.append({"step": s, "train_acc": 1.0 if s >= memorise_at else 0.5, "test_acc": test, "train_loss": loss,
                    "test_loss": 1.0, "weight_norm": 40.0 + s / 100, "age_scaled": age_peak if s < fall_at else age_end})
    return out


def test_stability_finds_the_lowest_accuracy_the_drop_and_the_spikes():
    calm = stability(rows())
    assert (calm.first_95, calm.lowest_after, calm.largest_drop, calm.loss_spikes) == (300, 0.99, 0.0, 0)
    swing = stability(rows(collapse=(320, 340), spike_at=330))
    assert (swing.first_95, swing.lowest_after, swing.largest_drop, swing.loss_spikes) == (300, 0.3, 0.99 - 0.3, 1)
    assert stability(rows(rise_at=10_000)).lowest_after is None  # never at 95%


def test_age_timing_the_fall_the_rise_and_the_lead():
    t = age_timing(rows(memorise_at=100, fall_at=200, rise_at=250))
    assert (t.memorised, t.age_at_memorised, t.falls, t.rises, t.lead) == (100, 12.2, 200, 250, 50)
    late = age_timing(rows(fall_at=400, rise_at=250))
    assert late.lead == -150  # AGE falls after accuracy rises
    small = age_timing(rows(age_end=12.2 - 0.05))  # a fall smaller than ln(1/0.9) nats is no fall
    assert small.falls is None and small.lead is None
    assert age_timing(rows()).falls_on_value is None  # 11.7 is not 90% of 12.2: the first definition's fall
    assert age_timing(rows(age_end=10.0)).falls_on_value == 200
    back = rows()
    back[-1]["age_scaled"] = 12.2  # not sustained: AGE comes back at the end
    assert age_timing(back).falls is None
    assert age_timing(rows(memorise_at=10_000)).memorised is None


def test_trend_is_spearman_of_age_against_step_after_memorisation():
    r = rows()
    for i, row in enumerate(r):
        row["age_scaled"] = 12.0 - 0.01 * i
    assert age_timing(r).trend == pytest.approx(-1.0)
    r[-1]["age_scaled"] = 20.0
    assert -1.0 < age_timing(r).trend < -0.8


def test_ranks_spearman_and_mann_whitney_by_hand():
    assert ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0 and spearman([1, 2, 3], [3, 2, 1]) == -1.0
    assert spearman([1, 2, 3], [5, 5, 5]) is None
    # rho = 1 - 6 sum d^2 / (n (n^2 - 1)) without ties: d = (0, -1, 1, 0, 0) -> 1 - 12/120 = 0.9
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert mann_whitney_less([1, 2, 3], [4, 5, 6]) == pytest.approx(1 / 20)  # 1 of the C(6, 3) = 20 splits
    assert mann_whitney_less([4, 5, 6], [1, 2, 3]) == 1.0


def _mann_whitney_by_enumeration(a, b):
    """A second implementation: U of every split of the pooled values, counted one by one."""
    pooled, n = [*a, *b], len(a)

    def u(group):
        rest = [j for j in range(len(pooled)) if j not in group]
        return sum((pooled[i] < pooled[j]) + 0.5 * (pooled[i] == pooled[j]) for i in group for j in rest)
    observed = u(tuple(range(n)))
    splits = list(itertools.combinations(range(len(pooled)), n))
    return sum(u(s) >= observed for s in splits) / len(splits)


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_counts_as_enumerating_every_split_with_ties(seed):
    rng = random.Random(seed)
    a = [rng.choice([1, 2, 2, 3, 5, 8]) for _ in range(rng.randint(1, 5))]
    b = [rng.choice([1, 2, 3, 3, 5, 9]) for _ in range(rng.randint(1, 5))]
    assert mann_whitney_less(a, b) == pytest.approx(_mann_whitney_by_enumeration(a, b), abs=1e-12)


def test_mann_whitney_ten_against_ten_by_formula():
    # a's ten values below all of b's: only that one split of the C(20, 10) = 184,756 has U this large
    assert mann_whitney_less(list(range(10)), list(range(10, 20))) == pytest.approx(1 / math.comb(20, 10))
    # every value tied: every split has the same U, p = 1
    assert mann_whitney_less([3] * 10, [3] * 10) == 1.0


def test_median_ratio_interval_covers_the_ratio_and_is_seeded():
    a, b = [100, 110, 90, 105, 95], [200, 220, 180, 210, 190]
    lo, hi = median_ratio_interval(a, b, seed=3)
    assert lo <= 0.5 <= hi and hi < 0.7 and lo > 0.35
    assert median_ratio_interval(a, b, seed=3) == (lo, hi)
    assert median_ratio_interval([5, 5], [10, 10]) == (0.5, 0.5)


def test_against_scipy_where_it_is_installed():
    stats = pytest.importorskip("scipy.stats")
    x, y = [0.3, 1.2, 2.2, 0.1, 5.0, 4.4, 3.3], [1, 2, 2, 0, 9, 4, 3]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    for a, b in (([3, 9, 4, 12], [8, 14, 10, 15, 11]), ([float(v) for v in range(0, 30, 3)], [v + 7.5 for v in range(10)])):
        assert mann_whitney_less(a, b) == pytest.approx(stats.mannwhitneyu(a, b, alternative="less",
                                                                          method="exact").pvalue)


def test_bootstrap_interval_covers_a_strong_correlation_and_straddles_none():
    x = list(range(30))
    lo, hi = bootstrap_interval(x, [v + (v % 3) for v in x], seed=1)
    assert 0.8 < lo <= hi <= 1.0
    lo, hi = bootstrap_interval(x, [math.sin(v * 12.9898) for v in x], seed=1)  # no relation
    assert lo < 0 < hi


def test_steps_or_cap_ranks_a_run_that_never_reached_95_slowest():
    class R:
        max_steps = 1000
        summary = {"steps_to_95": None, "steps": 1000}
    assert steps_or_cap(R()) > 1000
    R.summary = {"steps_to_95": 420, "steps": 600}
    assert steps_or_cap(R()) == 420


def _run(root, name, method, seed, **kw):
    d = root / name
    d.mkdir(parents=True)
    metrics = rows(**kw)
    (d / "config.json").write_text(json.dumps({"task": "a+b", "p": 97, "method": method, "seed": seed}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    s95 = next((m["step"] for m in metrics if m["test_acc"] >= 0.95), None)
    (d / "summary.json").write_text(json.dumps({"steps_to_95": s95, "steps": metrics[-1]["step"]}))
    return d


def test_the_command_tables_what_the_runs_hold(tmp_path, capsys):
    dirs = [_run(tmp_path, "ng0", "neuralgrok", 0, fall_at=150, rise_at=250),
            _run(tmp_path, "ng1", "neuralgrok", 1, fall_at=150, rise_at=300),
            _run(tmp_path, "st0", "standard", 0, fall_at=400, rise_at=250, collapse=(320, 340)),
            _run(tmp_path, "st1", "standard", 1, fall_at=400, rise_at=270)]
    assert main(["claims", *map(str, dirs), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "claims.json").read_text())
    by = {r["method"]: r for r in data["by_method"]}
    assert by["neuralgrok"]["AGE falls before the rise"] == "2/2" and by["neuralgrok"]["median lead (steps)"] == "125"
    assert by["standard"]["AGE falls before the rise"] == "0/2" and by["standard"]["runs dropping > 10 points"] == "1"
    assert [r["lead"] for r in data["runs"]] == [100, 150, -150, -130]
    for name in ("age_and_accuracy.png", "leads_and_stability.png", "loss_vs_weight_norm.png", "claims.md"):
        assert (tmp_path / "out" / name).stat().st_size > 500
    assert main(["claims", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_claims_json_records_run_folders_relative_to_the_current_directory(tmp_path, monkeypatch):
    """A committed claims.json names runs as a clone can find them, not by the author's absolute checkout path."""
    run = _run(tmp_path / "results", "ng0", "neuralgrok", 0)
    monkeypatch.chdir(tmp_path)
    assert main(["claims", str(run.resolve()), "--out", "out"]) == 0
    assert [r["run"] for r in json.loads((tmp_path / "out" / "claims.json").read_text())["runs"]] == ["results/ng0"]
