"""The grid runner: option merging, --only, skipping finished runs, continuing killed ones, setting aside stale ones."""
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from neuralgrok.clock import untimed
from neuralgrok.sweep import cli, grid, reuse
from neuralgrok.errors import GridError
from neuralgrok.runfolder import grid_runs

# the tiny task of conftest.TINY as grid options, 40 steps with checkpoints every 10
GRID = """
[grid]
tasks = ["add"]
methods = ["standard"]
seeds = [0]

[defaults]
p = 23
train_frac = 0.7
d_model = 64
n_layers = 1
batch_size = 128
optimizer = "adamw"
weight_decay = 1.0
lr = 1e-2
eval_every = 10
checkpoint_every = 10
max_steps = 40
run_on = true

[tasks.add]
task = "a+b"
"""


def test_expand_merges_tables_in_order_and_filters():
    spec = {"grid": {"tasks": ["t1", "t2"], "methods": ["m1", "m2"], "seeds": [0, 1]},
            "defaults": {"lr": 1.0, "p": 7}, "tasks": {"t1": {"lr": 2.0, "seeds": [5]}},
            "methods": {"m2": {"lr": 3.0}}, "cells": {"t1/m2": {"lr": 4.0}}}
    cells = {c.name: c.options for c in grid.expand(spec)}
    assert list(cells) == ["t1-m1-s5", "t1-m2-s5", "t2-m1-s0", "t2-m1-s1", "t2-m2-s0", "t2-m2-s1"]
    assert [cells[n]["lr"] for n in ("t1-m1-s5", "t1-m2-s5", "t2-m1-s0", "t2-m2-s1")] == [2.0, 4.0, 1.0, 3.0]
    assert cells["t2-m2-s1"] == {"lr": 3.0, "p": 7, "method": "m2", "task": "t2", "seed": 1}
    only = grid.expand(spec, grid.parse_only(["task=t2", "method=m1", "seed=1"]))
    assert [c.name for c in only] == ["t2-m1-s1"]
    with pytest.raises(GridError, match="needs 'seeds'"):
        grid.expand({"grid": {"tasks": [], "methods": []}})


def _run(tmp_path, text=GRID, jobs=1):
    (tmp_path / "g.toml").write_text(text)
    return cli.main([str(tmp_path / "g.toml"), "--out", str(tmp_path / "out"), "--jobs", str(jobs)])


def _rows(run):
    return (run / "metrics.jsonl").read_text().splitlines()


