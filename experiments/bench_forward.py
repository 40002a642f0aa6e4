"""The answer-only forward against the whole-sequence one: a training step and a test evaluation, side by side.

    python -m experiments.bench_forward --out experiments/results/bench/forward

Training reads only the logits at the last position ('='), so the last block need not
compute the other positions (``Transformer.forward(idx, answer_only=True)``). This times
both forwards on the tasks' real models and batches, in turn within each repetition: a
training step (forward, backward, the Adam step) on a batch of 512, and a forward over
the whole test split under ``torch.inference_mode`` in chunks of 4,096, as evaluation runs.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from experiments.bench import report
from neuralgrok.config import build
from neuralgrok.evaluation import EVAL_CHUNK
from neuralgrok.trainer import Trainer

TASKS = {"(a+b) mod 97, 2 layers": dict(task="a+b", p=97),
         "a·c+b·d−e mod 7, 4 layers": dict(task="a*c+b*d-e", p=7, n_layers=4)}
FORWARDS = {"whole sequence": lambda model, x: model(x)[:, -1],
            "answer only": lambda model, x: model(x, answer_only=True)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_task(options: dict, reps: int, steps: int) -> dict[str, dict[str, float]]:
    """Median seconds of a training step and of a test evaluation for each forward."""
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        t = Trainer(build({**options, "weight_decay": 1e-3}), tmp, quiet=True)
    model, opt = t.model, t.inner_opt
    x, y = t._batch(t.stream.next())
    test_x = t.data.x[t.data.splits.test]

    def train(forward):
        for _ in range(steps):
            F.cross_entropy(forward(model, x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    @torch.inference_mode()
    def evaluate(forward):
        for chunk in test_x.split(EVAL_CHUNK):
            forward(model, chunk).argmax(-1)

    times = {name: {"step": [], "eval": []} for name in FORWARDS}
    for rep in range(reps + 1):
        for name, forward in FORWARDS.items():
            step, ev = timed(lambda: train(forward)) / steps, timed(lambda: evaluate(forward))
            if rep:  # the first repetition warms up
                times[name]["step"].append(step)
                times[name]["eval"].append(ev)
    return {name: {k: statistics.median(v) for k, v in d.items()} for name, d in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions, forwards interleaved")
    ap.add_argument("--steps", type=int, default=5, help="training steps timed together")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {label: bench_task(options, args.reps, args.steps) for label, options in TASKS.items()}
    lines = [f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
             f"median of {args.reps} interleaved repetitions", "",
             "| model | forward | ms a training step | ms a test evaluation | step speed-up | evaluation speed-up |",
             "|---|---|---|---|---|---|"]
    for label, r in results.items():
        whole = r["whole sequence"]
        for name, m in r.items():
            lines.append(f"| {label} | {name} | {1e3 * m['step']:.1f} | {1e3 * m['eval']:.1f} | "
                         f"{whole['step'] / m['step']:.2f}× | {whole['eval'] / m['eval']:.2f}× |")
    report(lines, {"reps": args.reps, "steps": args.steps, "threads": args.threads, "seconds": results}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
