"""AGE / AWE against hand-computed values, and the report on synthetic run folders (table values, figures)."""
import json
import math
import os
import warnings

import pytest
import torch

from conftest import TINY
from neuralgrok.cli import main
from neuralgrok.metrics import age, age_per_tensor, age_scaled, awe
from neuralgrok.model import ModelConfig, Transformer
from neuralgrok.aggregate import group_runs, load_run, steps_vs_paper
from neuralgrok.figures import CANONICAL_COLOURS, palette
from neuralgrok.report import build_report

# -- metrics ------------------------------------------------------------------------------------------


def test_age_hand_value():
    g = torch.tensor([0.5, -0.25, 0.0, 1.0])
    expected = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) + 0.0 + 1.0 * math.log(1.0))
    assert age(g) == pytest.approx(expected, rel=1e-12)
    assert isinstance(age(g), float)


def test_age_of_list_equals_concatenation():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen), torch.randn(2, 2, 2, generator=gen)]
    cat = torch.cat([t.flatten() for t in grads])
    assert age(grads) == pytest.approx(age(cat), rel=1e-12)
    assert age(grads) == pytest.approx(sum(age(t) for t in grads), rel=1e-12)
    assert age_scaled(grads) == pytest.approx(age_scaled(cat), rel=1e-12)
    # an independent oracle in Python floats
    oracle = -sum(abs(x) * math.log(abs(x)) for x in cat.double().tolist())
    assert age(grads) == pytest.approx(oracle, rel=1e-10)


def test_zeros_give_zero_not_nan():
    z = torch.zeros(10)
    assert age(z) == 0.0 and age_scaled(z) == 0.0 and awe([z]) == 0.0
    assert age_scaled([torch.zeros(3), torch.zeros(2, 2)]) == 0.0
    mixed = torch.tensor([0.0, 0.0, 0.3])
    assert not math.isnan(age(mixed)) and age(mixed) == pytest.approx(-0.3 * math.log(0.3))


def test_computed_in_float64():
    # 1e6 equal float32 entries: a float32 computation would be off by ~1e-7 relative.
    g = torch.full((10**6,), 0.1, dtype=torch.float32)
    x = float(g[0])  # the float32 value, as a double
    assert age(g) == pytest.approx(-(10**6) * x * math.log(x), rel=1e-12)


def test_age_scaled_is_scale_free_and_age_is_not():
    gen = torch.Generator().manual_seed(1)
    g = [torch.randn(7, 5, generator=gen, dtype=torch.float64), torch.randn(11, generator=gen, dtype=torch.float64)]
    g73 = [7.3 * t for t in g]
    assert age_scaled(g73) == pytest.approx(age_scaled(g), rel=1e-12)
    assert abs(age(g73) - age(g)) > 1.0
    # hand value: |g|/‖g‖₁ = (0.25, 0.75)
    assert age_scaled(torch.tensor([1.0, -3.0])) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    # a uniform gradient has the maximal entropy ln n
    assert age_scaled(torch.full((64,), -0.02)) == pytest.approx(math.log(64), rel=1e-12)


def test_awe_and_per_tensor():
    w = [torch.nn.Parameter(torch.tensor([[2.0, -0.5]])), torch.tensor([0.0, 0.1])]
    expected = -(2.0 * math.log(2.0) + 0.5 * math.log(0.5) + 0.1 * math.log(0.1))
    assert awe(w) == pytest.approx(expected, rel=1e-6)  # 0.1 is a float32 value here
    per = age_per_tensor([torch.tensor([0.5, 0.5]), torch.tensor([-0.25]), None], ["w", "b", "frozen"])
    assert per == pytest.approx({"w": -math.log(0.5), "b": -0.25 * math.log(0.25), "frozen": 0.0})
    with pytest.raises(ValueError):
        age_per_tensor([torch.ones(2)], ["a", "b"])


