"""Comparison report from run folders: report.md with the steps-to-accuracy table, and the figures beside it."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import (PAPER_TABLE_1, best_tuned_rows, finite, group_runs, has_key, load_run, markdown_table,
                        option_sweeps, steps_vs_paper, swept_options, table_row, weight_decay_sweeps)
from .figures import (palette, plot_accuracy, plot_amplifier_coefficients, plot_amplifier_shapes,
                      plot_beside_accuracy, plot_steps_vs_option, plot_steps_vs_paper, plot_steps_vs_weight_decay)
from .config import RunConfig
from .runfolder import write_atomic

__all__ = ["PAPER_TABLE_1", "Report", "build_report"]


@dataclass
class Report:
    """What ``build_report`` wrote: report.md's path, and its table as rows of cells with the column order."""

    path: Path
    rows: list[dict[str, str]]
    columns: list[str]
    tuned: list[dict[str, str]] = field(default_factory=list)  # swept methods at their best weight decay


@dataclass
class _Inputs:
    """What the report's sections read, and what they hand back to the caller."""

    runs: list
    grouped: dict
    colours: dict
    out: Path
    paper_table: dict | None
    unreadable: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    tuned: list[dict[str, str]] = field(default_factory=list)


def build_report(run_dirs: list[Path], out_dir: Path, paper_table: dict | None = None) -> Report:
    """Writes ``out_dir/report.md`` (table of steps to 95%/99% test accuracy) and its PNG figures.

    Unfinished runs (no summary.json) are plotted but not counted in the table. ``paper_table`` maps
    (task label such as "(a*b) mod 97", method label) to a published number (see PAPER_TABLE_1), or
    {task label: {method: number}}; when it matches a row, a "paper" column is shown. The report is
    its :data:`SECTIONS` in order, each writing its figures and returning its Markdown lines.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, unreadable = [], []
    for d in map(Path, run_dirs):
        try:
            runs.append(load_run(d))
        except (OSError, ValueError) as e:
            warnings.warn(f"{d}: not a readable run folder ({e})", stacklevel=2)
            unreadable.append(f"`{d}` ({type(e).__name__})")
    inputs = _Inputs(runs, group_runs(runs), palette([(r.label, r.method) for r in runs]), out_dir, paper_table,
                     unreadable)
    md = [line for section in SECTIONS for line in section(inputs)]
    path = out_dir / "report.md"
    write_atomic(path, "\n".join(md) + "\n")
    return Report(path, inputs.rows, inputs.columns, inputs.tuned)


def _header(x: _Inputs) -> list[str]:
    n_fin = sum(r.finished for r in x.runs)
    parents = sorted({str(r.path.parent) for r in x.runs})
    skipped = sum(r.skipped_lines for r in x.runs)
    md = ["# Grokking runs: comparison", "",
          f"Read {len(x.runs)} runs ({n_fin} finished, {len(x.runs) - n_fin} unfinished) from "
          + ", ".join(f"`{p}`" for p in parents) + "." if x.runs else "Read 0 runs."]
    if x.unreadable:
        md.append(f"Not run folders, skipped: {', '.join(x.unreadable)}.")
    if skipped:
        md.append(f"{skipped} unreadable metrics line(s) skipped (a run killed mid-write).")
    return md + [""]


def _steps_table(x: _Inputs) -> list[str]:
    x.rows = [table_row(g, x.paper_table) for gs in x.grouped.values() for g in gs]
    x.columns = ["task", "method", "steps to 95%", "seeds reached 95%", "steps to 99%", "seeds reached 99%",
                 "step cap", "wall s to 95%", "CPU s to 95%", "s/step"]
    with_paper = any(r["paper"] != "—" for r in x.rows)
    x.columns += ["paper"] if with_paper else []
    md = ["## Steps to test accuracy", "",
          "Steps to 95% / 99% test accuracy: median (min–max) over the finished seeds that reached it; "
          "\"seeds reached\" is k/n of the finished runs (unfinished ones are marked \"(running)\" and not "
          "counted). \"not within N steps\": no finished seed reached it in the N steps it ran. "
          "\"wall s to 95%\": median wall-clock seconds (evaluation included) at the first evaluation at or above "
          "95%; \"CPU s to 95%\": the same in the training process's CPU seconds (runs that record them), which "
          "other work on the machine does not inflate; \"s/step\": median seconds per training step.", "",
          markdown_table(x.rows, x.columns) if x.rows else "(no runs)"]
    return md + (["", "\"paper\": steps to 95% test accuracy as published."] if with_paper else []) + [""]


def _best_decay(x: _Inputs) -> list[str]:
    sweeps = weight_decay_sweeps(x.grouped)
    default_decay = RunConfig().weight_decay
    x.tuned = best_tuned_rows(sweeps, default_decay)
    if not sweeps:
        return []
    plot_steps_vs_weight_decay(sweeps, x.out / "steps_vs_weight_decay.png")
    return ["## Each method at its best weight decay", "",
            "Methods run at several weight decays (grid `sweep`), each at the one where the most finished seeds "
            "reached 95% test accuracy, then the fewest median steps, among the decays finished on as many seeds as "
            "the method's most complete one (the others, not compared yet, show their seed count); beside it, the "
            f"same method at the paper setting, the weight decay NeuralGrok's Table 1 gives every method "
            f"({default_decay:g}, this project's default), with the seeds that reached 95% (\"—\": not run at it); "
            "the table above has every value.", "",
            markdown_table(x.tuned, list(x.tuned[0])), "",
            "![steps to 95% against weight decay](steps_vs_weight_decay.png)", ""]


def _against_paper(x: _Inputs) -> list[str]:
    comparison = steps_vs_paper(x.grouped, x.paper_table) if x.paper_table else {}
    if not comparison:
        return []
    plot_steps_vs_paper(comparison, x.colours, x.out / "steps_vs_paper.png")
    return ["## Against the published numbers", "",
            "Steps to 95% test accuracy, ours (solid: median bar, min–max line, one dot per seed that reached "
            "it; an outline up to the cap where none did) beside the paper's (hatched; a published number that "
            "is not a step count is written instead).", "",
            "![steps to 95%, ours and the paper's](steps_vs_paper.png)", ""]


def _curves(x: _Inputs) -> list[str]:
    if not x.runs:
        return []
    plot_accuracy(x.grouped, x.colours, x.out / "accuracy.png")
    md = ["## Accuracy", "",
          "Train (dashed) and test (solid) accuracy against step, log scale: mean over the finished seeds "
          "where all of them have data, light band min–max of test accuracy, single seeds thin beyond; "
          "unfinished runs thin and faint.", "",
          "![train and test accuracy](accuracy.png)", "",
          "## Absolute gradient entropy (AGE)", "",
          "AGE = −Σ|g|·ln|g| of the gradient the optimizer receives. It depends on the gradient's scale, "
          "so methods that normalise the gradient (gradnorm, NeuralGrok) are not comparable with raw ones; "
          "the scale-free AGE (of g/‖g‖₁) is."]
    for key, fname, alt in (("age", "age.png", "AGE"), ("age_scaled", "age_scaled.png", "scale-free AGE")):
        if has_key(x.grouped, key):
            plot_beside_accuracy(x.grouped, x.colours, key, x.out / fname)
            md += ["", f"![{alt} and test accuracy]({fname})"]
        else:
            md += ["", f"(no run logged `{key}`)"]
    md.append("")
    if has_key(x.grouped, "weight_norm"):
        plot_beside_accuracy(x.grouped, x.colours, "weight_norm", x.out / "weight_norm.png")
        md += ["## Weight norm", "",
               "The L2 norm of all parameters against step, beside test accuracy (Omnigrok: generalising "
               "solutions sit near a critical weight norm).", "",
               "![weight norm and test accuracy](weight_norm.png)", ""]
    return md


def _amplifier(x: _Inputs) -> list[str]:
    shapes = amplifier_shapes(x.grouped)
    if not (shapes or has_key(x.grouped, "amp_pn_std") or has_key(x.grouped, "amp_dev")):
        return []
    md = ["## The learnt amplifier", "",
          "How far each learnt amplifier is from uniform during training (the scalar amplifier: the standard "
          "deviation of p·n over all entries, 0 when every entry of a tensor is weighted alike; the feature "
          "amplifier: the distance of its output from per-tensor gradient normalisation), and the scalar "
          "amplifiers' final shape: the weight an entry g gets against a zero entry of its tensor (a flat 1 is "
          "uniform).", ""]
    for key in ("amp_pn_std", "amp_dev"):
        if has_key(x.grouped, key):
            plot_beside_accuracy(x.grouped, x.colours, key, x.out / f"{key}.png")
            md += [f"![{key} and test accuracy]({key}.png)", ""]
    if shapes:
        plot_amplifier_shapes(shapes, x.colours, x.out / "amplifier_shape.png")
        md += ["![learnt amplifier shapes](amplifier_shape.png)", ""]
    coefficients = amplifier_coefficients(x.grouped)
    if coefficients:
        plot_amplifier_coefficients(coefficients, x.out / "amplifier_coefficients.png")
        md += ["The coefficient form's learnt terms, tensor by tensor (the update is ĝ + slow·ŝ + decay·θ̂ "
               "per tensor, each term scaled to unit rms, then rescaled to norm c):", "",
               "![learnt coefficients per tensor](amplifier_coefficients.png)", ""]
    return md


def _runs(x: _Inputs) -> list[str]:
    md = ["## Runs", "", "| folder | task | method | seed | status | steps | best test acc |",
          "|---|---|---|---|---|---|---|"]
    for r in x.runs:
        s = r.summary
        status = f"finished ({s.get('stopped', '?')})" if s else "(running)"
        steps = s.get("steps") if s else (r.metrics[-1]["step"] if r.metrics else 0)
        accs = [m["test_acc"] for m in r.metrics if finite(m.get("test_acc"))]
        best = f"{max(accs):.4f}" if accs else "—"
        md.append(f"| `{r.path}` | `{r.task_label}` | {r.label} | {r.config.get('seed', '?')} | {status} | "
                  f"{steps} | {best} |")
    return md


def _other_sweeps(x: _Inputs) -> list[str]:
    """Steps to 95% against each swept option other than the weight decay (the training fraction, say)."""
    md = []
    for option in swept_options(x.grouped):
        sweeps = option_sweeps(x.grouped, option)
        if option == "weight_decay" or not sweeps:
            continue
        name = option.replace("_", " ")
        plot_steps_vs_option(sweeps, x.out / f"steps_vs_{option}.png", name)
        md += [f"## Steps to 95% against the {name}", "",
               f"Methods run at several values of `{option}` (grid `sweep`): each seed's steps to 95% (dots) and the "
               "median where every seed got there (line).", "", f"![steps to 95% against {name}](steps_vs_{option}.png)",
               ""]
    return md


# The report, top to bottom: each section writes its figures and returns its lines (none when it has nothing to show).
SECTIONS = (_header, _steps_table, _best_decay, _other_sweeps, _against_paper, _curves, _amplifier, _runs)


def amplifier_shapes(grouped) -> dict[str, list[tuple[str, int, list[float], list[float]]]]:
    """Per task, (label, seed, g values, relative weights) of every finished run with a scalar amplifier file."""
    import torch

    from .amplifier import AmplifierMLP, relative_weight
    from .bilevel import AMPLIFIER_FILE, AMPLIFIER_META
    magnitudes = torch.logspace(-8, -1, 120, dtype=torch.float64)
    xs = torch.cat([-magnitudes.flip(0), torch.zeros(1, dtype=torch.float64), magnitudes])
    shapes = {}
    for task, groups in grouped.items():
        for g in groups:
            for r in g.finished:
                meta = r.path / AMPLIFIER_META
                if not (r.path / AMPLIFIER_FILE).exists() or not meta.exists():
                    continue
                info = json.loads(meta.read_text())
                if info.get("features", ["g"]) != ["g"]:
                    continue  # the feature amplifier has no one-input shape
                from safetensors.torch import load_file
                mlp = AmplifierMLP(info["hidden"]).double()
                mlp.load_state_dict({k: v.double() for k, v in load_file(r.path / AMPLIFIER_FILE).items()})
                shapes.setdefault(task, []).append((g.label, r.config.get("seed", 0), xs.tolist(),
                                                   relative_weight(mlp, xs).tolist()))
    return shapes


def amplifier_coefficients(grouped) -> list[tuple[str, list[str], dict[str, list[float]]]]:
    """(title, parameter names, {term: coefficient per tensor}) of each distinct set of coefficients that finished
    coefficient-form runs hold: runs with the same label and the same numbers (a frozen set used on many tasks and
    seeds) share one entry, titled with all of their tasks and seeds."""
    from safetensors.torch import load_file

    from .bilevel import AMPLIFIER_FILE, AMPLIFIER_META
    from .config import from_json
    from .feature_amplifier import CoefficientAmplifier
    from .build import build_model, task_data
    found: dict[tuple, tuple[dict[str, None], set[int]]] = {}  # (label, names, terms) -> (tasks in order, seeds)
    for task, groups in grouped.items():
        for g in groups:
            for r in g.finished:
                meta = r.path / AMPLIFIER_META
                info = json.loads(meta.read_text()) if meta.exists() else {}
                if info.get("form") != "coefficients" or not (r.path / AMPLIFIER_FILE).exists():
                    continue
                names = info.get("tensor_names")  # recorded since 2026-12-06; older runs: rebuild their model
                if not names:
                    cfg = from_json((r.path / "config.json").read_text())
                    names = [n for n, p in build_model(cfg, task_data(cfg)).named_parameters() if p.requires_grad]
                amp = CoefficientAmplifier(tuple(info["features"]))
                amp.load_state_dict(load_file(r.path / AMPLIFIER_FILE))
                terms = amp.per_tensor(len(names))
                key = (g.label, tuple(names), tuple((k, tuple(v)) for k, v in terms.items()))
                tasks, seeds = found.setdefault(key, ({}, set()))
                tasks[task] = None
                seeds.add(r.config.get("seed", 0))
    return [(f"{', '.join(tasks)}: {label} {_seed_list(seeds)}", list(names), {k: list(v) for k, v in terms})
            for (label, names, terms), (tasks, seeds) in found.items()]


def _seed_list(seeds: set[int]) -> str:
    """``s3`` for one seed, ``s10-19`` for a run of them, else ``s1, 4, 7``."""
    ordered = sorted(seeds)
    if len(ordered) == 1:
        return f"s{ordered[0]}"
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"s{ordered[0]}-{ordered[-1]}"
    return "s" + ", ".join(map(str, ordered))
