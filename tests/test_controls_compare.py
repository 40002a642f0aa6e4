"""experiments/controls_compare.py on made-up arms whose answers are known by hand: ratios, exact p-values, the
lowest accuracy after 95%, runs that missed it, and the verdicts (learning, target, an arm not run)."""
import json
import math

import pytest

from conftest import experiment_script


def _module():
    return experiment_script("controls_compare")


def _run(root, task, arm, seed, s95, cap=8000, dip=None, clock=0.1, host=None):
    d = root / "runs" / f"{task}-{arm}-s{seed}"
    d.mkdir(parents=True)
    expr = {"add": "a+b", "mul": "a*b", "div": "a/b"}[task]
    (d / "config.json").write_text(json.dumps({"task": expr, "p": 97, "seed": seed, "method": "neuralgrok",
                                               "max_steps": cap}))
    end = cap if s95 is None else s95 + 100
    rows = [{"step": s, "test_acc": 0.1 if s95 is None or s < s95 else (dip if dip and s == s95 + 50 else 0.99),
             "elapsed_s": s * clock, "cpu_s": s * clock * 0.9} for s in range(10, end + 1, 10)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "summary.json").write_text(json.dumps({"steps_to_95": s95, "steps": end}
                                               | ({"host": {"cpu": host, "isa": "AVX512"}} if host else {})))


def _arms(root, task, learnt, tuned, shuffled, adamw, learnt_clock=0.1):
    for i, seed in enumerate(range(10, 20)):
        _run(root, task, "learnt", seed, learnt[i], clock=learnt_clock)
        _run(root, task, "tuned_form", seed, tuned[i])
        _run(root, task, "adamw", seed, adamw[i])
    for k in (1, 2, 3):
        for i, seed in enumerate(range(10, 15)):
            _run(root, task, f"shuffled_{k}", seed, shuffled[i] + 10 * k)


def test_a_learnt_arm_faster_than_every_control_passes_both_verdicts(tmp_path):
    mod = _module()
    fast, slow = [500 + 10 * i for i in range(10)], [1000 + 10 * i for i in range(10)]
    _arms(tmp_path, "add", fast, slow, slow[:5], [800 + 10 * i for i in range(10)])
    arms = mod.outcomes(tmp_path)["(a+b) mod 97"]
    assert len(arms["shuffled"]) == 15 and [s.seed for s in arms["learnt"]] == list(range(10, 20))
    shown, verdict = mod.verdicts("(a+b) mod 97", arms)
    by = {c.other: c for c in shown}
    assert set(by) == {"tuned_form", "shuffled", "adamw"}
    assert verdict["best other arm (steps)"] == verdict["best other arm (seconds)"] == "adamw"
    assert by["adamw"].ratio == pytest.approx(545 / 845)
    assert by["adamw"].p == pytest.approx(1 / math.comb(20, 10))  # every learnt seed below every AdamW seed
    assert by["shuffled"].p == pytest.approx(1 / math.comb(20, 5))  # learnt seeds 10-14 against 15 shuffled runs
    lo, hi = by["adamw"].interval
    assert lo <= 545 / 845 <= hi < 0.8
    assert by["adamw"].seconds_ratio == pytest.approx(545 / 845)  # the same clock a step in every arm
    assert by["adamw"].cpu_ratio == pytest.approx(545 / 845)
    assert verdict["learning does work"] == "yes" and verdict["target met"] == "yes"


def test_fewer_steps_at_a_dearer_step_miss_the_wall_clock_half_of_the_target(tmp_path):
    mod = _module()
    fast, slow = [500 + 10 * i for i in range(10)], [1000 + 10 * i for i in range(10)]
    _arms(tmp_path, "add", fast, slow, slow[:5], [800 + 10 * i for i in range(10)], learnt_clock=0.15)
    shown, verdict = mod.verdicts("(a+b) mod 97", mod.outcomes(tmp_path)["(a+b) mod 97"])
    adamw = next(c for c in shown if c.other == "adamw")
    assert adamw.ratio == pytest.approx(545 / 845) and adamw.p < 0.05
    assert adamw.seconds_ratio == pytest.approx(545 * 0.15 / (845 * 0.1))  # 0.97: not <= 0.8
    assert verdict["target met"] == "no" and verdict["learning does work"] == "yes"