@pytest.mark.parametrize("method", [[], ["--method", "neuralgrok", "--amp-hidden", "8,8"]])
def test_run_logs_age_per_tensor_on_request(method, tmp_path):
    run = [*TINY, "--run-on", "--max-steps", "20", *method]
    assert main(["train", "--out", str(tmp_path / "off"), *run]) == 0
    assert main(["train", "--out", str(tmp_path / "on"), *run, "--age-per-tensor"]) == 0
    off, on = (json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0]) for d in ("off", "on"))
    assert "age_tensors" not in off and off["age"] == on["age"]  # logging only, training unchanged
    names = [n for n, _ in Transformer(ModelConfig(26, 4, 1, 64, 4)).named_parameters()]
    assert list(on["age_tensors"]) == list(on["age_raw_tensors"]) == names
    # AGE adds over the concatenated tensors
    assert sum(on["age_tensors"].values()) == pytest.approx(on["age"], rel=1e-6)
    assert sum(on["age_raw_tensors"].values()) == pytest.approx(on["age_raw"], rel=1e-6)
    assert (on["age_tensors"] == on["age_raw_tensors"]) == (not method)  # only a transform changes them


# -- synthetic run folders ----------------------------------------------------------------------------


def _make_run(root, name, *, method, seed, s95, s99, spp, max_steps, finished=True, label=None,
              stop=None, log_age=True, truncated=False, acc_at=None, cpu=None):
    """A run folder whose test accuracy first reaches 95% at s95 and 99% at s99 (evaluations every 100 steps)."""
    d = root / name
    d.mkdir()
    cfg = {"task": "a*b", "p": 97, "method": method, "seed": seed, "max_steps": max_steps, "eval_every": 100}
    if label is not None:
        cfg["label"] = label
    (d / "config.json").write_text(json.dumps(cfg))
    last = stop if stop is not None else (s99 + 200 if s99 is not None else max_steps)
    rows = []
    for step in range(0, last + 1, 100):
        if acc_at is not None:
            test = acc_at(step)
        elif s95 is None or step < s95:
            test = 0.1 + 0.4 * step / max_steps
        elif s99 is None or step < s99:
            test = 0.96
        else:
            test = 0.995
        row = {"step": step, "train_loss": 1.0, "train_acc": min(1.0, 0.05 + step / 300), "test_loss": 2.0,
               "test_acc": test, "weight_norm": 30.0, "elapsed_s": round(step * spp, 3)}
        if cpu is not None:
            row["cpu_s"] = round(step * cpu, 3)
        if log_age:
            row.update(age=50.0 + 20 * math.exp(-((step - 300) / 200) ** 2), age_scaled=11.0 - step / 1000,
                       age_raw=1.0, age_raw_scaled=11.0, awe=100.0)
        rows.append(row)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if truncated:
        text += '{"step": %d, "train_loss": 0.5, "test_a' % (last + 100)
    (d / "metrics.jsonl").write_text(text)
    if finished:
        summary = {"steps_to_95": s95, "steps_to_99": s99, "best_test_acc": max(r["test_acc"] for r in rows),
                   "final_test_acc": rows[-1]["test_acc"], "steps": last, "wall_seconds": last * spp,
                   "seconds_per_step": spp, "stopped": "target" if s99 is not None else "max_steps"}
        (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = [
        # standard: 95% at 400/600/500, 99% at 500/800/never; 20 s, 24 s, 30 s to 95%
        # CPU seconds to 95%: 8 and 18 (seed 2 predates the record)
        _make_run(root, "std0", method="standard", seed=0, s95=400, s99=500, spp=0.05, max_steps=1000, label=None,
                  cpu=0.02),
        _make_run(root, "std1", method="standard", seed=1, s95=600, s99=800, spp=0.04, max_steps=1000,
                  truncated=True, label="", cpu=0.03),
        _make_run(root, "std2", method="standard", seed=2, s95=500, s99=None, spp=0.06, max_steps=1000),
        # Grokfast-EMA never reaches 95% within its 1500 steps; one seed logs no AGE
        _make_run(root, "ema0", method="grokfast_ema", seed=0, s95=None, s99=None, spp=0.02, max_steps=1500),
        _make_run(root, "ema1", method="grokfast_ema", seed=1, s95=None, s99=None, spp=0.03, max_steps=1500),
        _make_run(root, "ema2", method="grokfast_ema", seed=2, s95=None, s99=None, spp=0.025, max_steps=1500,
                  log_age=False),
        # unfinished, already at 97% at step 200: must not be counted
        _make_run(root, "ema3", method="grokfast_ema", seed=3, s95=None, s99=None, spp=0.02, max_steps=1500,
                  finished=False, stop=300, acc_at=lambda s: 0.97 if s >= 200 else 0.2),
    ]
    return root, dirs


def _table(report: str) -> list[dict[str, str]]:
    """The rows of the table whose header starts with '| task | method |', as dicts by column name."""
    lines = report.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| task | method |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    root, dirs = runs
    out = tmp_path_factory.mktemp("report")
    paper = {("(a*b) mod 97", "standard"): 1280, ("(a·b) mod 97", "Grokfast-EMA"): 1400}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build_report(dirs, out, paper_table=paper)
    assert _table(built.path.read_text()) == built.rows  # report.md's table is the rows the command line prints
    return out, built.path.read_text(), [str(w.message) for w in caught], built.rows


def test_load_run_tolerates_truncated_line_and_unfinished(runs):
    root, _ = runs
    with pytest.warns(UserWarning, match="truncated"):
        r = load_run(root / "std1")
    assert [m["step"] for m in r.metrics] == list(range(0, 1001, 100))
    assert r.summary["steps_to_95"] == 600 and r.label == "standard"
    u = load_run(root / "ema3")
    assert u.summary is None and not u.finished and len(u.metrics) == 4


def test_report_table_values(report):
    out, text, caught, rows = report
    assert any("truncated" in m for m in caught)
    assert [r["method"] for r in rows] == ["standard", "grokfast_ema"]  # fixed method order
    std, ema = rows
    assert std["task"] == "`(a*b) mod 97`"
    assert std["steps to 95%"] == "500 (400–600)"
    assert std["seeds reached 95%"] == "3/3"
    assert std["steps to 99%"] == "650 (500–800)"  # median of 500 and 800, seed 2 never reached
    assert std["seeds reached 99%"] == "2/3"
    assert std["step cap"] == "1000"
    assert std["wall s to 95%"] == "24.0"  # median of 20, 24, 30
    assert std["CPU s to 95%"] == "13.0"  # median of 8 and 18: the runs that record CPU time
    assert std["s/step"] == "0.05"
    # never reached: a sentence, never a number; the unfinished seed is marked and not counted
    assert ema["steps to 95%"] == "not within 1500 steps"
    assert ema["steps to 99%"] == "not within 1500 steps"
    assert ema["seeds reached 95%"] == "0/3 +1 (running)"
    assert ema["step cap"] == "1500"
    assert ema["wall s to 95%"] == ema["CPU s to 95%"] == "—"
    assert ema["s/step"] == "0.025"
    assert "not within" in text


def test_report_paper_column(report, runs, tmp_path):
    std, ema = report[3]
    assert std["paper"] == "1280" and ema["paper"] == "1400"
    _, dirs = runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = build_report(dirs[:3], tmp_path)
    assert "paper" not in plain.columns
    assert plain.rows[0]["steps to 95%"] == "500 (400–600)"
    plain = plain.path.read_text()
    assert "steps_vs_paper.png" not in plain and not (tmp_path / "steps_vs_paper.png").exists()


def test_steps_vs_paper_data(runs):
    """The figure's numbers: each seed that reached 95%, the cap where none did, the published number or phrase."""
    _, dirs = runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grouped = group_runs([load_run(d) for d in dirs])
    table = steps_vs_paper(grouped, {"(a*b) mod 97": {"standard": 1280, "grokfast_ema": "fails in 1e6"}})
    std, ema = table["(a*b) mod 97"]
    assert (std.label, std.reached, std.n_finished, std.paper) == ("standard", [400, 500, 600], 3, 1280)
    assert (ema.label, ema.reached, ema.n_finished, ema.cap, ema.paper) == ("grokfast_ema", [], 3, 1500,
                                                                             "fails in 1e6")
    assert steps_vs_paper(grouped, {"(a+b) mod 97": {"standard": 1650}}) == {}  # no published number for a*b


def test_report_header_and_links(report, runs):
    out, text, _, _ = report
    root, _ = runs
    assert "Read 7 runs (6 finished, 1 unfinished)" in text
    assert str(root) in text
    for name in ("accuracy.png", "age.png", "age_scaled.png"):
        assert f"]({name})" in text
    assert "(running)" in text


def test_report_figures_are_valid_pngs(report):
    import matplotlib.image as mpimg

    out, _, _, _ = report
    # every file written atomically: no temporary files left behind
    assert sorted(os.listdir(out)) == ["accuracy.png", "age.png", "age_scaled.png", "report.md", "steps_vs_paper.png",
                                       "weight_norm.png"]
    for name in ("accuracy.png", "age.png", "age_scaled.png", "steps_vs_paper.png", "weight_norm.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 10_000  # a palette PNG (png.py) of a drawn figure
        img = mpimg.imread(out / name)
        assert img.shape[0] >= 400 and img.shape[1] >= 600
        non_white = (img[..., :3].min(axis=-1) < 0.9).mean()
        assert non_white > 0.02  # something is drawn


def test_palette_keeps_canonical_colours_and_tells_a_dozen_variants_apart():
    canonical = [(m, m) for m in CANONICAL_COLOURS]
    variants = [(f"neuralgrok variant {i}", "neuralgrok") for i in range(12)]
    variants += [(f"gradnorm + clip {i}", "gradnorm") for i in range(3)]
    wd = [(f"standard wd {w}", "standard") for w in ("1e-2", "1e-3", "0")]
    colours = palette(canonical + variants + wd)
    for method in CANONICAL_COLOURS:
        assert colours[method] == CANONICAL_COLOURS[method]
    assert len(set(colours.values())) == len(colours) == len(canonical + variants + wd)


def test_accuracy_figure_draws_the_runs_series(runs, tmp_path, monkeypatch):
    """The plotted lines are the data: the seeds' mean test accuracy on their common steps, an unfinished run's own."""
    import numpy as np

    from neuralgrok import figures as figures_module

    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    _, dirs = runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_report(dirs, tmp_path, paper_table=None)
        std = [load_run(d) for d in dirs[:3]]
    lines = [(list(line.get_xdata()), np.asarray(line.get_ydata(), float), line.get_linestyle())
             for ax in figures["accuracy.png"].axes for line in ax.get_lines()]
    last = min(r.metrics[-1]["step"] for r in std)  # the seeds' common range: steps 100..700
    steps = list(range(100, last + 1, 100))
    expected = np.mean([[m["test_acc"] for m in r.metrics if 100 <= m["step"] <= last] for r in std], axis=0)
    assert any(x == steps and ls == "-" and np.allclose(y, expected) for x, y, ls in lines)
    assert any(x == [100, 200, 300] and np.allclose(y, [0.2, 0.97, 0.97]) for x, y, _ in lines)  # unfinished ema3
    assert not any(np.allclose(y, expected + 0.01) for x, y, _ in lines if x == steps)  # the check can fail
    norms = [line.get_ydata() for ax in figures["weight_norm.png"].axes[::2] for line in ax.get_lines()]
    assert norms and all(np.allclose(y, 30.0) for y in norms)  # the runs' logged weight norm, 30 throughout


def test_age_figures_plot_each_methods_logged_age_and_the_steps_figure_its_numbers(runs, tmp_path, monkeypatch):
    """What is drawn: the standard seeds' mean AGE (and scale-free AGE) on their common steps, left of the test
    accuracy; the steps figure's bars at the median steps to 95% (500) and at the paper's 1,280, its dots the seeds."""
    import numpy as np

    from neuralgrok import figures as figures_module

    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    _, dirs = runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_report(dirs, tmp_path, paper_table={("(a*b) mod 97", "standard"): 1280})
        std = [load_run(d) for d in dirs[:3]]
    last = min(r.metrics[-1]["step"] for r in std)
    steps = list(range(100, last + 1, 100))
    for key, name in (("age", "age.png"), ("age_scaled", "age_scaled.png")):
        expected = np.mean([[m[key] for m in r.metrics if 100 <= m["step"] <= last] for r in std], axis=0)
        left = [(list(line.get_xdata()), np.asarray(line.get_ydata(), float))
                for line in figures[name].axes[0].get_lines()]
        assert any(x == steps and np.allclose(y, expected) for x, y in left), key
        assert not any(x == steps and np.allclose(y, expected * 1.01) for x, y in left)  # the check can fail
        right = [np.asarray(line.get_ydata(), float) for line in figures[name].axes[1].get_lines()]
        assert any(len(y) == len(steps) and np.all(y <= 1.0) for y in right)  # accuracies beside it
    ax = figures["steps_vs_paper.png"].axes[0]
    heights = sorted(round(p.get_height()) for p in ax.patches if p.get_height() > 0)
    assert 500 in heights and 1280 in heights and 1500 in heights  # median, paper, Grokfast-EMA's cap outline
    dots = [sorted(line.get_ydata()) for line in ax.get_lines() if line.get_marker() == "o"]
    assert [400, 500, 600] in [[round(v) for v in d] for d in dots]


def test_weight_decay_sweep_best_tuned_table_and_figure(tmp_path, monkeypatch):
    """Swept cells (the grid records family and swept option) give a best-weight-decay row per method and a
    steps-against-decay line; a label that merely looks swept is not read as one."""
    import numpy as np

    from neuralgrok import figures as figures_module

    root = tmp_path / "runs"
    root.mkdir()
    dirs, plan = [], {0.0: (None, None), 0.001: (600, 700), 0.01: (300, 500), 0.03: (100,), 0.1: (400, None)}  # seeds' s95
    for wd, seeds in plan.items():
        for seed, s95 in enumerate(seeds):
            d = _make_run(root, f"std-wd{wd:g}-s{seed}", method="standard", seed=seed, s95=s95, s99=None,
                          spp=0.01, max_steps=1000, label=f"standard wd={wd:g}")
            cfg = json.loads((d / "config.json").read_text())
            (d / "config.json").write_text(json.dumps({**cfg, "weight_decay": wd, "family": "standard",
                                                       "swept": "weight_decay"}))  # as the grid records a sweep
            dirs.append(d)
    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    built = build_report(dirs, tmp_path / "out", paper_table=None)
    assert built.tuned == [{"task": "`(a*b) mod 97`", "method": "standard", "best weight decay": "0.01",
                            "steps to 95%": "400 (300–500)", "seeds reached 95%": "2/2",
                            "steps to 95% at 0.001": "650 (600–700) (2/2)",  # the default decay, beside the best
                            "weight decays tried": "0, 0.001, 0.01, 0.03 (1 seed), 0.1"}]
    # 0.1 is faster once, but 1 seed in 2; 0.03 is fastest, but finished on 1 seed where the others have 2
    assert "## Each method at its best weight decay" in built.path.read_text()
    lines = [(list(line.get_xdata()), list(line.get_ydata())) for ax in figures["steps_vs_weight_decay.png"].axes
             for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert ([0.001, 0.01, 0.03], [650.0, 400.0, 100.0]) in [(x, [float(v) for v in np.asarray(y)]) for x, y in lines]
    from neuralgrok.aggregate import best_tuned_rows, group_runs, load_run, weight_decay_sweeps
    sweeps = weight_decay_sweeps(group_runs([load_run(d) for d in dirs]))
    [never] = best_tuned_rows(sweeps, default_decay=0.0)  # the decay where no seed reached 95%
    [unswept] = best_tuned_rows(sweeps, default_decay=0.3)
    assert never["steps to 95% at 0"] == "not reached (0/2)" and unswept["steps to 95% at 0.3"] == "—"
    grouped = group_runs([load_run(d) for d in dirs[:2]])  # one decay only: swept at min_points=1, not at 2
    assert weight_decay_sweeps(grouped) == {}
    [point] = weight_decay_sweeps(grouped, min_points=1)["(a*b) mod 97"]["standard"]
    assert point.weight_decay == 0.0 and len(point.group.finished) == 2
    for d in dirs:  # the same runs without the grid's record: labels alone are not read
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k not in ("family", "swept")}))
    assert weight_decay_sweeps(group_runs([load_run(d) for d in dirs])) == {}


