"""experiments/controls_select.py on made-up runs: each rule's pick and tie-break, the refusal while runs are
missing, and an arms grid that the grid runner accepts and that carries the picked settings into its cells."""
import dataclasses
import json

import pytest

from conftest import experiment_script
from neuralgrok.runlock import FolderLock
from neuralgrok.sweep.grid import expand, load, parse_only, resolve_cells


def _module():
    return experiment_script("controls_select")


def _run(root, name, config, s95, steps=6000):
    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"max_steps": steps, **config}))
    (d / "metrics.jsonl").write_text(json.dumps({"step": 10, "test_acc": 0.1}) + "\n")
    (d / "summary.json").write_text(json.dumps({"steps_to_95": s95, "steps": steps if s95 is None else s95 + 50,
                                                "stopped": "max_steps" if s95 is None else "target"}))


def _dev(root, steps: dict):
    for (slow, decay), s95 in steps.items():
        _run(root, f"add-tf-{slow}-{decay}-s0", {"task": "a+b", "method": "neuralgrok", "seed": 0,
                                                 "amp_init_slow": slow, "amp_init_decay": decay}, s95)


def test_the_tuned_form_pick_fewest_steps_then_smaller_decay_then_smaller_slow(tmp_path):
    mod = _module()
    _dev(tmp_path, {(0.0, 0.0): None, (0.1, 0.05): 900, (0.2, 0.02): 900, (0.4, 0.02): 900, (0.8, 0.2): 1200})
    slow, decay, rows = mod.tuned_form(mod.finished_runs(tmp_path, 5))
    assert (slow, decay) == (0.2, 0.02) and len(rows) == 5
    _dev(tmp_path / "none", {(0.0, 0.0): None})
    with pytest.raises(SystemExit, match="no tuned-form development run reached 95%"):
        mod.tuned_form(mod.finished_runs(tmp_path / "none", 1))


def _tuning(root):
    adamw = {"method": "standard", "optimizer": "adamw", "task": "a+b"}
    table = {  # (lr, decay): steps by seed 0, 1
        (1e-3, 1.0): (None, 800),       # one seed only: loses to any setting with both
        (1e-3, 2.0): (1500, 1700),      # median 1,600
        (2e-3, 1.0): (1000, 2200),      # median 1,600 too, a larger rate: loses the tie
        (3e-3, 1.5): (1400, 1900),      # median 1,650
    }
    for (lr, wd), pair in table.items():
        for seed, s95 in enumerate(pair):
            _run(root, f"add-adamw-{lr}-{wd}-s{seed}", {**adamw, "lr": lr, "weight_decay": wd, "seed": seed}, s95)
    for seed in (0, 1):  # another family on another task, picked on its own
        _run(root, f"mul-ortho-s{seed}", {"method": "orthograd", "task": "a*b", "lr": 2e-3, "weight_decay": 1e-3,
                                          "seed": seed}, 700 + seed)
        _run(root, f"mul-other-s{seed}", {"method": "gradnorm", "task": "a*b", "lr": 1e-3, "seed": seed}, 100)


def test_each_baseline_pick_most_seeds_then_median_then_smaller_rate(tmp_path):
    mod = _module()
    _tuning(tmp_path)
    cands = mod.candidates(mod.finished_runs(tmp_path, 12))
    assert {c.family for c in cands} == {"adamw", "orthograd"}  # runs of other methods are not candidates
    picks = mod.chosen(cands)
    a = picks[("adamw", "a+b")]
    assert (a.lr, a.decay, a.steps, a.reached) == (1e-3, 2.0, (1500.0, 1700.0), 2)
    missed = next(c for c in cands if c.decay == 1.0 and c.lr == 1e-3)
    assert missed.reached == 1 and missed.steps[0] > 6000  # the missing seed counted at its cap, slowest
    assert (picks[("orthograd", "a*b")].lr, picks[("orthograd", "a*b")].decay) == (2e-3, 1e-3)


