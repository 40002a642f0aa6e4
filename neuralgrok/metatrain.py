"""Meta-training an amplifier across runs: short NeuralGrok runs over tasks and seeds, the amplifier carried from each to the next.

    neuralgrok metatrain --tasks a+b,a-b --seeds 0,1,2 --rounds 2 --episode-steps 500 --out amps/pm \\
        --p 97 --meta-lr 1e-3
    neuralgrok train --task 'a*b' --seed 5 --method neuralgrok --amplifier amps/pm --freeze-amplifier

Each episode is an ordinary NeuralGrok run (``EPISODE/``, every train option applies) of
``--episode-steps`` steps with ``--run-on``, starting from the amplifier the previous episode
ended with; episodes go round the tasks × seeds ``--rounds`` times.  The amplifier's own
optimizer (Adam) starts afresh in each episode, as the weights alone are carried.  The
result, ``OUT/amplifier.safetensors`` and ``amplifier.json``, loads with ``--amplifier OUT``,
so it can be evaluated frozen on tasks and seeds it never saw, as learned optimisers are.
``OUT/metatrain.json`` lists the episodes with their final outer loss, test accuracy and
the amplifier's distance from uniform.  Finished episodes are kept when the command is
run again; an unfinished one is started again.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from .bilevel import AMPLIFIER_FILE, AMPLIFIER_META
from .config import ConfigError, RunConfig, validate
from .portable import relative
from .runfolder import read_metrics, task_slug, write_json

# statistics of the last metrics line that say how far the amplifier is from uniform
DISTANCE_KEYS = ("outer_loss", "amp_pn_std", "amp_pn_max", "amp_dev", "amp_gain_std", "amp_slow", "amp_decay")


def episodes(tasks: list[str], seeds: list[int], rounds: int) -> list[tuple[str, int]]:
    """The episode order: round after round over the tasks, each task over the seeds."""
    return [(task, seed) for _ in range(rounds) for task in tasks for seed in seeds]


def metatrain(base: RunConfig, tasks: list[str], seeds: list[int], rounds: int, episode_steps: int,
              out: str | Path, quiet: bool = True) -> Path:
    """Runs the episodes into ``out/episodes/`` and writes the final amplifier into ``out``; returns ``out``."""
    from .trainer import train
    if base.method != "neuralgrok" or base.freeze_amplifier:
        raise ConfigError("metatrain trains the amplifier of --method neuralgrok; leave out --freeze-amplifier")
    if not tasks or not seeds or rounds < 1 or episode_steps < 1:
        raise ConfigError("metatrain needs --tasks, --seeds, --rounds >= 1 and --episode-steps >= 1")
    out = Path(out)
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    amplifier, log = base.amplifier, []
    for i, (task, seed) in enumerate(episodes(tasks, seeds, rounds)):
        cfg = dataclasses.replace(base, task=task, seed=seed, max_steps=episode_steps, run_on=True,
                                  amplifier=amplifier, label=base.label or "metatrain")
        validate(cfg)
        folder = out / "episodes" / f"{i:03d}-{task_slug(task)}-s{seed}"
        if not (folder / "summary.json").exists():
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished episode starts again
            train(cfg, folder, quiet=quiet)
        last = read_metrics(folder / "metrics.jsonl")[0][-1]
        log.append({"episode": i, "task": task, "seed": seed, "folder": folder.name, "test_acc": last["test_acc"],
                    **{k: last[k] for k in DISTANCE_KEYS if k in last}})
        write_json(out / "metatrain.json", {"tasks": tasks, "seeds": seeds, "rounds": rounds,
                                            "episode_steps": episode_steps, "episodes": log})
        amplifier = relative(folder)  # the next episode's config.json records it: relative to here where inside
    for name in (AMPLIFIER_FILE, AMPLIFIER_META):
        shutil.copyfile(Path(amplifier) / name, out / name)
    return out