def test_a_sweep_over_another_option_draws_steps_against_it(tmp_path, monkeypatch):
    """A grid sweep over the training fraction: steps to 95% against it, medians where every seed got there."""
    import numpy as np

    from neuralgrok import figures as figures_module

    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    root = tmp_path / "runs"
    root.mkdir()
    dirs, plan = [], {0.3: (900, 1100), 0.5: (500, 700), 0.7: (300, None)}
    for frac, seeds in plan.items():
        for seed, s95 in enumerate(seeds):
            d = _make_run(root, f"tf{frac}-s{seed}", method="standard", seed=seed, s95=s95,
                          s99=400 if frac == 0.7 and s95 else None, spp=0.01, max_steps=2000,
                          label=f"AdamW train_frac={frac:g}")  # at 0.7 the seed that gets there stops at step 600
            cfg = json.loads((d / "config.json").read_text())
            (d / "config.json").write_text(json.dumps({**cfg, "train_frac": frac, "family": "AdamW",
                                                       "swept": "train_frac"}))
            dirs.append(d)
    built = build_report(dirs, tmp_path / "out", paper_table=None)
    assert "## Steps to 95% against the train frac" in built.path.read_text()
    lines = [(list(line.get_xdata()), [float(v) for v in np.asarray(line.get_ydata())])
             for ax in figures["steps_vs_train_frac.png"].axes for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert ([0.3, 0.5], [1000.0, 600.0]) in lines  # 0.7 is left off the line: one seed never reached 95%
    [missed] = [(list(line.get_xdata()), list(line.get_ydata())) for ax in figures["steps_vs_train_frac.png"].axes
                for line in ax.get_lines() if line.get_marker() == "v"]
    assert missed == ([0.7], [2000])  # at the steps the missing seed ran, not the 600 the other one stopped at
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = figures["steps_vs_train_frac.png"]  # one panel: its caption once ran off both edges
    renderer = FigureCanvasAgg(fig).get_renderer()
    for text in fig.texts:
        extent = text.get_window_extent(renderer)
        assert fig.bbox.x0 - 1 <= extent.x0 and extent.x1 <= fig.bbox.x1 + 1, text.get_text()


def test_amplifier_shape_is_the_softmax_weight_ratio():
    """The figure's curve means what its caption says: amplify weights entry x against entry y by w(x)/w(y)."""
    from neuralgrok.amplifier import AmplifierMLP, amplify, relative_weight

    torch.manual_seed(3)
    mlp = AmplifierMLP((8, 8)).double()
    x = torch.tensor([0.03, -2e-4, 5e-7, -0.08], dtype=torch.float64)
    y = torch.tensor([1e-3, 0.02, -1e-5, 4e-6], dtype=torch.float64)
    for a, b in zip(x, y):
        out = amplify(mlp, [torch.stack([a, b])], mode="dense")[0]
        expected = (relative_weight(mlp, a.reshape(1)) / relative_weight(mlp, b.reshape(1))).item()
        assert ((out[0] / a) / (out[1] / b)).item() == pytest.approx(expected, rel=1e-10)


def test_report_shows_a_neuralgrok_runs_amplifier(tmp_path, monkeypatch):
    import numpy as np
    from safetensors.torch import load_file

    from neuralgrok import figures as figures_module
    from neuralgrok.amplifier import AmplifierMLP, relative_weight

    run = tmp_path / "ng"
    assert main(["train", "--out", str(run), *TINY, "--method", "neuralgrok", "--amp-hidden", "8,8",
                 "--max-steps", "40", "--meta-lr", "1e-2"]) == 0
    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    text = build_report([run], tmp_path / "report").path.read_text()
    assert "## The learnt amplifier" in text and "amplifier_shape.png" in text and "amp_pn_std.png" in text
    mlp = AmplifierMLP((8, 8)).double()
    mlp.load_state_dict({k: v.double() for k, v in load_file(run / "amplifier.safetensors").items()})
    (line,) = figures["amplifier_shape.png"].axes[0].get_lines()[:1]
    xs = torch.tensor(line.get_xdata(), dtype=torch.float64)
    assert np.allclose(line.get_ydata(), relative_weight(mlp, xs).numpy())
    assert not np.allclose(line.get_ydata(), 1.0)  # meta steps at lr 1e-2 moved it off uniform


def test_report_draws_the_coefficient_forms_terms_per_tensor(tmp_path, monkeypatch):
    import numpy as np
    from safetensors.torch import load_file

    from neuralgrok import figures as figures_module

    run = tmp_path / "coef"
    assert main(["train", "--out", str(run), *TINY, "--method", "neuralgrok", "--amp-features", "g,slow,theta",
                 "--amp-form", "coefficients", "--max-steps", "40", "--meta-every", "2", "--meta-lr", "1e-2"]) == 0
    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    text = build_report([run], tmp_path / "report").path.read_text()
    assert "amplifier_coefficients.png" in text and "amp_dev.png" in text and "amplifier_shape.png" not in text
    (ax,) = figures["amplifier_coefficients.png"].axes
    names = [n for n, _ in Transformer(ModelConfig(vocab_size=25, seq_len=4, n_layers=1, d_model=64,
                                                   n_heads=4)).named_parameters()]
    assert [t.get_text() for t in ax.get_xticklabels()] == names  # the TINY model's tensors, in gradient order
    coef = load_file(run / "amplifier.safetensors")["coef"].numpy()
    slow, decay = ([bar.get_height() for bar in c] for c in ax.containers)
    assert np.allclose(slow, coef[:len(names), 0]) and np.allclose(decay, coef[:len(names), 1])
    assert not np.allclose(decay, 0.0)  # the meta steps moved them


def test_bf16_runs_are_never_pooled_with_float32_ones(tmp_path):
    dirs = [_make_run(tmp_path, f"r{i}", method="standard", seed=i, s95=400, s99=500, spp=0.05, max_steps=1000)
            for i in range(3)]
    for d, precision in zip(dirs[1:], ("bf16", "bf16")):
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "mixed_precision": precision}))
    groups = group_runs([load_run(d) for d in dirs])["(a*b) mod 97"]
    assert sorted((g.label, len(g.runs)) for g in groups) == [("standard", 1), ("standard bf16", 2)]