def test_a_first_pass_prunes_the_settings_that_cannot_win_and_extends_the_rest(tmp_path, monkeypatch, capsys):
    """Runs stopped at a first pass's cap (1,500 of 6,000) against the leader of _tuning (both seeds, median 1,600)."""
    mod = _module()
    _tuning(tmp_path)
    adamw = {"method": "standard", "optimizer": "adamw", "task": "a+b"}

    def early(name, lr, wd, seed, s95, steps):
        _run(tmp_path, name, {**adamw, "lr": lr, "weight_decay": wd, "seed": seed}, s95, steps)

    early("add-adamw_lr3-wd4-s0", 3e-3, 4.0, 0, 1000, 6000)  # best case: (1000 + 1501) / 2 < 1600, may win
    early("add-adamw_lr3-wd4-s1", 3e-3, 4.0, 1, None, 1500)
    early("add-adamw_lr3-wd5-s0", 3e-3, 5.0, 0, None, 6000)  # a true miss: at most one seed, behind
    early("add-adamw_lr3-wd5-s1", 3e-3, 5.0, 1, None, 1500)
    early("add-adamw_lr3-wd6-s0", 3e-3, 6.0, 0, 3000, 6000)  # best case (3000 + 2501) / 2 > 1600
    early("add-adamw_lr3-wd6-s1", 3e-3, 6.0, 1, None, 2500)
    cands = mod.candidates(mod.finished_runs(tmp_path, 18), cap=6000)
    picks, pruned, waiting = mod.settle(cands)
    assert {c.decay for c in pruned} == {5.0, 6.0} and [c.decay for c in waiting] == [4.0]
    assert ("adamw", "a+b") not in picks and ("orthograd", "a*b") in picks  # only the waiting group has no pick
    with pytest.raises(SystemExit, match=r"1 settings stopped early could still be picked \(e.g. add-adamw_lr3-wd4-s1\)"):
        mod.chosen(cands)
    command, = mod.extension_commands(waiting, "tune_baselines", tmp_path)
    words = command.split()
    assert words[:3] == ["neuralgrok", "grid", "experiments/grids/controls/tune_baselines.toml"]
    grid = load(mod.GRIDS / "tune_baselines.toml")  # the command names exactly the waiting cell of the real grid
    assert [c.name for c in expand(grid, parse_only(words[words.index("--only") + 1:]))] == ["add-adamw_lr3-wd4-s1"]
    _dev(tmp_path / "dev", {(0.1, 0.05): 900})  # the command: the table with its marks, or the extensions
    monkeypatch.setattr(mod, "DEV_RUNS", 1)
    monkeypatch.setitem(mod.SETS, "mod97", dataclasses.replace(mod.SETS["mod97"], tuning_runs=18))
    capsys.readouterr()
    mod.main([str(tmp_path / "dev"), str(tmp_path), "--extensions"])
    assert capsys.readouterr().out == command + "\n"
    with pytest.raises(SystemExit, match="could still be picked"):
        mod.main([str(tmp_path / "dev"), str(tmp_path)])
    printed = capsys.readouterr().out
    assert "| AdamW | a+b | 0.003 | 5 | 6000.5 / > 1500 | 0 | pruned: cannot be picked |" in printed
    assert "| AdamW | a+b | 0.003 | 4 | 1000 / > 1500 | 1 | waits on an extension |" in printed
    # once extended (it reached 95% at 1,900: median 1,450), it is the pick; the pruned stay out of it
    import shutil
    shutil.rmtree(tmp_path / "runs" / "add-adamw_lr3-wd4-s1")
    early("add-adamw_lr3-wd4-s1", 3e-3, 4.0, 1, 1900, 6000)
    picks = mod.chosen(mod.candidates(mod.finished_runs(tmp_path, 18), cap=6000))
    assert (picks[("adamw", "a+b")].lr, picks[("adamw", "a+b")].decay) == (3e-3, 4.0)


