"""Issue 39's selections, by the rules its grid files fix, and the arms' grid written from them.

    python experiments/controls_select.py experiments/results/controls experiments/results/controls/tuning \
        [--write experiments/grids/controls/arms.toml]
    python experiments/controls_select.py experiments/results/controls experiments/results/controls/tuning_unseen \
        --set unseen [--write experiments/grids/controls/unseen.toml]

Reads the development runs of the tuned form (``grids/controls/dev_tuned_form.toml`` and its extension
``dev_tuned_form_ext.toml``) and the baselines' tuning runs (``grids/controls/tune_baselines.toml``) and prints, per
choice, every candidate with its seeds' steps to 95% and the one the rule picks:
- the tuned form: the (slow, decay) pair with the fewest steps to 95% on its one development run; ties go to the
  smaller decay, then the smaller slow coefficient; a run without 95% is not eligible;
- each baseline per task: the (learning rate, decay) setting with the most seeds at 95%, then the fewest median
  steps over the seeds (a seed without 95% counted at its cap, slowest); ties go to the smaller rate, then the
  smaller decay.
A tuning grid may be run in two passes (``neuralgrok grid ... --max-steps 1500``, then on to its cap): a seed that
stopped at the lower cap without 95% is counted, for its setting's best case, as reaching 95% on the next step.  A
setting whose best case still loses to the best setting without such seeds (each of its seeds reached 95% or ran to
the grid's cap) cannot be the pick: it is listed as pruned.  Any other such setting must be taken on to the cap
first; ``--extensions`` prints the commands, most promising first: running the first free one, then asking again,
extends the fewest runs. ``--extensions --to N`` takes them on in stages (to N steps first): a run stopped at N
without 95% has its best case at N + 1, so a setting that reached 95% on every seed before N prunes it, and the pick
is the same as taking every run to the cap at once.  Runs stopped mid-way (a signal, a lost machine; no live process
holds their folder) come first, resumed from their checkpoints; runs a live process holds are left out and counted
("# K runs being extended", with ``--to`` only those of the stage).  It refuses (one line) while a grid's runs are
missing or unfinished, or while a pick waits on an extension.  ``--write`` writes the arms' grid: the learnt
coefficients, the tuned form and each baseline at its chosen setting; seeds 10-19 on the four mod-97 tasks, 10-14
with AdamW alone on the unseen ones.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from neuralgrok.aggregate import load_run
from neuralgrok.claims import steps_or_cap
from neuralgrok.runfolder import grid_runs
from neuralgrok.runlock import holder_of
from neuralgrok.sweep.grid import load

GRIDS = Path(__file__).parent / "grids" / "controls"

BASELINES = {"adamw": "AdamW", "orthograd": "⊥Grad", "grokfast_ma": "Grokfast-MA"}
DEV_RUNS = 35  # dev_tuned_form.toml and its extension dev_tuned_form_ext.toml: 5 slow x 7 decay values on one cell


@dataclass(frozen=True)
class StudySet:
    """One half of the study: its tasks (a run's ``task`` to the grid's task name), baselines, seeds, tuning size."""

    tasks: dict[str, str]
    baselines: tuple[str, ...]
    seeds: tuple[int, ...]
    tuning_runs: int
    grid: str
    tuning_grid: str

    @property
    def tuning_cap(self) -> int:
        """The tuning grid's step cap (a run given a lower one is a first pass that may need extending)."""
        return int(load(GRIDS / f"{self.tuning_grid}.toml")["defaults"]["max_steps"])


SETS = {
    "mod97": StudySet({"a+b": "add", "a-b": "sub", "a*b": "mul", "a*a-b": "square_sub"},
                      ("adamw", "orthograd", "grokfast_ma"), tuple(range(10, 20)), 312, "arms", "tune_baselines"),
    "unseen": StudySet({"a/b": "div", "a*a+a*b+b*b": "square_sum", "a*a*a+a*b": "cube_sum",
                        "s5_compose": "s5_compose", "s5_conjugate": "s5_conjugate"},
                       ("adamw",), tuple(range(10, 15)), 240, "unseen", "tune_unseen"),
}


@dataclass(frozen=True)
class Candidate:
    """One setting and its seeds' steps to 95% (a seed that missed it at its cap + 0.5).

    ``early`` names the seeds' runs that stopped without 95% at a cap below the tuning grid's (a first pass).
    """

    family: str
    task: str
    lr: float
    decay: float
    steps: tuple[float, ...]
    reached: int
    early: tuple[str | None, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.steps)

    @property
    def key(self) -> tuple:
        """The rule's order: the most seeds at 95%, the fewest median steps, the smaller rate, the smaller decay."""
        return -self.reached, self.median, self.lr, self.decay

    @property
    def best_case(self) -> tuple:
        """The key if every early-stopped seed reached 95% on the step after its stop (no later run can do better)."""
        early = [name is not None for name in self.early] or [False] * len(self.steps)
        steps = [s + 0.5 if e else s for s, e in zip(self.steps, early)]  # a miss is its stop + 0.5
        return -(self.reached + sum(early)), statistics.median(steps), self.lr, self.decay