def test_the_benchmark_priced_ratio_is_the_steps_ratio_at_the_benchmarked_step_costs(tmp_path, capsys):
    mod = _module()
    fast, slow = [500 + 10 * i for i in range(10)], [1000 + 10 * i for i in range(10)]
    _arms(tmp_path / "arms", "add", fast, slow, slow[:5], [800 + 10 * i for i in range(10)])
    rows = [{"cell": f"experiments/grids/controls/arms.toml:{arm}", "ms_per_step": ms}
            for arm, ms in (("learnt", 60.0), ("tuned_form", 60.0), ("adamw", 50.0))]
    (tmp_path / "bench.json").write_text(json.dumps({"rows": rows}))
    assert mod.step_costs([tmp_path / "bench.json"]) == {None: {"learnt": 60.0, "tuned_form": 60.0, "adamw": 50.0}}
    mod.main([str(tmp_path / "arms"), "--bench", str(tmp_path / "bench.json")])
    adamw_row = next(line for line in capsys.readouterr().out.splitlines() if "| adamw | 0.64 |" in line)
    assert adamw_row.rstrip(" |").endswith(f"{545 / 845 * 60 / 50:.2f}")  # 0.77


def test_the_seconds_ratio_bounds_misses_against_the_learnt_arm():
    mod = _module()
    def seed(n, steps, at_95, at_end):
        return mod.Seed(n, steps, at_95 is not None, None, {"elapsed_s": at_95} if at_95 else {},
                        {"elapsed_s": at_end} if at_end else {})

    learnt = [seed(10, 500, 50.0, 55.0), seed(11, 8000.5, None, 800.0), seed(12, 600, 60.0, 65.0)]
    other = [seed(10, 8000.5, None, 400.0), seed(11, 900, 90.0, 95.0), seed(12, 1000, 100.0, 105.0)]
    # learnt: 50, 60 and a miss counted as never -> median 60; other: the miss at its last clock 400, 90, 100 -> 100
    assert mod.seconds_ratio(learnt, other) == pytest.approx(60 / 100)
    assert mod.seconds_ratio(learnt, [seed(10, 8000.5, None, None)]) is None
    assert mod.seconds_ratio(learnt, other, "cpu_s") is None  # runs without the CPU clock


def test_a_tuned_form_as_fast_as_the_learnt_set_says_no(tmp_path):
    mod = _module()
    same = [500 + 10 * i for i in range(10)]
    _arms(tmp_path, "mul", same, same, [2000] * 5, [900] * 10)
    shown, verdict = mod.verdicts("(a*b) mod 97", mod.outcomes(tmp_path)["(a*b) mod 97"])
    assert verdict["best other arm (steps)"] == "tuned_form" and [c.other for c in shown] == ["tuned_form", "shuffled"]
    assert shown[0].ratio == 1.0 and shown[0].p > 0.05
    assert verdict["learning does work"] == "no" and verdict["target met"] == "no"


def test_missed_runs_dips_and_arms_not_run_are_shown(tmp_path, capsys):
    mod = _module()
    for seed in range(10, 15):
        _run(tmp_path, "div", "learnt", seed, 600, dip=0.4 if seed == 11 else None)
        _run(tmp_path, "div", "tuned_form", seed, None if seed == 12 else 700)
        _run(tmp_path, "div", "adamw", seed, 650)
    mod.main([str(tmp_path)])
    out = capsys.readouterr().out
    tuned_row = next(line for line in out.splitlines() if "| tuned_form |" in line)
    assert ">8,000" in tuned_row and "4/5" in tuned_row
    learnt_row = next(line for line in out.splitlines() if "| learnt |" in line)
    assert "| 0.40 |" in learnt_row and "| 60 | 54 |" in learnt_row  # seconds (600 steps / 10), CPU (x 0.9)
    assert "not run (shuffled missing)" in out


def test_an_empty_folder_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no finished runs under"):
        _module().main([str(tmp_path)])


