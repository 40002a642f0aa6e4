"""Step-cost benchmark: standard, Grokfast-EMA and NeuralGrok steps timed side by side, and the public algorithm's step.

    python experiments/bench.py                       # paper setup: (a*b) mod 97, 2 layers, width 128, batch 512
    python experiments/bench.py --reps 5 --sizes 128,128 1152 --peer-reps 2 --out experiments/results/bench

Every variant is a real ``Trainer.train_step`` (evaluation excluded), called in turn
within each repetition so that all variants see the same machine state.  For NeuralGrok
with meta step every T: the inner step (no meta step), the meta-step iteration (the
meta step plus the inner step that reuses its transformed gradient) and the amortised
step ``((T−1)·inner + meta)/T``.  The peer is a re-implementation of the public code's
step: the dense MLP applied tensor by tensor, a deep copy of the model whose batch
gradient is recomputed for the look-ahead, every forward over the whole sequence.  Peak
memory is the resident-set high-water mark of a fresh process over 2·T steps of one
variant, reset after start-up (``--memory``).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from neuralgrok.amplifier import AmplifierMLP
from neuralgrok.config import build
from neuralgrok.trainer import Trainer

PAPER = dict(task="a*b", p=97, weight_decay=1e-3)


def make_trainer(method: str, **extra) -> Trainer:
    cfg = build({**PAPER, "method": method, **extra})
    return Trainer(cfg, tempfile.mkdtemp(prefix="bench-"), quiet=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class PublicStyleStep:
    """The public algorithm's step: dense per-tensor amplifier, model copy, gradient recomputed for the look-ahead."""

    def __init__(self, hidden, every: int):
        self.t = make_trainer("standard", clip_grad=1.0)
        self.mlp = AmplifierMLP(hidden)
        self.meta_opt = torch.optim.Adam(self.mlp.parameters(), lr=1e-4, betas=(0.9, 0.98))
        self.every, self.calls = every, 0

    def _amplify(self, grads):
        out = []
        for g in grads:  # one tensor at a time, the network on every entry
            p = torch.softmax(self.mlp(g.reshape(-1, 1)).reshape(-1), 0)
            u = p * g.reshape(-1)
            out.append((u / u.norm()).reshape(g.shape))
        return out

    def __call__(self):
        t, model = self.t, self.t.model
        x, y = t._batch(t.stream.next())
        if self.calls % self.every == 0:
            shadow = copy.deepcopy(model)
            F.cross_entropy(shadow(x)[:, -1], y).backward()  # the public code's full-sequence forward
            grads = [p.grad.detach() for p in shadow.parameters()]
            new = self._amplify(grads)
            lr = t.inner_opt.param_groups[0]["lr"]
            names = [n for n, _ in shadow.named_parameters()]
            params = {n: p.detach() - lr * g for n, p, g in zip(names, shadow.parameters(), new)}
            xo, yo = t._batch(t.outer_stream.next())
            self.meta_opt.zero_grad()
            F.cross_entropy(functional_call(shadow, params, (xo,))[:, -1], yo).backward()
            self.meta_opt.step()
        loss = F.cross_entropy(model(x)[:, -1], y)
        loss.backward()
        with torch.no_grad():
            new = self._amplify([p.grad for p in model.parameters()])
        for p, g in zip(model.parameters(), new):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t.inner_opt.step()
        t.inner_opt.zero_grad(set_to_none=True)
        self.calls += 1


def bench_steps(sizes, every: int, reps: int, peer_reps: int, peer_sizes) -> dict:
    """Median seconds per step of every variant, interleaved."""
    variants = {"standard": make_trainer("standard"), "grokfast_ema": make_trainer("grokfast_ema")}
    ng = {s: make_trainer("neuralgrok", amp_hidden=s, meta_every=every) for s in sizes}
    times: dict[str, list[float]] = {}
    for _ in range(2):  # warm-up: allocator, first optimizer steps
        for t in [*variants.values(), *ng.values()]:
            for _ in range(every):
                t.train_step(log=False)
    for _ in range(reps):
        for name, t in variants.items():
            times.setdefault(name, []).append(timed(lambda: t.train_step(log=False)))
        for s, t in ng.items():
            for _ in range(every):
                meta = t.step % every == 0
                kind = "meta" if meta else "inner"
                times.setdefault(f"neuralgrok {label(s)} {kind}", []).append(timed(lambda: t.train_step(log=False)))
    result = {k: statistics.median(v) for k, v in times.items()}
    for s in sizes:
        inner = result.get(f"neuralgrok {label(s)} inner", result[f"neuralgrok {label(s)} meta"])
        result[f"neuralgrok {label(s)} amortised T={every}"] = ((every - 1) * inner
                                                               + result[f"neuralgrok {label(s)} meta"]) / every
    for s in peer_sizes:
        peer = PublicStyleStep(s, every)
        peer()  # warm-up (and the first meta step)
        samples = [sum(timed(peer) for _ in range(every)) / every for _ in range(peer_reps)]
        result[f"public algorithm {label(s)} amortised T={every}"] = statistics.median(samples)
    return result


