"""Recorded commands and paths are relative to where they were run from: a grid's commands.txt, a reuse's records."""
import json
import os

from neuralgrok.portable import relative, relative_words
from test_grid import STOPS, _grid  # a one-cell grid that stops at its first evaluation with a correct answer


def test_paths_inside_the_directory_become_relative_and_others_stay(tmp_path):
    here = str(tmp_path)
    assert relative(f"{here}/experiments/results/x", here) == os.path.join("experiments", "results", "x")
    assert relative(here, here) == "."
    assert relative(f"{here}-other/x", here) == f"{here}-other/x"  # a sibling sharing the prefix is outside
    assert relative("/elsewhere/x", here) == "/elsewhere/x"
    assert relative("already/relative", here) == "already/relative"
    words = ["python", "-m", "neuralgrok", f"{here}/a.toml", f"--out={here}/out", "--only", "seed=0", "/etc/x"]
    assert relative_words(words, here) == ["python", "-m", "neuralgrok", "a.toml", "--out=out", "--only", "seed=0",
                                           "/etc/x"]


def test_a_grid_records_its_commands_relative_to_where_it_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _grid(tmp_path, STOPS, "src") == 0  # given absolute paths inside the working directory
    header, command = (tmp_path / "src" / "commands.txt").read_text().splitlines()
    assert header.split(": ", 1)[1] == "neuralgrok grid src.toml --out src"
    assert command.endswith("python -m neuralgrok train --quiet --config src/configs/add-standard-s0.yaml "
                            "--out src/runs/add-standard-s0")
    assert str(tmp_path) not in (tmp_path / "src" / "commands.txt").read_text()


def test_a_reused_run_records_its_source_relative_to_where_the_grid_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _grid(tmp_path, STOPS, "src") == 0
    assert _grid(tmp_path, STOPS.replace("max_steps = 40", "max_steps = 60"), "dst", "--reuse", str(tmp_path / "src")) == 0
    source = os.path.join("src", "runs", "add-standard-s0")
    assert json.loads((tmp_path / "dst" / "runs" / "add-standard-s0" / "reused_from.json").read_text())["run"] == source
    assert (tmp_path / "dst" / "logs" / "add-standard-s0.log").read_text().startswith(f"reused {source}: ")
