"""experiments/meta_comparison.py on made-up run folders: best baseline per task, step and wall-clock ratios by hand."""
import json
from pathlib import Path

import pytest
from conftest import experiment_script


@pytest.fixture(scope="module")
def meta_comparison():
    return experiment_script("meta_comparison")


def write_run(root: Path, name: str, steps_to_95: int | None, **config) -> None:
    run = root / name
    run.mkdir(parents=True)
    config = {"task": "a+b", "p": 97, "weight_decay": 1e-3, **config}
    if " wd=" in config.get("label", ""):  # a swept cell: the grid records its family and the option swept
        config.update(family=config["label"].rsplit(" wd=", 1)[0], swept="weight_decay")
    (run / "config.json").write_text(json.dumps(config))
    last = 3000 if steps_to_95 is None else steps_to_95 + 100
    rows = [{"step": s, "test_acc": 0.5 if steps_to_95 is None or s < steps_to_95 else acc}
            for s, acc in ((0, 0.0), (steps_to_95 or 10, 0.97), (last, 0.99))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"steps_to_95": steps_to_95, "steps": last}))


def test_ratios_against_the_best_baseline_at_its_best_decay(meta_comparison, tmp_path, capsys):
    base, var = tmp_path / "baselines", tmp_path / "variants"
    for seed, (gn1, gn3, ma) in enumerate([(1000, 2000, 850), (800, 2000, 860), (900, None, 840)]):
        write_run(base, f"gn1-s{seed}", gn1, seed=seed, method="gradnorm", label="gnclip wd=0.001")
        write_run(base, f"gn3-s{seed}", gn3, seed=seed, method="gradnorm", label="gnclip wd=0.003",
                  weight_decay=3e-3)
        write_run(base, f"ma-s{seed}", ma, seed=seed, method="grokfast_ma", label="ma wd=0.01", weight_decay=1e-2)
    write_run(base, "gn03-s0", 300, seed=0, method="gradnorm", label="gnclip wd=0.0003", weight_decay=3e-4)  # 1 seed
    frozen = dict(method="neuralgrok", freeze_amplifier=True)
    for seed, (rms, init) in enumerate([(100, 100), (450, 600), (550, 700)]):  # seed 0: the development cell
        write_run(var, f"rms-s{seed}", rms, seed=seed, label="frozen", **frozen)
        write_run(var, f"init-s{seed}", init, seed=seed, label="frozen init", amp_theta_ref="init", **frozen)
    bench = tmp_path / "bench.json"
    costs = {":gradnorm_clip": 0.98, ":grokfast_ma_wd": 1.0, ":ng_coef_frozen": 1.15, ":ng_coef_init_frozen": 1.1}
    bench.write_text(json.dumps({"rows": [{"cell": f"grid.toml{k}", "ratio": v} for k, v in costs.items()]}))
    assert meta_comparison.main(["--variants", str(var), "--baselines", str(base), "--bench", str(bench)]) == 0
    rows = {line.split(" | ")[1]: line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]}
    best_ma = 850  # Grokfast-MA's median beats gradnorm's best decay (1e-3: 900; 3e-3 reached on 2 of 3 seeds)
    assert "gnclip (0.001): 900; ma (0.01): 850" in rows["frozen"][4]
    assert rows["frozen"][2] == "(s0 100, dev) / s1 450 / s2 550" and rows["frozen"][3] == "500"
    assert rows["frozen"][5] == f"{500 / best_ma:.2f}" and rows["frozen"][6] == f"{500 * 1.15 / (best_ma * 1.0):.2f}"
    assert rows["frozen init"][5] == f"{650 / best_ma:.2f}" and rows["frozen init"][6] == f"{650 * 1.1 / best_ma:.2f}"

    # on seeds 1-2 only, the baselines too: gradnorm at 1e-3 (median 850 of 800, 900) ties Grokfast-MA (850)
    assert meta_comparison.main(["--variants", str(var), "--baselines", str(base), "--bench", str(bench),
                                 "--seeds", "1,2"]) == 0
    rows = {line.split(" | ")[1]: line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]}
    assert "gnclip (0.001): 850; ma (0.01): 850" in rows["frozen"][4]
    assert rows["frozen"][2] == "s1 450 / s2 550" and rows["frozen init"][2] == "s1 600 / s2 700"
    assert rows["frozen init"][5] == f"{650 / 850:.2f}" and rows["frozen init"][6] == f"{650 * 1.1 / (850 * 0.98):.2f}"


def test_one_folder_with_baselines_at_one_decay_each(meta_comparison, tmp_path, capsys):
    """meta_nonneg_seeds34's layout: variant and baselines side by side, each baseline at one chosen decay."""
    runs = tmp_path / "runs"
    frozen = dict(method="neuralgrok", freeze_amplifier=True, amp_theta_ref="init", label="frozen")
    for seed, (ng, adamw, ortho, ma) in zip((3, 4), [(500, 600, 520, 900), (520, 520, 700, 700)]):
        write_run(runs, f"ng-s{seed}", ng, seed=seed, **frozen)
        write_run(runs, f"adamw-s{seed}", adamw, seed=seed, method="standard", optimizer="adamw",
                  label="standard (AdamW)", weight_decay=3.0)
        write_run(runs, f"ortho-s{seed}", ortho, seed=seed, method="orthograd", label="orthograd")
        write_run(runs, f"ma-s{seed}", ma, seed=seed, method="grokfast_ma", label="grokfast_ma", weight_decay=1e-2)
    bench = tmp_path / "bench.json"
    costs = {":standard": 1.0, ":grokfast_ma_wd": 1.0, ":ng_coef_init_frozen": 1.1}
    bench.write_text(json.dumps({"rows": [{"cell": f"grid.toml{k}", "ratio": v} for k, v in costs.items()]}))
    args = ["--variants", str(runs), "--baselines", str(runs), "--bench", str(bench), "--seeds", "3,4"]
    assert meta_comparison.main(args) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    assert len(lines) == 1  # the NeuralGrok group only: baselines are not listed as variants
    row = lines[0].split(" | ")
    assert row[1] == "frozen" and row[3] == "510"
    for baseline in ("standard (AdamW) (3): 560", "orthograd (0.001): 610", "grokfast_ma (0.01): 800"):
        assert baseline in row[4]
    assert row[5] == f"{510 / 560:.2f}" and row[6] == f"{510 * 1.1 / 560:.2f}"  # AdamW priced as a standard step

    # ⊥Grad fastest: its step cost was never measured, so no wall-clock ratio is claimed
    for seed in (3, 4):
        (runs / f"ortho-s{seed}" / "summary.json").write_text(json.dumps({"steps_to_95": 400, "steps": 500}))
    assert meta_comparison.main(args) == 0
    row = capsys.readouterr().out.splitlines()[2].split(" | ")
    assert row[5] == f"{510 / 400:.2f}" and row[6] == "—"
