"""The training loop: one Accelerate loop for every method, writing the run folder."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.func import functional_call

from . import metrics
from .config import RunConfig, to_json
from .data import BatchStream, TaskData, load_task_data
from .methods import build_transform
from .model import ModelConfig, Transformer, answer_logits
from .optim import InnerOptimizer, warmup_schedule
from .runfolder import MetricsLog, summarize, write_atomic, write_json

EVAL_CHUNK = 4096


class Trainer:
    """Trains the base model with ``cfg.method`` and writes ``config.json``, ``metrics.jsonl``, ``summary.json``."""

    def __init__(self, cfg: RunConfig, out: str | Path, quiet: bool = False, accelerator: Accelerator | None = None):
        self.cfg, self.out, self.quiet = cfg, Path(out), quiet
        self.acc = accelerator or Accelerator()
        torch.manual_seed(cfg.seed)
        self.data: TaskData = load_task_data(cfg.task, cfg.p, cfg.operand_range, cfg.layout, cfg.train_frac,
                                             cfg.inner_outer_ratio, cfg.seed)
        model = Transformer(ModelConfig(self.data.vocab_size, self.data.seq_len, cfg.n_layers, cfg.d_model,
                                        cfg.n_heads, cfg.dropout))
        self.inner_opt = InnerOptimizer(model.parameters(), cfg.optimizer, cfg.lr, (cfg.beta1, cfg.beta2), cfg.eps,
                                        cfg.weight_decay)
        self.schedule = warmup_schedule(self.inner_opt, cfg.warmup_steps)
        self.transform = build_transform(cfg)
        self.meta = getattr(self.transform, "meta_step", None) is not None and not cfg.freeze_amplifier
        self.model, self.opt = self.acc.prepare(model, self.inner_opt)
        self.params = [p for p in self.model.parameters()]
        rank, world = self.acc.process_index, self.acc.num_processes
        train_rows = self.data.splits.inner if cfg.method == "neuralgrok" else self.data.splits.train
        self.stream = BatchStream(train_rows, cfg.batch_size, cfg.seed, rank, world)
        outer = self.data.splits.outer
        self.outer_stream = BatchStream(outer, cfg.outer_batch or len(outer), cfg.seed + 1, rank, world)
        self.step = 0
        self.good_evals = 0  # consecutive evaluations at or above stop_acc

    # -- one step ---------------------------------------------------------------
    def _batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.x[rows].to(self.acc.device), self.data.y[rows].to(self.acc.device)

    def train_step(self, log: bool) -> dict:
        """One inner step (and the meta step when due). With ``log``, returns gradient metrics."""
        cfg, out = self.cfg, {}
        self.model.train()
        x, y = self._batch(self.stream.next())
        loss = F.cross_entropy(answer_logits(self.model, x).float(), y)
        self.acc.backward(loss)
        raw = [p.grad for p in self.params]
        if log:
            out.update(age_raw=metrics.age(raw), age_raw_scaled=metrics.age_scaled(raw))
        if self.meta and self.step % cfg.meta_every == 0:
            grads, stats = self.transform.meta_step(raw, lambda g: self.inner_opt.lookahead(g, cfg.lookahead),
                                                    self._outer_loss, self._mean_over_processes, with_stats=log)
            out.update(stats)
        elif log and hasattr(self.transform, "apply"):
            grads, stats = self.transform.apply(raw, with_stats=True)
            out.update(stats)
        else:
            grads = self.transform(raw)
        for p, g in zip(self.params, grads):
            p.grad = g
        if cfg.clip_grad > 0:
            self.acc.clip_grad_norm_(self.params, cfg.clip_grad)
        if log:
            final = [p.grad for p in self.params]
            out.update(age=metrics.age(final), age_scaled=metrics.age_scaled(final))
        self.opt.step()
        self.schedule.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        out["loss"] = loss.item()
        return out

    def _outer_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        """Loss of the model with ``params`` substituted, on (a batch of) the outer slice."""
        model = self.acc.unwrap_model(self.model)
        names = [n for n, _ in model.named_parameters()]
        x, y = self._batch(self.outer_stream.next())
        logits = functional_call(model, dict(zip(names, params)), (x,))[:, -1]
        return F.cross_entropy(logits.float(), y)

    def _mean_over_processes(self, t: torch.Tensor) -> torch.Tensor:
        return self.acc.reduce(t, "mean") if self.acc.num_processes > 1 else t

    # -- evaluation -------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, rows: torch.Tensor) -> tuple[float, float]:
        """Mean loss and accuracy over ``rows`` (every row once, whatever the process count)."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.acc.device)
        correct = torch.zeros((), device=self.acc.device)
        share = rows.tensor_split(self.acc.num_processes)[self.acc.process_index]
        for chunk in share.split(EVAL_CHUNK):
            x, y = self._batch(chunk)
            logits = answer_logits(self.model, x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(-1) == y).sum()
        loss_sum, correct = self.acc.reduce(loss_sum, "sum"), self.acc.reduce(correct, "sum")
        return loss_sum.item() / len(rows), correct.item() / len(rows)

    def eval_row(self, grad_stats: dict, elapsed: float) -> dict:
        train_loss, train_acc = self.evaluate(self.data.splits.train)
        test_loss, test_acc = self.evaluate(self.data.splits.test)
        with torch.no_grad():
            weight_norm = torch.sqrt(sum((p.float() ** 2).sum() for p in self.params)).item()
        row = dict(step=self.step, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
                   weight_norm=weight_norm, elapsed_s=round(elapsed, 3), awe=metrics.awe(self.params))
        row.update({k: v for k, v in grad_stats.items() if k != "loss"})
        return row

    # -- the run ----------------------------------------------------------------
    def run(self) -> dict:
        cfg, main = self.cfg, self.acc.is_main_process
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out / "config.json", to_json(cfg) + "\n")
        log = MetricsLog(self.out / "metrics.jsonl")
        rows: list[dict] = []
        bar = self._progress_bar()
        start, stopped = time.perf_counter(), "max_steps"
        while self.step < cfg.max_steps:
            due = (self.step + 1) % cfg.eval_every == 0 or self.step + 1 == cfg.max_steps
            stats = self.train_step(log=due)
            if bar is not None:
                bar.update(1)
            if not due:
                continue
            row = self.eval_row(stats, time.perf_counter() - start)
            rows.append(row)
            if main:
                log.append(row)
            if bar is not None:
                bar.set_postfix(train=f"{row['train_acc']:.3f}", test=f"{row['test_acc']:.3f}", refresh=False)
            self.good_evals = self.good_evals + 1 if row["test_acc"] >= cfg.stop_acc else 0
            if self.good_evals >= cfg.stop_patience and not cfg.run_on:
                stopped = "target"
                break
        if bar is not None:
            bar.close()
        summary = summarize(rows, self.step, time.perf_counter() - start, stopped)
        if main:
            write_json(self.out / "summary.json", summary)
            if hasattr(self.transform, "save"):
                self.transform.save(self.out)
        return summary

    def _progress_bar(self):
        if self.quiet or not self.acc.is_main_process or not sys.stderr.isatty():
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.cfg.max_steps, desc=f"{self.cfg.method} {self.data.task.label}", unit="step",
                    dynamic_ncols=True)


def train(cfg: RunConfig, out: str | Path, quiet: bool = False) -> dict:
    """Runs one training run into ``out`` and returns its summary."""
    return Trainer(cfg, out, quiet).run()


def config_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)