def test_the_most_promising_extension_comes_first_and_a_new_leader_prunes_the_rest(tmp_path, monkeypatch, capsys):
    mod = _module()
    _tuning(tmp_path)  # leader: median 1,600
    adamw = {"method": "standard", "optimizer": "adamw", "task": "a+b"}
    for name, lr, seeds in (("add-adamw_lr3-wd4", 3e-3, (1000, None)), ("add-adamw_lr2-wd4", 2e-3, (800, None))):
        for seed, s95 in enumerate(seeds):
            _run(tmp_path, f"{name}-s{seed}", {**adamw, "lr": lr, "weight_decay": 4.0, "seed": seed}, s95,
                 6000 if s95 else 1500)
    _, _, waiting = mod.settle(mod.candidates(mod.finished_runs(tmp_path, 16), cap=6000))
    assert [c.lr for c in waiting] == [2e-3, 3e-3]  # best cases (800 + 1501) / 2 before (1000 + 1501) / 2
    first, _ = mod.extension_commands(waiting, "tune_baselines", tmp_path)
    assert "method=adamw_lr2 wd=4 seed=1" in first
    monkeypatch.setitem(mod.SETS, "mod97", dataclasses.replace(mod.SETS["mod97"], tuning_runs=16))
    (tmp_path / "runs" / "add-adamw_lr2-wd4-s1" / "summary.json").unlink()  # another lane is extending it
    with FolderLock(tmp_path / "runs" / "add-adamw_lr2-wd4-s1"):
        mod.main([str(tmp_path), str(tmp_path), "--extensions"])
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "method=adamw_lr3 wd=4 seed=1" in listed[0] and listed[1] == "# 1 runs being extended"
    import shutil
    shutil.rmtree(tmp_path / "runs" / "add-adamw_lr2-wd4-s1")  # extended: 95% at 900, median 850, the new leader
    _run(tmp_path, "add-adamw_lr2-wd4-s1", {**adamw, "lr": 2e-3, "weight_decay": 4.0, "seed": 1}, 900)
    picks, pruned, waiting = mod.settle(mod.candidates(mod.finished_runs(tmp_path, 16), cap=6000))
    assert not waiting and [(c.lr, c.decay) for c in pruned] == [(3e-3, 4.0)]  # its best case 1,250.75 > 850
    assert (picks[("adamw", "a+b")].lr, picks[("adamw", "a+b")].decay) == (2e-3, 4.0)


def test_missing_or_unfinished_runs_are_refused_in_one_line(tmp_path):
    mod = _module()
    _tuning(tmp_path)
    with pytest.raises(SystemExit, match="has 12 finished runs of 312"):
        mod.finished_runs(tmp_path, 312)
    (tmp_path / "runs" / "mul-ortho-s0" / "summary.json").unlink()
    with pytest.raises(SystemExit, match=r"11 finished runs of 12 \(1 unfinished, e.g. mul-ortho-s0\)"):
        mod.finished_runs(tmp_path, 12)
    (tmp_path / "runs" / "mul-ortho-s0").rename(tmp_path / "runs" / "mul-ortho-s0.incomplete")  # set aside: not a run
    with pytest.raises(SystemExit, match=r"has 11 finished runs of 12; run its grid first"):
        mod.finished_runs(tmp_path, 12)


def test_the_written_arms_grid_runs_the_picked_settings(tmp_path):
    mod = _module()
    picks = {("adamw", "a+b"): mod.Candidate("adamw", "a+b", 2e-3, 2.5, (900.0, 1000.0), 2),
             ("orthograd", "a*b"): mod.Candidate("orthograd", "a*b", 3e-3, 1e-3, (800.0, 700.0), 2)}
    path = tmp_path / "arms.toml"
    path.write_text(mod.arms_grid(mod.SETS["mod97"], 0.2, 0.05, picks))
    cells = {c.name: c for c in expand(load(path))}
    assert len(cells) == 4 * 5 * 10 and {c.options["seed"] for c in cells.values()} == set(range(10, 20))
    configs = dict(zip(cells, resolve_cells(list(cells.values()))))  # every cell validates as a run
    assert (configs["add-adamw-s10"].lr, configs["add-adamw-s10"].weight_decay) == (2e-3, 2.5)
    assert configs["add-adamw-s10"].optimizer == "adamw"
    assert (configs["mul-orthograd-s19"].lr, configs["mul-orthograd-s19"].weight_decay) == (3e-3, 1e-3)
    assert configs["mul-orthograd-s19"].method == "orthograd"  # the method from the table's name
    ma = configs["add-grokfast_ma-s10"]
    assert (ma.method, ma.ma_window, ma.ma_lamb) == ("grokfast_ma", 100, 5.0)
    tuned = configs["sub-tuned_form-s12"]
    assert (tuned.amp_init_slow, tuned.amp_init_decay, tuned.freeze_amplifier) == (0.2, 0.05, True)
    learnt = configs["square_sub-learnt-s15"]
    assert learnt.amplifier == "builtin:coefficients-add97" and learnt.method == tuned.method == "neuralgrok"
    assert (learnt.clip_grad, learnt.weight_decay) == (tuned.clip_grad, tuned.weight_decay)  # the same rule around
    assert all(c.mixed_precision == "bf16" for c in configs.values())


