"""The `neuralgrok` command: train, metatrain, tasks, presets, amplifiers, report, analyze, export, log, grid, rerun, reproduce."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from .config import ConfigError, RunConfig, build, differing_keys, field_type, from_json, is_tuple, load_file
from .errors import UserError
from .runfolder import task_slug
from .runlock import LOCK_NAME
from .tracking import LOG_WITH

GROUPS = {"task": "task and data", "model": "model", "optim": "optimisation", "method": "baseline methods",
          "neuralgrok": "NeuralGrok amplifier", "run": "run"}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field; defaults are suppressed so that given flags can be told apart."""
    groups = {k: parser.add_argument_group(v) for k, v in GROUPS.items()}
    for f in fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        shown = ",".join(map(str, default)) if is_tuple(f) else default
        help_ = f"{f.metadata['help']} (default: {'auto' if default is None else shown})"
        g = groups[f.metadata["group"]]
        if field_type(f) is bool:
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_)
        else:
            g.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(), help=help_,
                           choices=f.metadata.get("choices"))


def default_out(cfg: RunConfig) -> Path:
    return Path("runs") / f"{cfg.label or cfg.method}-{task_slug(cfg.task)}-p{cfg.p}-s{cfg.seed}"


def _given(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in fields(RunConfig) if hasattr(args, f.name)}


def resolve_train_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    from_file = load_file(args.config) if args.config else {}
    return build({**from_file, **_given(args)})