def family(cfg: dict) -> str | None:
    """A tuning run's baseline: ``adamw``, ``orthograd``, ``grokfast_ma``, or None for other runs."""
    if cfg.get("method") == "standard" and cfg.get("optimizer") == "adamw":
        return "adamw"
    return cfg.get("method") if cfg.get("method") in ("orthograd", "grokfast_ma") else None


def finished_runs(folder: Path, expected: int, unfinished_ok: bool = False) -> list:
    """The folder's runs, all finished and at least ``expected`` of them; SystemExit naming the gap otherwise.

    With ``unfinished_ok``, runs still training (extensions under way elsewhere) are returned too. Runs the grid
    set aside (``NAME.incomplete``: started with other settings) are not the grid's and are left out.
    """
    runs = [load_run(d) for d in grid_runs(folder)]
    unfinished = [r.path.name for r in runs if not r.finished]
    if len(runs) < expected or (unfinished and not unfinished_ok):
        sys.exit(f"controls_select: {folder / 'runs'} has {len(runs) - len(unfinished)} finished runs of {expected}"
                 + (f" ({len(unfinished)} unfinished, e.g. {unfinished[0]})" if unfinished else "") + "; run its grid first")
    return runs


def tuned_form(runs) -> tuple[float, float, list[tuple[float, float, float]]]:
    """The (slow, decay) pair the rule picks from the development runs, and every (slow, decay, steps)."""
    rows = sorted((float(r.config["amp_init_slow"]), float(r.config["amp_init_decay"]), steps_or_cap(r), r)
                  for r in runs if "amp_init_slow" in r.config)
    eligible = [(steps, decay, slow) for slow, decay, steps, r in rows if r.summary.get("steps_to_95") is not None]
    if not eligible:
        sys.exit("controls_select: no tuned-form development run reached 95%; the rule has nothing to pick")
    _, decay, slow = min(eligible)
    return slow, decay, [(s, d, st) for s, d, st, _ in rows]


def setting(run) -> tuple[str, str, float, float] | None:
    """A tuning run's (baseline, task, learning rate, decay), or None for a run of another method."""
    fam = family(run.config)
    if fam is None:
        return None
    return fam, run.config["task"], float(run.config["lr"]), float(run.config.get("weight_decay", 0.0))


def candidates(runs, cap: float = float("inf")) -> list[Candidate]:
    """Every (baseline, task, learning rate, decay) setting with its seeds' steps, in a stable order.

    A run that stopped without 95% at a cap below ``cap`` (the tuning grid's) is marked early (by its name).
    """
    seeds = defaultdict(list)
    for r in runs:
        key = setting(r)
        if key is not None:
            reached = r.summary.get("steps_to_95") is not None
            capped = r.summary.get("stopped") == "max_steps" and float(r.config.get("max_steps", cap)) < cap
            early = r.path.name if capped and not reached else None
            seeds[key].append((r.config["seed"], steps_or_cap(r), reached, early))
    return [Candidate(*key, tuple(s for _, s, _, _ in sorted(v)), sum(ok for _, _, ok, _ in v),
                      tuple(e for *_, e in sorted(v))) for key, v in sorted(seeds.items())]


def best(cands: list[Candidate]) -> Candidate:
    """The rule: the most seeds at 95%, then the fewest median steps, then the smaller rate, then the smaller decay."""
    return min(cands, key=lambda c: c.key)


def settle(cands: list[Candidate]) -> tuple[dict[tuple[str, str], Candidate], set[Candidate], list[Candidate]]:
    """Per (baseline, task): the rule's pick, the settings pruned, and those that wait on an extension.

    Only settings without early-stopped seeds are known; a setting with early-stopped seeds is pruned
    when even its best case is behind the best known setting, and otherwise waits (then its group has no pick).
    The waiting come group by group, each group's best case first: extending them one at a time in this order and
    settling again after each lets a new leader prune the rest.
    """
    groups = defaultdict(list)
    for c in cands:
        groups[(c.family, c.task)].append(c)
    picks, pruned, waiting = {}, set(), []
    for key, group in sorted(groups.items()):
        known = [c for c in group if not any(c.early)]
        leader = best(known) if known else None
        behind = {c for c in group if any(c.early) and leader is not None and c.best_case > leader.key}
        pruned |= behind
        open_ = sorted((c for c in group if any(c.early) and c not in behind), key=lambda c: c.best_case)
        waiting += open_
        if not open_:
            picks[key] = leader
    return picks, pruned, waiting