def test_the_unseen_grid_runs_adamw_beside_the_two_coefficient_arms_on_seeds_10_to_14(tmp_path):
    mod = _module()
    picks = {("adamw", t): mod.Candidate("adamw", t, 1e-3, 4.0, (900.0, 1000.0), 2) for t in mod.SETS["unseen"].tasks}
    path = tmp_path / "unseen.toml"
    path.write_text(mod.arms_grid(mod.SETS["unseen"], 0.1, 0.02, picks))
    cells = expand(load(path))
    configs = {c.name: cfg for c, cfg in zip(cells, resolve_cells(cells))}
    assert len(configs) == 5 * 3 * 5 and {n.split("-")[1] for n in configs} == {"learnt", "tuned_form", "adamw"}
    assert configs["s5_conjugate-adamw-s14"].p == 120 and configs["s5_conjugate-adamw-s14"].weight_decay == 4.0
    assert configs["div-learnt-s10"].task == "a/b" and configs["div-learnt-s10"].p == 97
    # the tuning grid's kernel for (a*a+a*b+b*b) carries to every arm of that task, and to no other task
    assert {cfg.attention for n, cfg in configs.items() if n.startswith("square_sum-")} == {"math"}
    assert {cfg.attention for n, cfg in configs.items() if not n.startswith("square_sum-")} == {"auto"}


def test_the_command_prints_every_candidate_and_writes_the_grid(tmp_path, monkeypatch, capsys):
    mod = _module()
    _dev(tmp_path / "dev", {(0.1, 0.05): 900, (0.2, 0.02): 800})
    _tuning(tmp_path / "tuning")
    monkeypatch.setattr(mod, "DEV_RUNS", 2)
    monkeypatch.setitem(mod.SETS, "mod97", dataclasses.replace(mod.SETS["mod97"], tuning_runs=12))
    out = tmp_path / "arms.toml"
    mod.main([str(tmp_path / "dev"), str(tmp_path / "tuning"), "--write", str(out)])
    printed = capsys.readouterr().out
    assert "tuned form: slow 0.2, decay 0.02" in printed
    assert "| AdamW | a+b | 0.001 | 2 | 1500 / 1700 | 2 | yes |" in printed
    assert "| AdamW | a+b | 0.002 | 1 | 1000 / 2200 | 2 |  |" in printed
    text = out.read_text()
    assert 'amp_init_slow = 0.2' in text and '[cells."add/adamw"]' in text and '[cells."mul/orthograd"]' in text