def _resume_or_refuse(cfg: RunConfig, out: Path, asked: bool) -> RunConfig | None:
    """The config to resume ``out`` with, or None for a fresh run; ConfigError when neither is allowed.

    A non-empty folder is resumed when ``--resume`` names it, or when the command's
    config equals the one saved there (re-running the same command); otherwise refused.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if not out.exists() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        if asked:
            raise ConfigError(f"nothing to resume in {out}: no such run folder")
        return None
    saved_path = out / "config.json"
    if not saved_path.is_file():
        raise ConfigError(f"run folder {out} exists and is not empty (and holds no config.json); choose another --out")
    try:
        saved = from_json(saved_path.read_text())
    except (ValueError, ConfigError) as e:
        raise ConfigError(f"cannot resume {out}: its config.json is unreadable ({str(e).splitlines()[0]})") from None
    differ = differing_keys(saved, cfg)
    if differ:
        hint = "" if asked else " (use another --out for a new run)"
        raise ConfigError(f"run folder {out} holds a run with other settings: {', '.join(differ)} differ{hint}")
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        out = Path(args.resume)
        if args.out and Path(args.out) != out:
            raise ConfigError("--resume DIR continues DIR; leave out --out or give the same folder")
        saved = out / "config.json"
        base = json.loads(saved.read_text()) if saved.is_file() else {}
        cfg = build({**base, **(load_file(args.config) if args.config else {}), **_given(args)})
    else:
        cfg = resolve_train_args(args)
        out = Path(args.out) if args.out else default_out(cfg)
    resume = _resume_or_refuse(cfg, out, bool(args.resume)) is not None
    from .portable import relative  # a grid's log keeps this line: a path any clone can use
    from .trainer import Interrupted, NonFiniteError, train
    try:
        summary = train(cfg, out, quiet=args.quiet, resume=resume)
    except Interrupted as e:
        print(f"neuralgrok: {e}; continue with: neuralgrok train --resume {relative(out)}", file=sys.stderr)
        return 128 + e.signum
    except NonFiniteError as e:
        print(f"neuralgrok: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        s95 = summary["steps_to_95"]
        print(f"{out}: {summary['steps']} steps, best test acc {summary['best_test_acc']:.4f}, "
              f"95% at step {s95 if s95 is not None else '(not reached)'}, {summary['wall_seconds']:.1f} s")
    return 0


def cmd_metatrain(args: argparse.Namespace) -> int:
    from .metatrain import metatrain
    base = resolve_train_args(args)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    out = metatrain(base, tasks, seeds, args.rounds, args.episode_steps, args.out, quiet=args.quiet)
    print(f"wrote {out / 'amplifier.safetensors'} after {args.rounds * len(tasks) * len(seeds)} episodes; "
          f"use it with --amplifier {out} --freeze-amplifier")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from .tasks import describe_paper_tasks
    print(describe_paper_tasks())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .aggregate import markdown_table
    from .report import PAPER_TABLE_1, build_report
    dirs = [Path(d) for d in args.runs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise ConfigError(f"not a run folder: {', '.join(missing)}")
    report = build_report(dirs, Path(args.out), paper_table=PAPER_TABLE_1 if args.paper else None)
    if report.rows:  # the summary table on the terminal, the figures next to report.md
        print(markdown_table(report.rows, report.columns))
    if report.tuned:
        print("\nAt the best weight decay:\n" + markdown_table(report.tuned, list(report.tuned[0])))
    print(f"wrote {report.path} and its figures")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from .tracking import replay
    for run in args.runs:
        print(f"{run}: {replay(run, args.to)} metrics lines sent to {args.to}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis import analyze_run
    from .figures import plot_analysis
    from .runfolder import write_json
    for run in map(Path, args.runs):
        if not (run / "config.json").is_file():
            raise ConfigError(f"not a run folder (no config.json): {run}")
        summary = analyze_run(run, args.share)
        out = Path(args.out) / run.name if args.out else run / "analysis"
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "analysis.json", summary)
        plot_analysis(summary, out / "analysis.png")
        print(f"{run}: {len(summary['steps'])} snapshots, key frequencies {summary['key_frequencies']}, "
              f"restricted loss {summary['restricted_loss'][-1]:.3g}, excluded loss {summary['excluded_loss'][-1]:.3g}"
              f" at step {summary['steps'][-1]}; wrote {out}/analysis.json and analysis.png")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .hub import export_run
    for folder in export_run(args.run, args.out):
        print(f"wrote {folder} (from_pretrained / push_to_hub ready)")
    saved = Path(args.run) / "config.json"
    if json.loads(saved.read_text()).get("amp_features", "g") != "g":
        print(f"the feature amplifier is not exported; share {Path(args.run) / 'amplifier.safetensors'} and its "
              f"amplifier.json (--amplifier accepts the run folder)")
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from .sweep.cli import main as grid_main
    return grid_main(args.args)


def cmd_compact(args: argparse.Namespace) -> int:
    from .compact import main as compact_main
    return compact_main(args.args)


def cmd_rerun(args: argparse.Namespace) -> int:
    from .sweep.rerun import main as rerun_main
    return rerun_main(args.args)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import main as reproduce_main
    return reproduce_main(args.args)


def cmd_claims(args: argparse.Namespace) -> int:
    from .claims_report import main as claims_main
    missing = [d for d in args.runs if not Path(d, "config.json").is_file()]
    if missing:
        raise ConfigError(f"not a run folder (no config.json): {', '.join(missing)}")
    return claims_main(args)


def cmd_amplifiers(args: argparse.Namespace) -> int:
    from .amplifier_files import describe_builtins
    print(describe_builtins())
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS, describe
    if args.name and args.name not in PRESETS:
        raise ConfigError(f"unknown preset {args.name!r}; choose one of {', '.join(PRESETS)}")
    print(describe(args.name))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("neuralgrok")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="neuralgrok", description="Grokking experiments: NeuralGrok and its baselines.")
    p.add_argument("--version", action="version", version=f"neuralgrok {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    _training_commands(sub)
    _reading_commands(sub)
    for name, summary, fn in (
            ("grid", "run a grid of runs from a TOML file, resumably (neuralgrok grid --help)", cmd_grid),
            ("rerun", "train committed runs again and compare their metrics (neuralgrok rerun --help)", cmd_rerun),
            ("compact", "compress finished runs' metrics and figures for committing (neuralgrok compact --help)",
             cmd_compact),
            ("reproduce", "run a published table on its paper's setup and print ours beside it "
                          "(neuralgrok reproduce --help)", cmd_reproduce)):
        tool = sub.add_parser(name, help=summary, add_help=False, prefix_chars="\0")  # its own parser reads the rest
        tool.add_argument("args", nargs=argparse.REMAINDER)
        tool.set_defaults(fn=fn)
    return p


def _training_commands(sub) -> None:
    """train and metatrain: every run option as a flag."""
    t = sub.add_parser("train", help="train a model on a modular-arithmetic task",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--config", help="TOML, YAML or JSON file of options (flags override it); a run folder's config.json re-runs that run")
    t.add_argument("--out", help="run folder to write (default: runs/METHOD-TASK-pP-sSEED); re-running the same "
                                 "command into it resumes from its last checkpoint")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last intact checkpoint, with "
                                                    "its saved config (flags may change only --max-steps and the "
                                                    "checkpoint options)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or final line")
    _add_config_flags(t)
    t.set_defaults(fn=cmd_train)
    m = sub.add_parser("metatrain", help="meta-train one amplifier over short runs on several tasks and seeds "
                                         "(then use it frozen on others)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m.add_argument("--tasks", required=True, help="comma-separated task formulas (the same --p for all); each "
                                                  "episode sets --task, --seed, --max-steps and --run-on itself")
    m.add_argument("--seeds", default="0", help="comma-separated seeds")
    m.add_argument("--rounds", type=int, default=1, help="passes over tasks x seeds")
    m.add_argument("--episode-steps", type=int, default=500, help="steps of each run")
    m.add_argument("--out", required=True, help="folder for episodes/, metatrain.json and the amplifier")
    m.add_argument("--config", help="TOML, YAML or JSON file of train options (flags override it)")
    m.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_flags(m)
    m.set_defaults(fn=cmd_metatrain, method="neuralgrok")


def _reading_commands(sub) -> None:
    """The commands that list what is there or read run folders: tasks, report, analyze, export, log, presets."""
    sub.add_parser("tasks", help="list the paper tasks and how to write your own").set_defaults(fn=cmd_tasks)
    r = sub.add_parser("report", help="compare run folders: report.md, a table and figures")
    r.add_argument("runs", nargs="+", help="run folders")
    r.add_argument("--out", required=True, help="folder for report.md and the figures")
    r.add_argument("--paper", action=argparse.BooleanOptionalAction, default=True,
                   help="add the NeuralGrok paper's Table 1 steps beside ours (default: on)")
    r.set_defaults(fn=cmd_report)
    an = sub.add_parser("analyze", help="Fourier analysis of a run's snapshots (--snapshot-steps): embedding "
                                        "spectrum, key frequencies, restricted and excluded loss, weight norm")
    an.add_argument("runs", nargs="+", help="run folders with snapshots")
    an.add_argument("--share", type=float, default=0.9, help="key frequencies: the fewest holding this share of "
                                                             "the last snapshot's embedding energy (default 0.9)")
    an.add_argument("--out", help="write OUT/RUN_NAME/ instead of RUN/analysis/")
    an.set_defaults(fn=cmd_analyze)
    ex = sub.add_parser("export", help="write a run's base model (and amplifier) as save_pretrained folders")
    ex.add_argument("run", help="run folder")
    ex.add_argument("--out", required=True, help="folder for model/ (and amplifier/)")
    ex.set_defaults(fn=cmd_export)
    lg = sub.add_parser("log", help="replay finished runs (config and metrics.jsonl) into an experiment tracker")
    lg.add_argument("runs", nargs="+", help="run folders")
    lg.add_argument("--to", required=True, choices=[t for t in LOG_WITH if t != "none"],
                    help="tracker (TensorBoard writes under RUN/tensorboard/)")
    lg.set_defaults(fn=cmd_log)
    sub.add_parser("amplifiers", help="the learnt amplifiers that ship with the package (--amplifier builtin:NAME), "
                                      "with their provenance").set_defaults(fn=cmd_amplifiers)
    cl = sub.add_parser("claims", help="test the grokking papers' claims on run folders: stability after 95%%, "
                                        "AGE's fall against the rise of accuracy, AGE as a predictor of steps")
    cl.add_argument("runs", nargs="+", help="run folders")
    cl.add_argument("--out", required=True, help="folder for claims.md, claims.json and the figures")
    cl.set_defaults(fn=cmd_claims)
    pr = sub.add_parser("presets", help="the published setups that --paper applies, every value with its source")
    pr.add_argument("name", nargs="?", help="one preset (default: all)")
    pr.set_defaults(fn=cmd_presets)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"neuralgrok: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuralgrok: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
