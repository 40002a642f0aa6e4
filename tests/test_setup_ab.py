"""experiments/setup_ab.py on made-up runs: medians, ratios, overlap and the exact one-sided p-values by hand."""
import json

from conftest import experiment_script


def _module():
    return experiment_script("setup_ab")


def _run(root, name, label, seed, s95, steps=3000):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"task": "a+b", "p": 97, "method": "neuralgrok", "label": label,
                                               "seed": seed, "max_steps": steps}))
    (d / "metrics.jsonl").write_text(json.dumps({"step": 10, "test_acc": 0.1}) + "\n")
    (d / "summary.json").write_text(json.dumps({"steps_to_95": s95, "steps": steps}))
    return d


def test_a_variant_apart_from_the_reference_and_one_that_overlaps(tmp_path):
    mod = _module()
    dirs = [_run(tmp_path, f"ref-s{s}", "ref", s, v) for s, v in enumerate([1000, 1100, 1200])]
    dirs += [_run(tmp_path, f"fast-s{s}", "fast", s, v) for s, v in enumerate([800, 900, 950])]
    dirs += [_run(tmp_path, f"mixed-s{s}", "mixed", s, v) for s, v in enumerate([900, 1150, None])]
    from neuralgrok.aggregate import load_run
    rows = {r["arm"]: r for r in mod.table([load_run(d) for d in dirs], "ref")}
    assert rows["fast"]["median"] == "900" and rows["fast"]["× reference"] == "0.82"
    assert rows["fast"]["apart from the reference"] == "yes" and rows["fast"]["p (faster)"] == "0.05"
    assert rows["mixed"]["steps to 95% by seed"] == "900 / 1,150 / not by 3,000"  # never reached: ranked slowest
    # U = 5 of 9 pairs with the reference faster; U is symmetric about 4.5 over the 20 splits: P(U >= 5) = 1/2
    assert rows["mixed"]["apart from the reference"] == "no" and rows["mixed"]["p (slower)"] == "0.50"
    assert "× reference" not in rows["ref"]


def test_a_median_between_a_reached_run_and_a_miss_is_a_lower_bound(tmp_path):
    mod = _module()
    dirs = [_run(tmp_path, "ref-s0", "ref", 0, 1000), _run(tmp_path, "ref-s1", "ref", 1, 1200)]
    dirs += [_run(tmp_path, "half-s0", "half", 0, None, steps=10000), _run(tmp_path, "half-s1", "half", 1, 1630)]
    dirs += [_run(tmp_path, "none-s0", "none", 0, None, steps=10000), _run(tmp_path, "none-s1", "none", 1, None, 10000)]
    from neuralgrok.aggregate import load_run
    rows = {r["arm"]: r for r in mod.table([load_run(d) for d in dirs], "ref")}
    assert rows["ref"]["median"] == "1,100"
    assert rows["half"]["median"] == "over 5,815"  # (1,630 + 10,000) / 2: the miss would need more than its cap
    assert rows["none"]["median"] == "not by 10,000"


def test_seeds_restricts_every_arm_to_the_ab_s_own_seeds(tmp_path, capsys):
    mod = _module()
    runs = tmp_path / "runs"
    for s, v in enumerate([1000, 1100, 1200]):
        _run(runs, f"ref-s{s}", "ref", s, v)
    for s, v in enumerate([800, 900, 950, 5000]):  # seed 3 belongs to another grid with the same label
        _run(runs, f"fast-s{s}", "fast", s, v)
    mod.main([str(tmp_path), "--reference", "ref", "--seeds", "0,1,2"])
    fast = next(line for line in capsys.readouterr().out.splitlines() if "| fast |" in line)
    assert "800 / 900 / 950 |" in fast and "5,000" not in fast and "| 0.05 |" in fast
    mod.main([str(tmp_path), "--reference", "ref"])
    assert "800 / 900 / 950 / 5,000" in capsys.readouterr().out