def test_long_method_labels_stay_inside_the_figures(tmp_path, monkeypatch):
    """A grid's descriptive labels (100+ characters) are wrapped: every legend, title and tick label of the accuracy
    and steps figures lies inside the figure (before the fix, one label ran 107 pixels off the left edge)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neuralgrok import figures as figures_module

    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    label = "neuralgrok coefficients nonneg decay theta over its step-0 rms learnt on a+b s0 mapped to 4 layers frozen"
    dirs = [_make_run(tmp_path, f"r{i}", method=m, seed=0, s95=400, s99=500, spp=0.05, max_steps=1000, label=lab)
            for i, (m, lab) in enumerate((("neuralgrok", label), ("gradnorm", "gradnorm + clip 1.0")))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_report(dirs, tmp_path / "report", paper_table={("(a*b) mod 97", "gradnorm + clip 1.0"): 900})
    acc, steps = figures["accuracy.png"], figures["steps_vs_paper.png"]
    assert any(label.split()[0] in t.get_text() for ax in acc.axes for t in ax.get_legend().get_texts())
    assert any(label.split()[0] in t.get_text() for t in steps.axes[0].get_xticklabels())
    for fig, items in ((acc, [ax.get_legend() for ax in acc.axes] + [ax.title for ax in acc.axes]),
                       (steps, [*steps.legends, steps.axes[0].title, *steps.axes[0].get_xticklabels()])):
        renderer = FigureCanvasAgg(fig).get_renderer()
        for item in items:
            extent = item.get_window_extent(renderer)
            assert fig.bbox.x0 - 1 <= extent.x0 and extent.x1 <= fig.bbox.x1 + 1, item
            assert fig.bbox.y0 - 1 <= extent.y0 and extent.y1 <= fig.bbox.y1 + 1, item


def test_runs_that_hold_the_same_coefficients_share_one_panel(tmp_path, monkeypatch):
    """A frozen set used on two tasks is drawn once, titled with both; a set that trained on is drawn on its own."""
    from neuralgrok import figures as figures_module

    coef = ["--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form", "coefficients",
            "--max-steps", "20", "--meta-every", "2", "--meta-lr", "1e-2"]
    learnt = tmp_path / "learnt"
    assert main(["train", "--out", str(learnt), *TINY, *coef]) == 0
    frozen = [tmp_path / f"frozen_{t}" for t in ("add", "sub")]
    for out, task in zip(frozen, ("a+b", "a-b")):
        assert main(["train", "--out", str(out), *TINY, *coef, "--task", task, "--amplifier", str(learnt),
                     "--freeze-amplifier", "--label", "frozen set"]) == 0
    figures = {}
    monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
    build_report([learnt, *frozen], tmp_path / "report")
    titles = sorted(ax.get_title() for ax in figures["amplifier_coefficients.png"].axes)
    assert len(titles) == 2, titles  # three runs, two distinct sets of numbers
    assert titles[0].startswith("(a+b) mod 23, (a-b) mod 23: frozen set s0")
    assert titles[1].startswith("(a+b) mod 23:") and "frozen" not in titles[1]


def test_a_long_legend_sits_beside_its_panel_inside_the_figure(tmp_path, monkeypatch):
    """Eight methods and the train/test key: the legend leaves the panel (where it would hide curves) and stays
    inside the widened figure; five stay inside the panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neuralgrok import figures as figures_module

    for n in (8, 3):
        figures = {}
        monkeypatch.setattr(figures_module, "_save_figure", lambda fig, path: figures.__setitem__(path.name, fig))
        dirs = [_make_run(tmp_path, f"n{n}-r{i}", method="standard", seed=0, s95=400, s99=500, spp=0.05,
                          max_steps=1000, label=f"method {i}") for i in range(n)]
        build_report(dirs, tmp_path / f"report{n}")
        fig = figures["accuracy.png"]
        (ax,) = [a for a in fig.axes if a.get_visible()]
        renderer = FigureCanvasAgg(fig).get_renderer()
        legend, panel = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert len(ax.get_legend().get_texts()) == n + 2
        assert (legend.x0 >= panel.x1) == (n + 2 > figures_module._LEGEND_INSIDE)
        assert fig.bbox.x0 - 1 <= legend.x0 and legend.x1 <= fig.bbox.x1 + 1