def test_the_wall_clock_half_compares_with_the_arm_quickest_in_seconds_even_when_another_takes_fewer_steps(tmp_path):
    mod = _module()
    for i, seed in enumerate(range(10, 20)):
        _run(tmp_path, "add", "learnt", seed, 500 + 10 * i)  # 0.1 s a step: ~55 s
        _run(tmp_path, "add", "tuned_form", seed, 700 + 10 * i)  # fewest steps of the others, ~75 s
        _run(tmp_path, "add", "adamw", seed, 800 + 10 * i, clock=0.04)  # more steps, cheaper ones: ~34 s
    for k in (1, 2, 3):
        for seed in range(10, 15):
            _run(tmp_path, "add", f"shuffled_{k}", seed, 2000)
    shown, verdict = mod.verdicts("(a+b) mod 97", mod.outcomes(tmp_path)["(a+b) mod 97"])
    by = {c.other: c for c in shown}
    assert verdict["best other arm (steps)"] == "tuned_form" and verdict["best other arm (seconds)"] == "adamw"
    assert by["tuned_form"].ratio == pytest.approx(545 / 745) and by["tuned_form"].seconds_ratio < 0.8
    assert by["adamw"].seconds_ratio == pytest.approx(545 * 0.1 / (845 * 0.04))  # 1.61
    assert verdict["target met"] == "no" and verdict["learning does work"] == "yes"


def test_the_hosts_table_names_which_machine_trained_each_seed_and_flags_a_split_block(tmp_path, capsys):
    mod = _module()
    for seed in (10, 11):
        for arm in ("learnt", "tuned_form", "adamw"):
            _run(tmp_path, "add", arm, seed, 600, host="Xeon")
    _run(tmp_path, "mul", "learnt", 12, 600, host="EPYC")
    _run(tmp_path, "mul", "adamw", 12, 600, host="Xeon")  # seed 12's block split across two machines
    _run(tmp_path, "mul", "tuned_form", 13, 600)  # from before hosts were recorded
    rows, split = mod.host_rows(mod.outcomes(tmp_path))
    assert rows == [{"host": "EPYC (AVX512)", "seeds": "12", "runs": "1"},
                    {"host": "Xeon (AVX512)", "seeds": "10, 11, 12", "runs": "7"},
                    {"host": "not recorded", "seeds": "13", "runs": "1"}]
    assert split == [12]
    mod.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| Xeon (AVX512) | 10, 11, 12 | 7 |" in out
    assert out.rstrip().endswith("seeds whose runs span more than one host (their seconds compare machines): 12")


def test_the_study_target_needs_three_developed_tasks_and_two_unseen_ones():
    mod = _module()
    def row(task, target, learning="yes"):
        return {"task": task, "target met": target, "learning does work": learning}
    developed = [row("(a+b) mod 97", "yes"), row("(a-b) mod 97", "yes"), row("(a*b) mod 97", "no", "no"),
                 row("(a*a-b) mod 97", "yes")]
    unseen = [row("(a/b) mod 97", "yes", "not run (shuffled missing)"), row("S5: x∘y", "yes", "not run")]
    line = mod.study_verdict(developed + unseen)
    assert line.startswith("target met on 3 of 4 developed mod-97 tasks (needs 3) and 2 of 2 unseen tasks")
    assert "study target met" in line and "the learning does work on 3 of 4 developed tasks; " in line
    assert "study target not met" in mod.study_verdict(developed + unseen[:1])  # one unseen task is not enough
    developed[0]["target met"] = "no"
    assert "study target not met" in mod.study_verdict(developed + unseen)  # two developed tasks are not enough
    assert set(mod.DEVELOPED) == {"(a+b) mod 97", "(a-b) mod 97", "(a*b) mod 97", "(a*a-b) mod 97"}