def chosen(cands: list[Candidate]) -> dict[tuple[str, str], Candidate]:
    """The rule's pick per (baseline, task); SystemExit (one line) while a pick waits on an extension."""
    picks, _, waiting = settle(cands)
    refuse_while_waiting(waiting)
    return picks


def refuse_while_waiting(waiting: list[Candidate]) -> None:
    """SystemExit (one line) naming the waiting settings, if any."""
    if waiting:
        sys.exit(f"controls_select: {len(waiting)} settings stopped early could still be picked (e.g. "
                 f"{next(e for e in waiting[0].early if e)}); take them on to the cap: add --extensions for the commands")


def grid_command(grid: str, folder: Path, names: list[str], decay: float, max_steps: int | None) -> str:
    """The ``neuralgrok grid --only`` command that trains exactly the runs ``names`` (one setting's seeds)."""
    task, method = names[0].split("-")[:2]  # a cell is TASK-METHOD-wdVALUE-sSEED
    seeds = ",".join(n.rsplit("-s", 1)[1] for n in names)
    return (f"neuralgrok grid experiments/grids/controls/{grid}.toml --out {folder} --jobs 1 "
            f"--only task={task} method={method} wd={decay:g} seed={seeds}"
            + (f" --max-steps {max_steps}" if max_steps else ""))


def extension_commands(waiting: list[Candidate], grid: str, folder: Path, to: int | None = None) -> list[str]:
    """One command per waiting setting, taking its early-stopped seeds on to the cap, or with ``to`` (a stage) only
    those stopped below ``to`` on to ``to`` (settings with none are left out).

    In ``settle``'s order; running only the first that no other process holds, then asking again, extends fewest.
    """
    commands = []
    for c in waiting:
        names = [e for e, steps in zip(c.early, c.steps) if e and (to is None or steps - 0.5 < to)]
        if names:
            commands.append(grid_command(grid, folder, names, c.decay, to))
    return commands


def resume_commands(stalled: list, grid: str, folder: Path) -> list[str]:
    """One command per setting whose runs were stopped mid-way (no live process holds them): on to the step count
    they were started with, from their checkpoints."""
    groups = defaultdict(list)
    for r in stalled:
        groups[(setting(r), int(r.config["max_steps"]))].append(r.path.name)
    return [grid_command(grid, folder, sorted(names), key[3], steps) for (key, steps), names in sorted(groups.items())]


def task_options(study: StudySet) -> dict[str, dict]:
    """Each task's options in the tuning grid besides its task and modulus (its attention kernel): the arms keep them."""
    tasks = load(GRIDS / f"{study.tuning_grid}.toml")["tasks"]
    return {name: {k: v for k, v in table.items() if k not in ("task", "p")} for name, table in tasks.items()}


