"""The `neuralgrok` command: train, tasks, report."""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from .config import ConfigError, RunConfig, build, is_tuple, load_file
from .tasks import TaskError

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
        if str(f.type) == "bool":
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_)
        else:
            g.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(), help=help_,
                           choices=f.metadata.get("choices"))


def default_out(cfg: RunConfig) -> Path:
    slug = re.sub(r"[^\w]+", "", cfg.task.replace("*", "x").replace("/", "div").replace("+", "p").replace("-", "m"))
    return Path("runs") / f"{cfg.label or cfg.method}-{slug}-p{cfg.p}-s{cfg.seed}"


def resolve_train_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(RunConfig) if hasattr(args, f.name)}
    from_file = load_file(args.config) if args.config else {}
    return build({**from_file, **given})


def cmd_train(args: argparse.Namespace) -> int:
    cfg = resolve_train_args(args)
    out = Path(args.out) if args.out else default_out(cfg)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"run folder {out} exists and is not empty; choose another --out")
    from .trainer import train
    summary = train(cfg, out, quiet=args.quiet)
    if not args.quiet:
        s95 = summary["steps_to_95"]
        print(f"{out}: {summary['steps']} steps, best test acc {summary['best_test_acc']:.4f}, "
              f"95% at step {s95 if s95 is not None else '(not reached)'}, {summary['wall_seconds']:.1f} s")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from .tasks import describe_paper_tasks
    print(describe_paper_tasks())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import PAPER_TABLE_1, build_report
    dirs = [Path(d) for d in args.runs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise ConfigError(f"not a run folder: {', '.join(missing)}")
    path = build_report(dirs, Path(args.out), paper_table=PAPER_TABLE_1 if args.paper else None)
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| task | method |")), None)
    if start is not None:  # the summary table on the terminal, the figures next to report.md
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        print("\n".join(lines[start:end]))
    print(f"wrote {path} and its figures")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuralgrok", description="Grokking experiments: NeuralGrok and its baselines.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model on a modular-arithmetic task",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--config", help="TOML or YAML file of options (flags override it)")
    t.add_argument("--out", help="run folder to write (default: runs/METHOD-TASK-pP-sSEED)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or final line")
    _add_config_flags(t)
    t.set_defaults(fn=cmd_train)
    sub.add_parser("tasks", help="list the paper tasks and how to write your own").set_defaults(fn=cmd_tasks)
    r = sub.add_parser("report", help="compare run folders: report.md, a table and figures")
    r.add_argument("runs", nargs="+", help="run folders")
    r.add_argument("--out", required=True, help="folder for report.md and the figures")
    r.add_argument("--paper", action=argparse.BooleanOptionalAction, default=True,
                   help="add the NeuralGrok paper's Table 1 steps beside ours (default: on)")
    r.set_defaults(fn=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, TaskError) as e:
        print(f"neuralgrok: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuralgrok: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
