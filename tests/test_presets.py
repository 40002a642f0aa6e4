"""`--paper` presets (every value as its source gives it, overridden by files and flags) and `neuralgrok reproduce`."""
import json
from pathlib import Path

import pytest

from neuralgrok.cli import main
from neuralgrok.config import ConfigError, build
from neuralgrok.presets import PRESETS, TASKS, describe
from neuralgrok.reproduce import TABLES, grid_for, to_toml

ROOT = Path(__file__).resolve().parents[1]

# The main branch's per-task amplifier and interval, read off main_new.py's checkpoint names by hand:
# NeuralGrad with hidden 32*alpha, n_layers - 1 hidden layers, and T = InnerLoop.
MAIN_CHECKPOINTS = {"a+b": ((128, 128), 3), "a-b": ((576,), 3), "a*b": ((320,), 3), "a*a-b": ((256,), 4),
                    "a*c+b*d-e": ((1152,), 2)}


@pytest.mark.parametrize("task", TASKS)
def test_neuralgrok_main_preset_per_task(task):
    cfg = build({"paper": "neuralgrok-main", "task": task, "method": "neuralgrok"})
    assert (cfg.amp_hidden, cfg.meta_every) == MAIN_CHECKPOINTS[task]
    assert (cfg.layout, cfg.meta_order, cfg.meta_weight_decay, cfg.weight_decay) == ("postfix", "after", 1e-3, 1e-3)
    assert (cfg.clip_grad, cfg.amp_softmax, cfg.inner_outer_ratio, cfg.lookahead) == (1.0, "tensor", 49.0, "sgd")
    assert (cfg.p, cfg.n_layers) == ((7, 4) if task == "a*c+b*d-e" else (97, 2))


def test_src_and_grokfast_presets():
    src = build({"paper": "neuralgrok-src", "task": "sub", "method": "neuralgrok"})
    assert (src.layout, src.amp_hidden, src.meta_every, src.amp_softmax, src.meta_order) == (
        "infix", (64, 128, 64), 2, "entry", "after")
    gf = {m: build({"paper": "grokfast", "task": "mul", "method": m}) for m in ("standard", "grokfast_ma", "grokfast_ema")}
    assert [gf[m].weight_decay for m in gf] == [0.0, 0.01, 0.005]
    assert (gf["grokfast_ma"].ma_window, gf["grokfast_ma"].ma_lamb) == (100, 5.0)
    assert (gf["grokfast_ema"].ema_alpha, gf["grokfast_ema"].ema_lamb) == (0.98, 2.0)
    # a method the code has no settings for gets the preset's common ones
    assert build({"paper": "neuralgrok-main", "task": "add", "method": "orthograd"}).layout == "postfix"


def test_files_and_flags_override_the_preset(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('paper = "neuralgrok-main"\ntask = "a+b"\nmethod = "neuralgrok"\nmeta_every = 7\n')
    assert main(["train", "--config", str(path), "--meta-order", "before", "--max-steps", "1", "--p", "11",
                 "--d-model", "16", "--n-layers", "1", "--eval-every", "1", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["meta_every"], saved["meta_order"], saved["layout"], saved["p"]) == (7, "before", "postfix", 11)
    assert saved["paper"] == "neuralgrok-main" and saved["meta_weight_decay"] == 1e-3
    # the run folder re-runs from its config.json alone, with the values it was trained with
    again = build({k: v for k, v in json.loads((tmp_path / "r" / "config.json").read_text()).items()})
    assert again.meta_every == 7 and again.meta_order == "before"


def test_bad_presets_are_one_line_errors(capsys):
    with pytest.raises(ConfigError, match="grokfast has settings for the tasks \\(a\\*b\\) mod 97; got --task 'add'"):
        build({"paper": "grokfast", "task": "add"})
    with pytest.raises(SystemExit) as e:
        main(["train", "--paper", "nope", "--out", "x"])
    assert e.value.code == 2
    assert main(["presets", "nope"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_every_preset_value_is_a_valid_option_with_a_source():
    for preset in PRESETS.values():
        for task in preset.tasks:
            for method in ("standard", "gradnorm", "grokfast_ma", "grokfast_ema", "orthograd", "neuralgrok"):
                build({"paper": preset.name, "task": task, "method": method})  # raises on a bad value
        assert all(s.source for scope in (preset.common, *preset.methods.values(), *preset.per_task.values(),
                                          *preset.per_task_method.values()) for s in scope.values())


def test_readme_table_is_the_generated_one():
    """The README's preset tables are `neuralgrok presets` output, so that they cannot drift from the code."""
    readme = (ROOT / "README.md").read_text()
    for name in PRESETS:
        assert describe(name).strip() in readme, f"README's table for --paper {name} differs from `neuralgrok presets`"


def test_reproduce_writes_its_grid_runs_it_and_prints_ours_beside_the_paper(tmp_path, capsys):
    tiny = ["p=23", "train_frac=0.7", "d_model=64", "n_layers=1", "batch_size=128", "optimizer=adamw",
            "weight_decay=1.0", "lr=0.01", "eval_every=20", "stop_acc=0.95", "stop_patience=2", "max_steps=600"]
    args = ["reproduce", "grokfast", "--out", str(tmp_path), "--seeds", "0", "--set", *tiny]
    assert main(args) == 0
    printed, reached = capsys.readouterr().out, []
    for method in TABLES["grokfast"].methods:
        summary = json.loads((tmp_path / "runs" / f"mul-{method}-s0" / "summary.json").read_text())
        config = json.loads((tmp_path / "runs" / f"mul-{method}-s0" / "config.json").read_text())
        assert config["paper"] == "grokfast" and config["p"] == 23 and config["task"] == "a*b"
        s95 = summary["steps_to_95"]
        shown = f"{s95:,} (s0 {s95:,})" if s95 is not None else "— (s0 not reached)"
        assert f"| (a*b) mod 23 | {method} | {shown} | — |" in printed
        reached.append(s95 is not None)
    assert reached[0]  # the unfiltered run groks in this stand-in: the table shows a number
    # the grid file is what `neuralgrok grid` reads, and running the command again trains nothing
    assert (tmp_path / "grid.toml").read_text().startswith("# neuralgrok reproduce grokfast")
    assert main(args) == 0
    assert printed.count(" ok ") == 3 and capsys.readouterr().out.count("done before") == 3


def test_reproduce_grid_round_trips_through_toml():
    import tomllib
    grid = grid_for(TABLES["neuralgrok-table1"], [0, 1], ["add", "mod7_five"], {"max_steps": 5, "run_on": True})
    assert tomllib.loads(to_toml(grid)) == grid