def test_finished_runs_are_skipped(tmp_path, capsys):
    assert _run(tmp_path, jobs=2) == 0
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    assert json.loads((run / "summary.json").read_text())["steps"] == 40
    logged = (tmp_path / "out" / "commands.txt").read_text().splitlines()[1]
    threads = max(1, grid.usable_cores() // 2)  # each of 2 jobs gets half the cores (torch would take all)
    assert logged.startswith(f"OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} python -m neuralgrok train")
    assert json.loads((run / "summary.json").read_text())["threads"] == threads  # what the run really used
    capsys.readouterr()
    assert _run(tmp_path) == 0
    assert "done before" in capsys.readouterr().out


def test_dry_run_lists_each_cells_command_and_resolved_options_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "grid.toml").write_text(GRID.replace('seeds = [0]', 'seeds = [0, 1]'))
    assert cli.main([str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit("/", 1)[-1] for line in lines[::2]] == ["add-standard-s0", "add-standard-s1"]
    resolved = lines[3].split()
    assert resolved[0] == "add-standard-s1:" and "seed=1" in resolved and "weight_decay=1.0" in resolved
    assert "task='a+b'" in resolved and "clip_grad=0.0" in resolved  # method defaults resolved too
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("edit,message", [
    (("weight_decay = 1.0", "weight_decya = 1.0"), "cell add-standard-s0: unknown option(s): weight_decya"),
    (("weight_decay = 1.0", 'weight_decay = "lots"'), "cell add-standard-s0: --weight-decay expects float, got 'lots'"),
    (('task = "a+b"', 'task = "a+q"'), "cell add-standard-s0: unknown operand 'q'"),
    (("lr = 1e-2", 'lr = 1e-2\namplifier = "nowhere/amp"'), "cell add-standard-s0: --amplifier is only used with"),
    (('[tasks.add]', '[tasks.sub]'), "[tasks.sub] names no entry of [grid] tasks"),
    (('[defaults]', '[defualts]'), "unknown table(s) defualts"),
    (('seeds = [0]', 'seeds = [0]\nsead = 1'), "unknown key(s) in [grid]: sead"),
    (('seeds = [0]', 'seeds = [0'), "is not valid TOML: Unclosed array (at line 7, column 1)"),
])
def test_a_bad_grid_fails_before_anything_runs_with_one_line(tmp_path, capsys, edit, message):
    (tmp_path / "g.toml").write_text(GRID.replace(*edit))
    for executor in ([], ["--executor", "slurm"]):
        assert cli.main([str(tmp_path / "g.toml"), "--out", str(tmp_path / "out"), *executor]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / "out").exists()  # nothing written, nothing submitted


def test_a_bad_amplifier_path_in_a_neuralgrok_cell_is_named(tmp_path, capsys):
    text = GRID.replace("lr = 1e-2", 'lr = 1e-2\nmethod = "neuralgrok"\namplifier = "nowhere/amp"')
    (tmp_path / "g.toml").write_text(text)
    assert cli.main([str(tmp_path / "g.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "cell add-standard-s0: no amplifier file at nowhere/amp" in capsys.readouterr().err


def test_every_committed_grid_validates(monkeypatch):
    from pathlib import Path
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # their paths are relative to the repository
    for path in sorted((Path(__file__).resolve().parents[1] / "experiments" / "grids").rglob("*.toml")):
        cells = grid.expand(grid.load(path))
        grid.resolve_cells(cells, {c.name for c in cells})


def test_killed_run_continues_from_its_checkpoint(tmp_path, capsys):
    # a run stopped after its step-20 checkpoint: what a kill between steps 20 and 30 leaves
    first = GRID.replace("max_steps = 40", "max_steps = 20")
    assert _run(tmp_path, first) == 0
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    (run / "summary.json").unlink()
    before = _rows(run)
    capsys.readouterr()
    assert _run(tmp_path) == 0
    assert "continued from its checkpoint" in capsys.readouterr().out
    after = _rows(run)
    # rows up to the checkpoint are the ones written before (a restart would rewrite their elapsed_s)
    assert after[:len(before)] == before
    assert [json.loads(r)["step"] for r in after] == [10, 20, 30, 40]
    assert not (tmp_path / "out" / "runs" / "add-standard-s0.incomplete").exists()


def test_run_with_other_settings_is_set_aside_and_restarted(tmp_path):
    assert _run(tmp_path, GRID.replace("lr = 1e-2", "lr = 2e-2")) == 0
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    (run / "summary.json").unlink()
    assert _run(tmp_path) == 0
    stale = tmp_path / "out" / "runs" / "add-standard-s0.incomplete"
    assert json.loads((stale / "config.json").read_text())["lr"] == 2e-2
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-2
    assert (run / "summary.json").is_file()
    assert grid_runs(tmp_path / "out") == [run]  # what readers of the results see: not the set-aside run


def test_a_method_sweeps_one_option():
    spec = {"grid": {"tasks": ["t"], "methods": ["m", "n"], "seeds": [0]}, "tasks": {"t": {"task": "a+b"}},
            "methods": {"m": {"method": "standard", "sweep": {"weight_decay": [0, 1e-3, 0.03]}},
                        "n": {"method": "grokfast_ema", "label": "ema"}}}
    cells = {c.name: c.options for c in grid.expand(spec)}
    assert list(cells) == ["t-m-wd0-s0", "t-m-wd0.001-s0", "t-m-wd0.03-s0", "t-n-s0"]
    assert cells["t-m-wd0.001-s0"]["weight_decay"] == 1e-3 and cells["t-m-wd0.001-s0"]["label"] == "standard wd=0.001"
    assert "sweep" not in cells["t-m-wd0-s0"] and cells["t-n-s0"]["label"] == "ema"
    with pytest.raises(GridError, match="sweep must name one option"):
        grid.expand({**spec, "methods": {"m": {"method": "standard", "sweep": {"lr": 1e-3}}}})
    # --only wd= keeps the cells trained at those weight decays, swept or not (n has the default, 1e-3)
    only = grid.expand(spec, grid.parse_only(["wd=0,1e-3"]))
    assert [c.name for c in only] == ["t-m-wd0-s0", "t-m-wd0.001-s0", "t-n-s0"]
    assert [c.name for c in grid.expand(spec, grid.parse_only(["wd=0.030"]))] == ["t-m-wd0.03-s0"]
    with pytest.raises(GridError, match="wd= takes numbers"):
        grid.parse_only(["wd=none"])


# a grid whose run stops on its target before its cap: at the first evaluation with any correct test answer
STOPS = GRID.replace("run_on = true", "stop_acc = 1e-9\nstop_patience = 1")


def _grid(tmp_path, text, out, *extra):
    (tmp_path / f"{out}.toml").write_text(text)
    return cli.main([str(tmp_path / f"{out}.toml"), "--out", str(tmp_path / out), *extra])


def _untimed(run):
    return [untimed(json.loads(r)) for r in _rows(run)]


def test_reuse_copies_the_run_a_cell_would_repeat(tmp_path, capsys):
    assert _grid(tmp_path, STOPS, "src") == 0
    src = tmp_path / "src" / "runs" / "add-standard-s0"
    summary = json.loads((src / "summary.json").read_text())
    assert summary["stopped"] == "target" and summary["steps"] < 40
    # another grid: its own label, a higher cap, other checkpointing; training the same
    other = STOPS.replace("max_steps = 40", "max_steps = 60").replace("checkpoint_every = 10", "checkpoint_every = 20")
    other += '\n[methods.standard]\nlabel = "plain"\n'
    capsys.readouterr()
    assert _grid(tmp_path, other, "dst", "--reuse", str(tmp_path / "src")) == 0
    assert f"reused {src}" in capsys.readouterr().out
    dst = tmp_path / "dst" / "runs" / "add-standard-s0"
    assert json.loads((dst / "reused_from.json").read_text())["run"] == str(src)
    assert not (dst / "checkpoints").exists() and "reused" in (tmp_path / "dst" / "logs" / "add-standard-s0.log").read_text()
    # the oracle: the cell trained for real writes the same config and the same metrics
    assert _grid(tmp_path, other, "fresh") == 0
    fresh = tmp_path / "fresh" / "runs" / "add-standard-s0"
    assert json.loads((dst / "config.json").read_text()) == json.loads((fresh / "config.json").read_text())
    assert _untimed(dst) == _untimed(fresh)
    timed = ("wall_seconds", "seconds_per_step", "eval_seconds", "cpu_seconds")
    assert ({k: v for k, v in json.loads((dst / "summary.json").read_text()).items() if k not in timed}
            == {k: v for k, v in json.loads((fresh / "summary.json").read_text()).items() if k not in timed})


def test_reuse_refuses_runs_that_would_train_otherwise(tmp_path):
    assert _grid(tmp_path, GRID, "capped") == 0  # run_on: stopped at its cap, step 40
    assert _grid(tmp_path, STOPS, "stopped") == 0  # stopped on its target before step 40
    (capped,), (stopped,) = reuse.finished_runs([tmp_path / "capped"]), reuse.finished_runs([tmp_path / "stopped"])
    threads, cfg, tcfg = capped.summary["threads"], capped.cfg, stopped.cfg
    assert reuse.match(dataclasses.replace(cfg, label="x", keep_checkpoints=1), [capped], threads) is capped
    assert reuse.match(dataclasses.replace(cfg, max_steps=60), [capped], threads) is None  # it would train on
    assert reuse.match(dataclasses.replace(tcfg, max_steps=60), [stopped], threads) is stopped
    last = stopped.summary["steps"]  # the step it stopped at would be the last, evaluated exactly
    assert reuse.match(dataclasses.replace(tcfg, max_steps=last), [stopped], threads) is None
    assert reuse.match(dataclasses.replace(tcfg, max_steps=60, snapshot_steps="10"), [stopped], threads) is None
    assert reuse.match(dataclasses.replace(cfg, lr=2e-2), [capped], threads) is None
    assert reuse.match(cfg, [capped], threads + 1) is None  # other float rounding


def test_reuse_needs_a_results_folder(tmp_path):
    with pytest.raises(SystemExit, match="--reuse .*: no runs/ folder there"):
        _grid(tmp_path, GRID, "out", "--reuse", str(tmp_path / "nowhere"))


def test_raising_the_cap_extends_runs_that_stopped_at_it(tmp_path, capsys):
    assert _grid(tmp_path, GRID.replace("max_steps = 40", "max_steps = 20"), "out") == 0
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    assert json.loads((run / "summary.json").read_text())["steps"] == 20
    capsys.readouterr()
    assert _grid(tmp_path, GRID, "out") == 0
    assert "continued from its checkpoint to the raised cap" in capsys.readouterr().out
    assert _grid(tmp_path, GRID, "fresh") == 0  # the oracle: the same cell trained to 40 in one go
    fresh = tmp_path / "fresh" / "runs" / "add-standard-s0"
    assert _untimed(run) == _untimed(fresh) and [r["step"] for r in _untimed(run)] == [10, 20, 30, 40]
    assert json.loads((run / "summary.json").read_text())["steps"] == 40
    assert "max_steps: 40" in (tmp_path / "out" / "configs" / "add-standard-s0.yaml").read_text()
    # a run that stopped on its target, or a lowered cap, is left alone
    capsys.readouterr()
    assert _grid(tmp_path, GRID.replace("max_steps = 40", "max_steps = 30"), "out") == 0
    assert _grid(tmp_path, STOPS, "stops") == 0
    assert _grid(tmp_path, STOPS.replace("max_steps = 40", "max_steps = 80"), "stops") == 0
    assert capsys.readouterr().out.count("done before") == 2


def test_max_steps_runs_a_first_pass_that_the_plain_grid_takes_on_to_the_cap(tmp_path, capsys):
    assert _grid(tmp_path, GRID, "out", "--max-steps", "20") == 0  # the first pass: every cell stops at 20
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    assert json.loads((run / "summary.json").read_text())["steps"] == 20
    assert "max_steps: 20" in (tmp_path / "out" / "configs" / "add-standard-s0.yaml").read_text()
    assert _grid(tmp_path, GRID, "out", "--max-steps", "20") == 0
    assert "done before" in capsys.readouterr().out  # the first pass is finished
    assert _grid(tmp_path, GRID, "out") == 0  # the second pass
    assert "continued from its checkpoint to the raised cap" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["steps"] == 40
    assert _grid(tmp_path, GRID, "out", "--max-steps", "1000") == 0  # never above the cell's own cap
    assert "done before" in capsys.readouterr().out
    assert _grid(tmp_path, GRID, "fresh") == 0  # the oracle: the cell trained to its cap in one go
    assert _untimed(run) == _untimed(tmp_path / "fresh" / "runs" / "add-standard-s0")
    with pytest.raises(SystemExit, match="--max-steps must be >= 1, got 0"):
        _grid(tmp_path, GRID, "out", "--max-steps", "0")


def test_an_extension_on_another_thread_count_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "usable_cores", lambda: 2)
    assert _grid(tmp_path, GRID, "out", "--max-steps", "20", "--jobs", "2") == 0  # the first pass: 1 thread a run
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    first = _untimed(run)
    capsys.readouterr()
    assert _grid(tmp_path, GRID, "out") == 1  # 2 threads a run: other float rounding from step 20 on
    said = capsys.readouterr()
    assert "its first pass ran on 1 threads, this grid gives each run 2" in said.out
    assert "warning: 1 finished runs in" in said.err and "ran on 1 threads" in said.err  # said before it starts
    assert _untimed(run) == first and json.loads((run / "summary.json").read_text())["steps"] == 20
    assert _grid(tmp_path, GRID, "out", "--jobs", "2") == 0  # the first pass's count: extended
    assert json.loads((run / "summary.json").read_text())["steps"] == 40
    assert "warning" not in capsys.readouterr().err


def test_a_capped_run_without_checkpoints_trains_again_to_the_raised_cap(tmp_path, capsys):
    assert _grid(tmp_path, GRID.replace("max_steps = 40", "max_steps = 20"), "out") == 0
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    shutil.rmtree(run / "checkpoints")  # as in a copy made by --reuse
    capsys.readouterr()
    assert _grid(tmp_path, GRID, "out") == 0
    assert "had no checkpoint: trained again" in capsys.readouterr().out
    assert json.loads((run.with_name(run.name + ".incomplete") / "summary.json").read_text())["steps"] == 20
    assert _grid(tmp_path, GRID, "fresh") == 0
    assert _untimed(run) == _untimed(tmp_path / "fresh" / "runs" / "add-standard-s0")


def test_a_stop_signal_to_the_grid_stops_its_runs_at_a_checkpoint_and_the_same_command_continues(tmp_path):
    (tmp_path / "g.toml").write_text(GRID.replace("max_steps = 40", "max_steps = 1000").replace("seeds = [0]",
                                                                                                 "seeds = [0, 1]"))
    command = [sys.executable, "-m", "neuralgrok", "grid", str(tmp_path / "g.toml"), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    grid_proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    deadline = time.time() + 120
    while not list((run / "checkpoints").glob("step-*.json")):
        assert grid_proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    grid_proc.send_signal(signal.SIGTERM)  # to the grid alone, as `kill PID` sends it
    out, err = grid_proc.communicate(timeout=120)
    assert grid_proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in err and "add-standard-s0" in out and "stopped at a checkpoint" in out
    assert "add-standard-s1" in out and "not started" in out and not (tmp_path / "out" / "runs" / "add-standard-s1").exists()
    # the run stopped with the grid, at a checkpoint: nothing writes to it any more
    size = (run / "metrics.jsonl").stat().st_size
    time.sleep(1.0)
    assert (run / "metrics.jsonl").stat().st_size == size and not (run / "summary.json").exists()
    step = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.json"))
    assert 0 < step < 1000
    again = subprocess.run(command + ["--only", "seed=0"], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "continued from its checkpoint" in again.stdout
    assert json.loads((run / "summary.json").read_text())["steps"] == 1000