def test_transfer_is_shown_when_the_learnt_set_beats_its_tuned_form_on_two_unseen_tasks(tmp_path):
    mod = _module()
    seeds = range(10, 15)
    for i, seed in enumerate(seeds):  # (a/b): the learnt set below the tuned form on every seed; AdamW faster still
        _run(tmp_path, "div", "learnt", seed, 600 + 10 * i)
        _run(tmp_path, "div", "tuned_form", seed, 900 + 10 * i)
        _run(tmp_path, "div", "adamw", seed, 300 + 10 * i)
    arms = mod.outcomes(tmp_path)["(a/b) mod 97"]
    shown, verdict = mod.verdicts("(a/b) mod 97", arms)
    assert {c.other for c in shown} == {"tuned_form", "adamw"}
    assert next(c for c in shown if c.other == "tuned_form").p == pytest.approx(1 / math.comb(10, 5))
    assert verdict["carries (beats the tuned form)"] == "yes" and verdict["target met"] == "no"
    assert verdict["learning does work"] == "not run (shuffled missing)"
    for i, seed in enumerate(seeds):  # the same on (a+b), a developed task: no transfer reading there
        _run(tmp_path, "add", "learnt", seed, 600 + 10 * i)
        _run(tmp_path, "add", "tuned_form", seed, 900 + 10 * i)
    developed = mod.verdicts("(a+b) mod 97", mod.outcomes(tmp_path)["(a+b) mod 97"])[1]
    assert developed["carries (beats the tuned form)"] == "–"
    slower = dict(verdict, task="S5: x∘y", **{"carries (beats the tuned form)": "no"})
    line = mod.study_verdict([developed, verdict, slower])
    assert line.endswith("the coefficients carry to 1 of 2 unseen tasks (needs 2): transfer not shown")
    again = dict(slower, **{"carries (beats the tuned form)": "yes"})
    assert mod.study_verdict([developed, verdict, again]).endswith("carry to 2 of 2 unseen tasks (needs 2): transfer shown")
    assert "carry" not in mod.study_verdict([developed])  # no unseen task run: no transfer reading


def test_the_figure_draws_every_run_of_every_arm_with_its_median_and_lowest_accuracy(tmp_path):
    mod = _module()
    for seed in range(10, 13):
        _run(tmp_path, "div", "learnt", seed, 600 + 10 * seed, dip=0.4 if seed == 11 else None)
        _run(tmp_path, "div", "adamw", seed, None if seed == 12 else 300)
    _run(tmp_path, "add", "tuned_form", 10, 700)
    figure = tmp_path / "steps.png"
    mod.main([str(tmp_path), "--figure", str(figure)])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = mod.plot_steps(mod.outcomes(tmp_path), tmp_path / "again.png")
    assert list(drawn) == ["(a+b) mod 97", "(a/b) mod 97"]
    learnt, adamw = drawn["(a/b) mod 97"]  # the learnt arm on top
    assert learnt == ("learnt", [(700, True), (710, True), (720, True)], 710, 0.4)
    assert adamw == ("adamw", [(300, True), (300, True), (8000.5, False)], 300, 0.99)  # a miss ranks slowest
    assert drawn["(a+b) mod 97"] == [("tuned_form", [(700, True)], 700, 0.99)]


def test_a_task_with_its_own_benchmark_is_priced_at_its_own_step_costs(tmp_path, capsys):
    mod = _module()
    fast, slow = [500 + 10 * i for i in range(10)], [1000 + 10 * i for i in range(10)]
    _arms(tmp_path / "arms", "add", fast, slow, slow[:5], [800 + 10 * i for i in range(10)])
    _arms(tmp_path / "arms", "div", fast, slow, slow[:5], [800 + 10 * i for i in range(10)])
    untasked = [{"cell": f"arms.toml:{arm}", "ms_per_step": ms} for arm, ms in (("learnt", 60.0), ("adamw", 50.0))]
    div = [{"cell": f"unseen.toml:{arm}", "task": "(a/b) mod 97", "ms_per_step": ms}
           for arm, ms in (("learnt", 40.0), ("adamw", 80.0))]
    (tmp_path / "old.json").write_text(json.dumps({"rows": untasked}))
    (tmp_path / "div.json").write_text(json.dumps({"rows": div}))
    mod.main([str(tmp_path / "arms"), "--bench", str(tmp_path / "old.json"), str(tmp_path / "div.json")])
    out = capsys.readouterr().out
    priced = {line.split("|")[1].strip(): line.rstrip(" |").rsplit("|", 1)[1].strip()
              for line in out.splitlines() if "| adamw | 0.64 |" in line}
    assert priced == {"(a+b) mod 97": f"{545 / 845 * 60 / 50:.2f}", "(a/b) mod 97": f"{545 / 845 * 40 / 80:.2f}"}
    assert "benchmark-priced at their own step costs: (a/b) mod 97;" in out
    assert mod.task_costs(mod.step_costs([tmp_path / "div.json"]), "(a+b) mod 97") is None  # never another task's
