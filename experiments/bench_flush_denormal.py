"""A training step after softmax collapse, with and without flushing subnormal floats (--flush-denormal), side by side.

    python -m experiments.bench_flush_denormal RUN_DIR [--out DIR]

Late in a long run without weight decay the logits grow until float32 rounds the wrong classes' probabilities, and
the gradients that flow back from them, below its smallest normal number (1.2e-38); arithmetic on such subnormal
values is slow on x86 CPUs. This restores RUN_DIR's newest checkpoint (model and optimizer) and times training
steps on its batches with flushing off and on, in turn within each repetition, both from the same restored state.
(Only scaling a fresh model's output layer, which makes wrong predictions with subnormal probabilities, does not
slow a step: the slowness needs the collapsed run's tiny gradients everywhere.)
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from experiments.bench import report
from neuralgrok import checkpoint
from neuralgrok.config import build
from neuralgrok.trainer import Trainer

TINY = torch.finfo(torch.float32).tiny


def restored(run: Path) -> tuple[Trainer, int]:
    """A trainer in a scratch folder holding ``run``'s newest checkpoint, and that checkpoint's step."""
    found = checkpoint.load_latest(run)
    if found is None:
        raise SystemExit(f"bench_flush_denormal: no checkpoint in {run}")
    step, state = found
    cfg = build({k: v for k, v in json.loads((run / "config.json").read_text()).items()})
    with tempfile.TemporaryDirectory(prefix="bench-flush-") as tmp:
        trainer = Trainer(cfg, tmp, quiet=True)
    trainer.load_state_dict(state, state["elapsed"])
    return trainer, step


def bench(run: Path, reps: int, steps: int) -> dict:
    trainer, at = restored(run)
    model, opt = trainer.model, trainer.inner_opt
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [trainer._batch(trainer.stream.next()) for _ in range(steps)]
    with torch.no_grad():
        probs = model(batches[0][0])[:, -1].float().softmax(-1)
    share = ((probs > 0) & (probs < TINY)).float().mean().item()

    def train():
        model.load_state_dict(start_state)  # every timing from the checkpoint's weights
        for x, y in batches:
            F.cross_entropy(model(x)[:, -1], y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    times = {False: [], True: []}
    try:
        for rep in range(reps + 1):
            for flush in (False, True):
                torch.set_flush_denormal(flush)
                begin = time.perf_counter()
                train()
                if rep:  # the first repetition warms up
                    times[flush].append((time.perf_counter() - begin) / steps)
    finally:
        torch.set_flush_denormal(False)
    return {"run": str(run), "step": at, "subnormal_share": share,
            "off": statistics.median(times[False]), "on": statistics.median(times[True])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder with a checkpoint")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions, off and on interleaved")
    ap.add_argument("--steps", type=int, default=5, help="training steps timed together")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    args = ap.parse_args(argv)
    if not torch.set_flush_denormal(False):
        raise SystemExit("bench_flush_denormal: this CPU cannot flush subnormals (torch.set_flush_denormal)")
    torch.set_num_threads(args.threads)
    r = bench(args.run, args.reps, args.steps)
    lines = [f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
             f"median of {args.reps} interleaved repetitions of {args.steps} steps", "",
             "| run | step | subnormal probabilities | ms a step, flushing off | ms a step, on | off / on |",
             "|---|---|---|---|---|---|",
             f"| {r['run']} | {r['step']:,} | {100 * r['subnormal_share']:.1f}% | {1e3 * r['off']:.1f} | "
             f"{1e3 * r['on']:.1f} | {r['off'] / r['on']:.2f}× |"]
    report(lines, {"reps": args.reps, "steps": args.steps, "threads": args.threads, "result": r}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