def test_extensions_in_stages_take_runs_to_the_stage_and_a_leader_before_it_prunes_the_rest(tmp_path, monkeypatch,
                                                                                            capsys):
    """Every setting stopped at 1,500 (as on the unseen tasks); stage 3,000 first. One setting reaches 95% on both
    seeds by 2,500: the settings stopped at 3,000 without 95% (best case 3,001) can no longer be picked, and the
    pick is the one taking every run to the cap would make."""
    mod = _module()
    adamw = {"method": "standard", "optimizer": "adamw", "task": "a*a+a*b+b*b"}

    def run(wd, seed, s95, steps):
        name = f"square_sum-adamw_lr1-wd{wd:g}-s{seed}"
        if (tmp_path / "runs" / name).exists():
            import shutil
            shutil.rmtree(tmp_path / "runs" / name)
        _run(tmp_path, name, {**adamw, "lr": 1e-3, "weight_decay": wd, "seed": seed}, s95, steps)

    for wd in (1.0, 2.0, 3.0):
        for seed in (0, 1):
            run(wd, seed, None, 1500)
    monkeypatch.setitem(mod.SETS, "unseen", dataclasses.replace(mod.SETS["unseen"], tuning_runs=6))
    mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--extensions", "--to", "3000"])
    staged = capsys.readouterr().out.splitlines()
    assert len(staged) == 3 and all(c.endswith("seed=0,1 --max-steps 3000") for c in staged)
    grid = load(mod.GRIDS / "tune_unseen.toml")  # each names exactly its two cells of the real grid
    words = staged[1].split()
    only = words[words.index("--only") + 1:words.index("--max-steps")]
    assert [c.name for c in expand(grid, parse_only(only))] == [f"square_sum-adamw_lr1-wd2-s{s}" for s in (0, 1)]
    run(1.0, 0, None, 3000), run(1.0, 1, None, 3000)  # stage done: decay 1 and 3 miss, decay 2 reaches 95%
    run(2.0, 0, 2400, 6000), run(2.0, 1, 2600, 6000)
    run(3.0, 0, None, 3000), run(3.0, 1, None, 3000)
    mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--extensions", "--to", "3000"])
    assert capsys.readouterr().out == "\n"  # nothing left below the stage
    picks, pruned, waiting = mod.settle(mod.candidates(mod.finished_runs(tmp_path, 6), cap=6000))
    assert not waiting and sorted(c.decay for c in pruned) == [1.0, 3.0]
    assert picks[("adamw", "a*a+a*b+b*b")].decay == 2.0
    with pytest.raises(SystemExit):
        mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--to", "3000"])  # a stage needs --extensions
    assert "--to needs --extensions" in capsys.readouterr().err


def test_runs_stopped_mid_way_are_resumed_first_and_only_a_live_lane_of_the_stage_is_waited_on(tmp_path, monkeypatch,
                                                                                                 capsys):
    """Six runs stopped at 1,500. One was being taken to 3,000 when its lane was stopped (no summary, no live holder):
    it comes first, on to 3,000. A live process extending a run to 4,000 is counted only when asking for stage 4,000
    (so a lane that finished stage 3,000 does not wait on the next stage's run)."""
    mod = _module()
    adamw = {"method": "standard", "optimizer": "adamw", "task": "a*a+a*b+b*b"}
    for wd in (1.0, 2.0, 3.0):
        for seed in (0, 1):
            _run(tmp_path, f"square_sum-adamw_lr1-wd{wd:g}-s{seed}", {**adamw, "lr": 1e-3, "weight_decay": wd,
                                                                      "seed": seed}, None, 1500)
    monkeypatch.setitem(mod.SETS, "unseen", dataclasses.replace(mod.SETS["unseen"], tuning_runs=6))

    def restart(name, steps):  # the run's folder as the grid leaves it mid-way: its raised cap, no summary
        d = tmp_path / "runs" / name
        (d / "summary.json").unlink()
        (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "max_steps": steps}))
        return d

    restart("square_sum-adamw_lr1-wd2-s1", 3000)
    mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--extensions", "--to", "3000"])
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].endswith("--only task=square_sum method=adamw_lr1 wd=2 seed=1 --max-steps 3000")
    assert len(listed) == 3 and not any("wd=2 seed=0" in line for line in listed)  # its setting waits on it
    held = restart("square_sum-adamw_lr1-wd3-s0", 4000)
    with FolderLock(held):
        mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--extensions", "--to", "3000"])
        at_3000 = capsys.readouterr().out.splitlines()
        mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--extensions", "--to", "4000"])
        at_4000 = capsys.readouterr().out.splitlines()
    assert len(at_3000) == 2 and not any(line.startswith("#") or "wd=3" in line for line in at_3000)
    assert at_4000[-1] == "# 1 runs being extended" and not any("wd=3" in line for line in at_4000)
    mod.main([str(tmp_path), str(tmp_path), "--set", "unseen", "--extensions", "--to", "4000"])  # its lane died
    assert capsys.readouterr().out.splitlines()[1].endswith("wd=3 seed=0 --max-steps 4000")