def label(sizes) -> str:
    return "(" + ",".join(map(str, sizes)) + ")"


def peak_memory_mb(variant: str, every: int) -> tuple[float, float]:
    """(peak resident MB while training, its rise over the resident size before the first step) in a fresh process.

    The kernel's high-water mark is reset once the trainer is built (``clear_refs``), so
    the peak is that of the training steps, not of start-up.
    """
    (method,), extra = variant_args(variant, every)
    return peak_memory_of(method, extra, 2 * every)


def peak_memory_of(method: str, extra: dict, steps: int) -> tuple[float, float]:
    """(peak resident MB, its rise over the pre-step resident size) of ``steps`` steps of one setting, in a fresh process."""
    code = (f"from experiments.bench import make_trainer, _status_mb; t = make_trainer({method!r}, **{extra!r}); "
            f"before = _status_mb('VmRSS'); open('/proc/self/clear_refs', 'w').write('5'); "
            f"[t.train_step(log=False) for _ in range({steps})]; print(_status_mb('VmHWM'), before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    peak, before = map(float, out.stdout.split())
    return peak, peak - before


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def variant_args(variant: str, every: int):
    if variant.startswith("neuralgrok"):
        return ("neuralgrok",), {"amp_hidden": variant.split(":")[1], "meta_every": every}
    return (variant,), {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["32,32", "128,128", "512", "1152"], help="amplifier hidden sizes")
    ap.add_argument("--every", type=int, default=4, help="T: a meta step every T steps")
    ap.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    ap.add_argument("--peer-sizes", nargs="*", default=["128,128"], help="sizes for the public algorithm's step")
    ap.add_argument("--peer-reps", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory (one process per variant)")
    ap.add_argument("--out", type=Path, help="folder for bench.json and bench.md")
    args = ap.parse_args(argv)
    sizes = [tuple(int(x) for x in s.split(",")) for s in args.sizes]
    peer = [tuple(int(x) for x in s.split(",")) for s in args.peer_sizes]
    torch.manual_seed(0)
    res = bench_steps(sizes, args.every, args.reps, args.peer_reps, peer)
    base = res["standard"]
    lines = [f"# Step cost on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
             f"torch {torch.__version__}",
             "", f"Command: `python experiments/bench.py {' '.join(sys.argv[1:])}`", "",
             "| step | median ms | × standard |", "|---|---|---|"]
    lines += [f"| {k} | {v * 1e3:.1f} | {v / base:.2f} |" for k, v in res.items()]
    for s in peer:
        ours, theirs = res.get(f"neuralgrok {label(s)} amortised T={args.every}"), \
            res[f"public algorithm {label(s)} amortised T={args.every}"]
        if ours:
            lines.append(f"\nPublic algorithm {label(s)} / ours: {theirs / ours:.1f}× slower.")
    memory = {}
    if args.memory:
        for v in ["standard", *(f"neuralgrok:{','.join(map(str, s))}" for s in sizes)]:
            memory[v] = peak_memory_mb(v, args.every)
        std = memory["standard"]
        lines += ["", "| peak resident memory over 2·T steps | MB | × standard | rise over pre-step MB | × standard |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k} | {m[0]:.0f} | {m[0] / std[0]:.2f} | {m[1]:.0f} | {m[1] / std[1]:.2f} |"
                  for k, m in memory.items()]
    report(lines, {"seconds": res, "peak_mb": memory}, args.out)
    return 0


def report(lines: list[str], data: dict, out: Path | None) -> None:
    """Prints a benchmark's markdown and, with ``out``, writes it as bench.md beside bench.json."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(text + "\n")
        (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
