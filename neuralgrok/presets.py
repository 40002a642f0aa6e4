"""Published setups as presets: the settings of a paper's public code for each task and method (``--paper NAME``).

A preset maps (task, method) to run options; ``neuralgrok train --paper NAME`` applies them
beneath the config file and the flags, which override them.  Every value carries its source
(a file and the statement in it of a public code, or the paper), and ``neuralgrok presets`` prints the table.

The two NeuralGrok versions (Blackzxy/NeuralOptGrok) differ, and neither says which produced
the paper's Table 1: ``neuralgrok-main`` is the `main` branch's ``neural_grok.py`` with the
per-task sizes that ``main_new.py``'s checkpoint names record; ``neuralgrok-src`` is the
`neuralgrad` branch's ``src/`` refactor.  ``grokfast`` is the Grokfast paper's (a·b) mod 97 table.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import PresetError

NG_REPO = "Blackzxy/NeuralOptGrok"  # sources name a file and the statement in it (line numbers move between commits)
MAIN, MAIN_NEW = f"{NG_REPO}@main neural_grok.py", f"{NG_REPO}@main main_new.py (commit 3c7501e)"
SRC = f"{NG_REPO}@neuralgrad src/"
NG_PAPER = "NeuralGrok paper (arXiv 2504.17243)"
GF_PAPER = "Grokfast paper (arXiv 2405.20233), Table 1 and its code"

# The paper tasks a preset may name, by their expression (``neuralgrok tasks``); mod-7 is the 4-layer task.
TASKS = ("a+b", "a-b", "a*b", "a*a-b", "a*c+b*d-e")


@dataclass(frozen=True)
class Setting:
    """One preset value and where it comes from."""

    value: object
    source: str


@dataclass(frozen=True)
class Preset:
    """A published setup: options for every run, per method, per task (and per task and method)."""

    name: str
    summary: str
    tasks: tuple[str, ...]
    common: dict[str, Setting]
    methods: dict[str, dict[str, Setting]]
    per_task: dict[str, dict[str, Setting]]
    per_task_method: dict[tuple[str, str], dict[str, Setting]]

    def options(self, task: str, method: str) -> dict[str, object]:
        """The run options for ``task`` (an expression from :data:`TASKS`) and ``method``, latest source winning."""
        merged = {**self.common, **self.methods.get(method, {}), **self.per_task.get(task, {}),
                  **self.per_task_method.get((task, method), {})}
        return {k: s.value for k, s in merged.items()}


def _s(value, source: str) -> Setting:
    return Setting(value, source)


_MOD7 = {"p": _s(7, NG_PAPER + " (Table 1)"), "n_layers": _s(4, NG_PAPER + " (4 layers on the mod-7 task)")}


def _ng_main_amp(hidden: tuple[int, ...], every: int, name: str) -> dict[str, Setting]:
    src = f"{MAIN_NEW}, main(): tl_eval checkpoint path {name}"
    return {"amp_hidden": _s(hidden, src), "meta_every": _s(every, src)}


NEURALGROK_MAIN = Preset(
    "neuralgrok-main",
    "NeuralGrok's main-branch code (neural_grok.py) with the per-task amplifier and T of its checkpoint names",
    TASKS,
    common={
        "layout": _s("postfix", f"{MAIN} data classes: operands, operator tokens, '=' (a b op =)"),
        "optimizer": _s("adam", f"{MAIN} --optimizer Adam (torch.optim.Adam: L2 decay)"),
        "lr": _s(1e-3, f"{MAIN} --lr"), "beta1": _s(0.9, f"{MAIN} --beta1"), "beta2": _s(0.98, f"{MAIN} --beta2"),
        "batch_size": _s(512, f"{MAIN} --batch_size"),
        "weight_decay": _s(1e-3, f"{MAIN_NEW} checkpoint names (wd0.001) and {NG_PAPER} (1e-3 for every method)"),
        "train_frac": _s(0.5, f"{MAIN} random_split 50% train"),
    },
    methods={
        "neuralgrok": {
            "meta_order": _s("after", f"{MAIN}, main(): the outer loop runs after optimizer.step() on copy.deepcopy(model), same batch"),
            "meta_weight_decay": _s(1e-3, f"{MAIN} meta_optimizer weight_decay=args.weight_decay"),
            "meta_lr": _s(1e-4, f"{MAIN} meta_optimizer lr 1e-4"),
            "lookahead": _s("sgd", f"{MAIN} w - args.lr * neural_grad(grad)"),
            "inner_outer_ratio": _s(49.0, f"{MAIN} train 0.49 / valid 0.01 of the table"),
            "clip_grad": _s(1.0, f"{MAIN} clip_grad_norm_(max_norm=1.0)"),
            "amp_c": _s(1.0, f"{MAIN_NEW} NeuralGrad self.c = 1/1"),
            "amp_softmax": _s("tensor", f"{MAIN} NeuralGrad nn.Softmax(dim=0) over a tensor's (entries, 1) outputs"),
        },
        "grokfast_ma": {"ma_window": _s(100, f"{MAIN} --window_size default"),
                        "ma_lamb": _s(2.0, f"{MAIN} --lamb default (the paper does not give its filters' settings)")},
        "grokfast_ema": {"ema_alpha": _s(0.99, f"{MAIN} --alpha default"),
                         "ema_lamb": _s(2.0, f"{MAIN} --lamb default")},
    },
    per_task={"a*c+b*d-e": _MOD7},
    per_task_method={
        ("a+b", "neuralgrok"): _ng_main_amp((128, 128), 3, "3NeuralLayers_4Alpha_3InnerLoop"),
        ("a-b", "neuralgrok"): _ng_main_amp((576,), 3, "2NeuralLayers_18Alpha_3InnerLoop"),
        # the checkpoint names a class with a second width (10Alpha_6Beta) that the file no longer defines; its
        # NeuralGrad class at alpha 10 is used (one hidden layer of 320)
        ("a*b", "neuralgrok"): _ng_main_amp((320,), 3, "2NeuralLayers_10Alpha_6Beta_3InnerLoop (beta class not "
                                                      "reproduced: NeuralGrad at alpha 10)"),
        ("a*a-b", "neuralgrok"): _ng_main_amp((256,), 4, "2NeuralLayers_8Alpha_4InnerLoop"),
        ("a*c+b*d-e", "neuralgrok"): _ng_main_amp((1152,), 2, "2NeuralLayers_36Alpha_2InnerLoop"),
    },
)

NEURALGROK_SRC = Preset(
    "neuralgrok-src",
    "NeuralGrok's neuralgrad-branch refactor (src/run.py, src/train.py, src/model.py), its defaults for every task",
    TASKS,
    common={
        "layout": _s("infix", f"{SRC}dataset.py: a op b = (vocabulary p + 2)"),
        "optimizer": _s("adam", f"{SRC}run.py --optimizer Adam"),
        "lr": _s(1e-3, f"{SRC}run.py --lr"), "beta1": _s(0.9, f"{SRC}run.py --beta1"),
        "beta2": _s(0.98, f"{SRC}run.py --beta2"), "batch_size": _s(512, f"{SRC}dataset.py batch_size"),
        "weight_decay": _s(1e-3, f"{SRC}run.py --weight_decay default"),
        "train_frac": _s(0.5, f"{SRC}run.py p_train=0.5"),
    },
    methods={
        "neuralgrok": {
            "amp_hidden": _s((64, 128, 64), f"{SRC}run.py --neural_hidden_dims default (every task, task1.sh)"),
            "meta_every": _s(2, f"{SRC}run.py --inner_loop_steps default"),
            "meta_order": _s("after", f"{SRC}train.py: amp_update after optimizer.step() on a deep copy"),
            "meta_weight_decay": _s(1e-3, f"{SRC}train.py meta_optimizer weight_decay=args.weight_decay"),
            "meta_lr": _s(1e-4, f"{SRC}train.py meta_optimizer lr 1e-4"),
            "lookahead": _s("sgd", f"{SRC}train.py trans_module_weights: w - args.lr * amp(grad)"),
            "inner_outer_ratio": _s(49.0, f"{SRC}run.py p_outer=0.01"),
            "clip_grad": _s(1.0, f"{SRC}train.py clip_grad_norm_(max_norm=1.0)"),
            "amp_c": _s(1.0, f"{SRC}model.py c_norm=1.0"),
            "amp_softmax": _s("entry", f"{SRC}model.py nn.Softmax(dim=-1) over an output of size 1: p = 1"),
        },
    },
    per_task={"a*c+b*d-e": _MOD7},
    per_task_method={},
)

GROKFAST = Preset(
    "grokfast",
    "Grokfast's (a*b) mod 97 table: the unfiltered baseline, Grokfast-MA and Grokfast-EMA",
    ("a*b",),
    common={
        "layout": _s("infix", f"{GF_PAPER}: a op b = (vocabulary p + 2)"),
        "optimizer": _s("adam", f"{GF_PAPER}: Adam, weight decay added to the gradient"),
        "lr": _s(1e-3, GF_PAPER), "beta1": _s(0.9, GF_PAPER), "beta2": _s(0.98, GF_PAPER),
        "batch_size": _s(512, GF_PAPER), "train_frac": _s(0.5, GF_PAPER),
        "weight_decay": _s(0.0, f"{GF_PAPER}: baseline without weight decay"),
    },
    methods={
        "grokfast_ma": {"weight_decay": _s(0.01, GF_PAPER), "ma_window": _s(100, GF_PAPER),
                        "ma_lamb": _s(5.0, GF_PAPER)},
        "grokfast_ema": {"weight_decay": _s(0.005, GF_PAPER), "ema_alpha": _s(0.98, GF_PAPER),
                         "ema_lamb": _s(2.0, GF_PAPER)},
    },
    per_task={},
    per_task_method={},
)

PRESETS: dict[str, Preset] = {p.name: p for p in (NEURALGROK_MAIN, NEURALGROK_SRC, GROKFAST)}
PAPERS = ("", *PRESETS)  # --paper choices ("": none)


def preset_options(paper: str, task: str, method: str) -> dict[str, object]:
    """The options ``--paper`` sets for ``task`` (a paper-task name or expression) and ``method``; {} without one.

    A ``--p`` given with the preset keeps the preset's other settings (a small stand-in of a paper's setup)."""
    if not paper:
        return {}
    if paper not in PRESETS:
        raise PresetError(f"unknown --paper {paper!r}; choose one of {', '.join(PRESETS)}")
    from .tasks import PAPER_TASKS
    expr = PAPER_TASKS[task][0] if task in PAPER_TASKS else task.replace(" ", "")
    preset = PRESETS[paper]
    if expr not in preset.tasks:
        tasks = ", ".join(f"({t}) mod {next(dp for e, dp, _ in PAPER_TASKS.values() if e == t)}" for t in preset.tasks)
        raise PresetError(f"--paper {paper} has settings for the tasks {tasks}; got --task {task!r}")
    return preset.options(expr, method)


def describe(paper: str | None = None) -> str:
    """The presets as Markdown tables: every option a preset sets, per task and method, with its source."""
    lines = []
    for preset in (PRESETS[paper],) if paper else PRESETS.values():
        lines += [f"#### `--paper {preset.name}`: {preset.summary}", "", "| applies to | option | value | source |",
                  "|---|---|---|---|"]
        scopes = [("every run", preset.common)] + [(f"--method {m}", v) for m, v in preset.methods.items()]
        scopes += [(f"({t})", v) for t, v in preset.per_task.items()]
        scopes += [(f"({t}), --method {m}", v) for (t, m), v in preset.per_task_method.items()]
        for scope, settings in scopes:
            for key, s in settings.items():
                value = ",".join(map(str, s.value)) if isinstance(s.value, tuple) else s.value
                lines.append(f"| {scope} | `--{key.replace('_', '-')}` | {value} | {s.source} |")
        lines.append("")
    return "\n".join(lines)
