"""experiments/claims_sweeps.py on made-up runs: each claim's test gives the verdict its grid header fixes."""
import json

from conftest import experiment_script


def _module():
    return experiment_script("claims_sweeps")


def _run(res, study, name, s95, steps=3000, rows=()):
    d = res / study / "runs" / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"task": "a*b", "p": 97, "method": "standard", "max_steps": steps}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) or '{"step": 10}\n')
    (d / "summary.json").write_text(json.dumps({"steps_to_95": s95, "steps": steps, "best_test_acc": 0.99}))


def test_amp_c_holds_only_where_every_c_reaches_95_within_1_5x(tmp_path):
    mod = _module()
    for c, steps in {"0.5": 1000, "1": 1000, "2": 1400, "4": 1600}.items():  # c = 4: 1.6x of c = 1's
        for s in range(3):
            _run(tmp_path, "claims", f"add-ng_c-amp_c{c}-s{s}", steps + 10 * s)
    assert mod.amp_c(tmp_path) == "holds in part"
    (tmp_path / "claims" / "runs" / "add-ng_c-amp_c4-s0").rename(tmp_path / "gone")
    assert mod.amp_c(tmp_path) == "not decided (cells missing)"


def test_train_frac_needs_a_falling_median_over_all_six_fractions(tmp_path):
    mod = _module()
    for i, frac in enumerate(("0.3", "0.4", "0.5", "0.6", "0.7", "0.8")):
        _run(tmp_path, "claims", f"mul-adamw-train_frac{frac}-s0", 6000 - 900 * i)
        _run(tmp_path, "claims", f"mul-adamw-train_frac{frac}-s1", None if i == 0 else 5000 - 800 * i, steps=10000)
    assert mod.train_frac(tmp_path) == "holds"  # medians strictly falling: rho = -1
    (tmp_path / "claims" / "runs" / "mul-adamw-train_frac0.8-s0" / "summary.json").write_text(
        json.dumps({"steps_to_95": 9000, "steps": 9000}))
    (tmp_path / "claims" / "runs" / "mul-adamw-train_frac0.8-s1" / "summary.json").write_text(
        json.dumps({"steps_to_95": 9000, "steps": 9000}))
    assert mod.train_frac(tmp_path) == "does not hold"  # the last median highest: rho = 1 - 6*40/210 = -0.14


def test_constant_norm_holds_when_test_follows_train_within_200_steps_on_both_seeds(tmp_path):
    mod = _module()
    together = [{"step": 100, "train_acc": 0.5, "test_acc": 0.4}, {"step": 200, "train_acc": 0.96, "test_acc": 0.9},
                {"step": 300, "train_acc": 1.0, "test_acc": 0.96}]
    delayed = [{"step": 200, "train_acc": 0.96, "test_acc": 0.1}, {"step": 900, "train_acc": 1.0, "test_acc": 0.96}]
    _run(tmp_path, "claims", "mul-constant_norm-weight_norm30-s0", 300, rows=together)
    _run(tmp_path, "claims", "mul-constant_norm-weight_norm30-s1", 900, rows=delayed)
    assert mod.constant_norm(tmp_path) == "not met by the 2 finished runs of 6"
    _run(tmp_path, "claims", "mul-constant_norm-weight_norm45-s0", 300, rows=together)
    _run(tmp_path, "claims", "mul-constant_norm-weight_norm45-s1", 300, rows=together)
    assert mod.constant_norm(tmp_path) == "holds"


def test_large_init_and_the_50k_baseline(tmp_path):
    mod = _module()
    assert mod.large_init(tmp_path) == "not decided"
    _run(tmp_path, "wd_sweep", "mul-standard_adamw-wd0.3-s0", 4350)
    _run(tmp_path, "claims", "mul-large_init-init_scale2-s0", 6000)
    _run(tmp_path, "claims", "mul-large_init-init_scale4-s0", None, steps=20000)  # never: counted as its last step
    assert mod.large_init(tmp_path) == "holds"
    for s, v in enumerate((740, 810, 890)):
        _run(tmp_path, "grokfast", f"mul-grokfast_ma-s{s}", v)
    assert mod.baseline_50k(tmp_path) == "not decided"
    _run(tmp_path, "claims", "mul-baseline-s0", None, steps=50000,
         rows=[{"step": 10, "test_acc": 0.1}, {"step": 12000, "test_acc": 0.5}])
    summary = tmp_path / "claims" / "runs" / "mul-baseline-s0" / "summary.json"
    summary.unlink()  # stopped at step 12,000: at least 14.8x, which cannot yet decide the 25x test
    assert mod.baseline_50k(tmp_path) == "not decided"
    (summary.parent / "metrics.jsonl").write_text('{"step": 10, "test_acc": 0.1}\n{"step": 21000, "test_acc": 0.5}\n')
    assert mod.baseline_50k(tmp_path) == "holds"  # no 95% by 21,000: at least 25.9x
    (summary.parent / "metrics.jsonl").write_text('{"step": 9000, "test_acc": 0.96}\n')
    assert mod.baseline_50k(tmp_path) == "holds in part"  # 95% at 9,000: 11.1x
