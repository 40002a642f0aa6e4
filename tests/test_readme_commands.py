"""Every `neuralgrok` command in the README runs as printed: listings run, `--help` runs, a train or metatrain
command resolves to a valid configuration whose files exist, a grid or reproduction passes `--dry-run`, and a
command that reads run folders names ones that exist (committed, or written by an earlier README command)."""
import glob
import shlex
from pathlib import Path

import pytest

from neuralgrok.cli import main, parser, resolve_train_args

ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS = ("accelerate", "torchrun", "docker")  # they start `-m neuralgrok ARGS`; the ARGS are checked


def readme_commands() -> list[list[str]]:
    """The argument lists of every neuralgrok command in the README's code blocks, in order."""
    commands, block, inside = [], [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            if not inside:
                commands += _commands(block)
                block = []
            continue
        if inside:
            block.append(line)
    return commands


def _commands(lines: list[str]) -> list[list[str]]:
    joined = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # Python in a code block, not a shell line
            continue
        while words and "=" in words[0] and not words[0].startswith("-"):  # OMP_NUM_THREADS=1 neuralgrok ...
            words = words[1:]
        if words[:1] == ["neuralgrok"]:
            found.append(words[1:])
        elif words[:1] and words[0] in LAUNCHERS and "-m" in words and words[words.index("-m") + 1] == "neuralgrok":
            found.append(words[words.index("-m") + 2:])
    return found


COMMANDS = readme_commands()


def test_the_readme_has_the_commands_we_expect():
    names = [c[0] for c in COMMANDS if c]
    for command in ("train", "metatrain", "tasks", "presets", "amplifiers", "grid", "reproduce", "report", "log",
                    "export", "analyze"):
        assert command in names, command
    assert len(COMMANDS) > 25


def _produced(before: list[list[str]]) -> list[str]:
    """Folders that earlier README commands write (their --out)."""
    out = []
    for args in before:
        if "--out" in args:
            out.append(args[args.index("--out") + 1].rstrip("/"))
    return out


def _exists(path: str, produced: list[str]) -> bool:
    if any(path == p or path.startswith(p + "/") for p in produced):
        return True
    return bool(glob.glob(str(ROOT / path)))


@pytest.mark.parametrize("i", range(len(COMMANDS)), ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_runs_as_printed(i, tmp_path, monkeypatch, capsys):
    args, produced = COMMANDS[i], _produced(COMMANDS[:i])
    monkeypatch.chdir(ROOT)
    if args == ["--version"] or "--help" in args or args[0] in ("tasks", "presets", "amplifiers"):
        try:
            assert main(args) == 0
        except SystemExit as e:  # --help and --version exit through argparse
            assert e.code == 0
        return
    command = args[0]
    if command in ("train", "metatrain"):
        ns = parser().parse_args(args)
        if getattr(ns, "resume", None):
            assert _exists(ns.resume, produced), f"--resume {ns.resume}: no README command writes it"
            return
        cfg = resolve_train_args(ns)  # every flag known, every value valid (ConfigError otherwise)
        if cfg.amplifier and not cfg.amplifier.startswith("builtin:"):
            assert _exists(cfg.amplifier, produced), f"--amplifier {cfg.amplifier} does not exist"
    elif command == "grid":
        from neuralgrok.sweep.cli import main as grid_main
        assert grid_main([*args[1:], "--dry-run"]) == 0
    elif command == "reproduce":
        from neuralgrok.reproduce import main as reproduce_main
        monkeypatch.chdir(tmp_path)  # it writes OUT/grid.toml
        assert reproduce_main([*[a for a in args[1:] if a != "--dry-run"], "--dry-run"]) == 0
    else:  # commands that read run folders: the folders exist, and the command takes these options
        ns = parser().parse_args(args)
        for path in (getattr(ns, "runs", None) or [getattr(ns, "run", None)]):
            assert path is None or _exists(path, produced), f"{command}: {path} does not exist"
    capsys.readouterr()