def arms_grid(study: StudySet, slow: float, decay: float, picks: dict[tuple[str, str], Candidate]) -> str:
    """The arms' grid as TOML text: every value in it comes from the selections above."""
    seeds = ", ".join(map(str, study.seeds))
    methods = ", ".join(f'"{m}"' for m in ("learnt", "tuned_form", *study.baselines))
    lines = [f"# Issue 39, the arms on fresh seeds {study.seeds[0]}-{study.seeds[-1]} (no earlier study used them), written by",
             "# experiments/controls_select.py from the development and tuning runs by the rules of their grids' headers.",
             "# Compared by experiments/controls_compare.py with the test of experiments/results/controls/README.md.",
             f"#   neuralgrok grid experiments/grids/controls/{study.grid}.toml --out experiments/results/controls/arms"
             " --jobs 1", "", "[grid]", f"tasks = [{', '.join(f'{n!r}' for n in study.tasks.values())}]".replace("'", '"'),
             f"methods = [{methods}]", f"seeds = [{seeds}]", "", "[defaults]", 'mixed_precision = "bf16"',
             "max_steps = 8000", "eval_every = 10", ""]
    extra = task_options(study)
    for task, name in study.tasks.items():
        lines += [f"[tasks.{name}]", f'task = "{task}"'] + ([] if task.startswith("s5_") else ["p = 97"])
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.get(name, {}).items()]
    coefficients = ['method = "neuralgrok"', "weight_decay = 1e-3", 'amp_features = "g,slow,theta"',
                    'amp_form = "coefficients"', 'amp_theta_ref = "init"', "freeze_amplifier = true"]
    lines += ["", "[methods.learnt]", 'label = "learnt coefficients (builtin:coefficients-add97) frozen"',
              *coefficients, 'amplifier = "builtin:coefficients-add97"',
              "[methods.tuned_form]", f'label = "tuned form slow {slow:g} decay {decay:g} for every tensor frozen"',
              *coefficients, "amp_decay_nonneg = true", f"amp_init_slow = {slow!r}", f"amp_init_decay = {decay!r}",
              "[methods.adamw]", 'method = "standard"', 'optimizer = "adamw"', 'label = "AdamW tuned per task"']
    if "orthograd" in study.baselines:
        lines += ["[methods.orthograd]", 'label = "orthograd tuned per task"',
                  "[methods.grokfast_ma]", 'label = "grokfast_ma w=100 lambda=5 tuned per task"', "ma_window = 100",
                  "ma_lamb = 5.0"]
    lines.append("")
    for (fam, task), c in picks.items():
        lines += [f'[cells."{study.tasks[task]}/{fam}"]  # {c.reached} seeds at 95%, median {c.median:g}',
                  f"lr = {c.lr!r}", f"weight_decay = {c.decay!r}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev", type=Path, help="the development grid's folder (dev_tuned_form.toml's --out)")
    ap.add_argument("tuning", type=Path, help="the tuning grid's folder (tune_baselines.toml's or tune_unseen.toml's)")
    ap.add_argument("--set", choices=sorted(SETS), default="mod97",
                    help="mod97: the four developed tasks (arms.toml); unseen: the tasks no decision saw (unseen.toml)")
    ap.add_argument("--write", type=Path, help="write the arms' grid here")
    ap.add_argument("--extensions", action="store_true",
                    help="print the commands that take the early-stopped runs that could still be picked to the cap, "
                         "best first (settings with a run still training are left out; a last line counts those runs)")
    ap.add_argument("--to", type=int, help="with --extensions: a stage, taking only the runs stopped below this "
                                           "many steps on to it (asking again after it prunes as the first pass does)")
    args = ap.parse_args(argv)
    study = SETS[args.set]
    if args.to is not None and not (args.extensions and 0 < args.to < study.tuning_cap):
        ap.error(f"--to needs --extensions and a stage between 0 and the tuning cap {study.tuning_cap}, got {args.to}")
    if args.extensions:  # the commands alone, one a line, and how many runs of this stage train elsewhere
        runs = finished_runs(args.tuning, study.tuning_runs, unfinished_ok=True)
        unfinished = [r for r in runs if not r.finished]  # their settings are left out until they finish
        staged = [r for r in unfinished if args.to is None or r.config["max_steps"] <= args.to]
        held = [r for r in staged if holder_of(r.path)]  # another process is training them
        _, _, waiting = settle([c for c in candidates([r for r in runs if r.finished], study.tuning_cap)
                                if (c.family, c.task, c.lr, c.decay) not in {setting(r) for r in unfinished}])
        print("\n".join(resume_commands([r for r in staged if r not in held], study.tuning_grid, args.tuning)
                        + extension_commands(waiting, study.tuning_grid, args.tuning, args.to)
                        + [f"# {len(held)} runs being extended"] * bool(held)))
        return
    cands = candidates(finished_runs(args.tuning, study.tuning_runs), study.tuning_cap)
    picks, pruned, waiting = settle(cands)
    slow, decay, rows = tuned_form(finished_runs(args.dev, DEV_RUNS))
    print("| slow | decay | steps to 95% |\n|---|---|---|")
    print("\n".join(f"| {s:g} | {d:g} | {st:g} |" for s, d, st in rows))
    print(f"\ntuned form: slow {slow:g}, decay {decay:g}\n")
    print("| baseline | task | lr | decay | steps by seed | seeds at 95% | picked |\n|---|---|---|---|---|---|---|")
    for c in cands:
        mark = ("yes" if picks.get((c.family, c.task)) == c else "pruned: cannot be picked" if c in pruned
                else "waits on an extension" if c in waiting else "")
        steps = " / ".join(f"> {s - 0.5:g}" if e else f"{s:g}" for s, e in zip(c.steps, c.early))
        print(f"| {BASELINES[c.family]} | {c.task} | {c.lr:g} | {c.decay:g} | {steps} | {c.reached} | {mark} |")
    refuse_while_waiting(waiting)
    if args.write:
        args.write.write_text(arms_grid(study, slow, decay, picks))
        print(f"\nwrote {args.write}")


if __name__ == "__main__":
    main()
