"""The training loop: one Accelerate loop for every method, writing the run folder."""
from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch.func import functional_call

from baselines import Context

from . import checkpoint, metrics
from .build import build_model, task_data
from .clock import RunClock
from .config import ConfigError, RunConfig, to_json
from .data import BatchStream, TaskData
from .distributed import describe, make_accelerator, sum_over_processes
from .evaluation import evaluate
from .losses import cross_entropy
from .methods import build_transform
from .model import answer_logits
from .optim import InnerOptimizer, warmup_schedule
from .runfolder import MetricsLog, code_version, host_description, metrics_file, summarize, write_atomic, write_json
from .runlock import FolderLock, FolderLocked
from .snapshots import save_snapshot, snapshot_schedule
from .tracking import Trackers, tracker_names



class NonFiniteError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


# Signals that stop a run at a checkpoint: a kill, Ctrl-C, and SIGUSR2, the warning a cluster
# scheduler sends before a time limit or preemption (Slurm's --signal, submitit's default).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR2") if hasattr(signal, name))


class Interrupted(Exception):
    """A stop signal (SIGTERM, SIGINT, SIGUSR2) arrived; the state was checkpointed."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint written")
        self.signum, self.step = signum, step


def _all_finite(tensors) -> bool:
    return bool(torch.stack(torch._foreach_norm([t for t in tensors])).isfinite().all())


class Trainer:
    """Trains the base model with ``cfg.method`` and writes ``config.json``, ``metrics.jsonl``, ``summary.json``."""

    def __init__(self, cfg: RunConfig, out: str | Path, quiet: bool = False, accelerator: Accelerator | None = None):
        self.cfg, self.out, self.quiet = cfg, Path(out), quiet
        self.acc = accelerator or make_accelerator(cfg.mixed_precision)
        if cfg.mixed_precision == "fp16" and not self.acc.native_amp:
            raise ConfigError(f"--mixed-precision fp16 needs a GPU: Accelerate does no fp16 autocast on "
                              f"{self.acc.device.type}; use bf16 there")
        world = self.acc.num_processes
        if cfg.batch_size % world:
            raise ConfigError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
        torch.manual_seed(cfg.seed)
        self.data: TaskData = task_data(cfg)
        model = build_model(cfg, self.data)
        self.inner_opt = InnerOptimizer(model.parameters(), cfg.optimizer, cfg.lr, (cfg.beta1, cfg.beta2), cfg.eps,
                                        cfg.weight_decay)
        self.schedule = warmup_schedule(self.inner_opt, cfg.warmup_steps)
        self.transform = build_transform(cfg)
        self.model, self.opt = self.acc.prepare(model, self.inner_opt)
        self.params = [p for p in self.model.parameters()]
        self.param_names = [n for n, _ in self.acc.unwrap_model(self.model).named_parameters()]
        self.transform.attach(world, tuple(self.param_names))
        self.stream, self.streams = self._streams()
        self.step = 0
        self.good_evals = 0  # consecutive evaluations at or above stop_acc
        self.bad_steps = 0  # consecutive steps skipped for a non-finite loss or gradient
        self.skipped_steps = 0  # all such steps
        self.seconds_before: tuple[float, float | None] = (0.0, 0.0)  # wall-clock, CPU seconds before a resume
        self.eval_seconds = 0.0  # wall-clock seconds spent in evaluations (eval_row), resumed runs included
        self._signal: int | None = None

    def _streams(self) -> tuple[BatchStream, dict[str, BatchStream]]:
        """The steps' batches, and the streams the method asks for (``GradientTransform.streams``).

        Held-out rows are the training split's outer slice (``--inner-outer-ratio``); the steps then
        use the rest. Each stream shuffles with its own seed, so it never changes the steps' data order.
        """
        cfg, splits = self.cfg, self.data.splits
        rank, world = self.acc.process_index, self.acc.num_processes
        wanted = self.transform.streams()
        train_rows = splits.inner if self.transform.uses_outer_slice else splits.train
        rows = {"held_out": splits.outer, "train": train_rows}
        unknown = sorted({s.rows for s in wanted.values()} - set(rows))
        if unknown:
            raise ConfigError(f"method {cfg.method} asks for rows {', '.join(unknown)}; a stream reads "
                              f"{' or '.join(rows)}")
        streams = {name: BatchStream(rows[s.rows], cfg.batch_size if s.batch is None else s.batch or len(rows[s.rows]),
                                     cfg.seed + s.seed, rank, world) for name, s in wanted.items()}
        return BatchStream(train_rows, cfg.batch_size, cfg.seed, rank, world), streams

    # -- state ------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything the next step depends on: a run restored from it continues identically."""
        return {"model": self.acc.unwrap_model(self.model).state_dict(), "inner_opt": self.inner_opt.state_dict(),
                "schedule": self.schedule.state_dict(), "transform": self.transform.state_dict(),
                "stream": self.stream.state_dict(), "streams": {k: v.state_dict() for k, v in self.streams.items()},
                "rng": torch.get_rng_state(), **checkpoint.setup(),  # a resume on another thread count or host warns
                "counters": {"step": self.step, "good_evals": self.good_evals, "bad_steps": self.bad_steps,
                             "skipped_steps": self.skipped_steps, "eval_seconds": self.eval_seconds}}

    def load_state_dict(self, state: dict, elapsed: float, cpu: float | None = None) -> None:
        state = checkpoint.upgrade(state)
        self.acc.unwrap_model(self.model).load_state_dict(state["model"])
        self.inner_opt.load_state_dict(state["inner_opt"])
        self.schedule.load_state_dict(state["schedule"])
        self.transform.load_state_dict(state["transform"])
        self.stream.load_state_dict(state["stream"])
        for name, stream in self.streams.items():
            stream.load_state_dict(state["streams"].get(name, {"consumed": 0}))
        torch.set_rng_state(state["rng"])
        c = state["counters"]
        self.step, self.good_evals, self.bad_steps, self.skipped_steps = (c["step"], c["good_evals"], c["bad_steps"],
                                                                          c["skipped_steps"])
        self.eval_seconds = c.get("eval_seconds", 0.0)  # absent from older checkpoints
        self.seconds_before = (elapsed, cpu)  # cpu None: unknown (a checkpoint older than its record)

    def save_checkpoint(self, clock: RunClock) -> None:
        if self.acc.is_main_process:
            checkpoint.save(self.out, self.step, {**self.state_dict(), "elapsed": clock.wall(), "cpu": clock.cpu()},
                            keep=self.cfg.keep_checkpoints)
        self.acc.wait_for_everyone()

    # -- one step ---------------------------------------------------------------
    def _batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.x[rows].to(self.acc.device), self.data.y[rows].to(self.acc.device)

    def train_step(self, log: bool) -> dict:
        """One inner step (and the meta step when due). With ``log``, returns gradient metrics.

        A step whose loss, gradient (before or after the transform) or meta loss is not
        finite changes no parameter, optimizer moment, filter state or amplifier weight:
        the transform's update is committed only for a step that is taken. The step still
        consumes its batch and its learning-rate step, and is counted.
        """
        cfg, out = self.cfg, {}
        self.model.train()
        x, y = self._batch(self.stream.next())
        loss = cross_entropy(answer_logits(self.model, x), y, cfg.loss)
        self.acc.backward(loss)
        self.acc.unscale_gradients()  # fp16: transforms, AGE and the finite check see true gradients
        raw = [p.grad for p in self.params]
        update = None
        if torch.isfinite(loss) and _all_finite(raw):
            if log:
                out.update(age_raw=metrics.age(raw), age_raw_scaled=metrics.age_scaled(raw))
                if cfg.age_per_tensor:
                    out["age_raw_tensors"] = metrics.age_per_tensor(raw, self.param_names)
            ctx = self._context(log, x, y)
            update = self.transform.update(raw, ctx)
            out.update(update.stats)
        if update is not None and update.ok and _all_finite(update.grads):
            update.commit()
            for p, g in zip(self.params, update.grads):
                p.grad = g
            if cfg.clip_grad > 0:
                self.acc.clip_grad_norm_(self.params, cfg.clip_grad)
            if log:
                final = [p.grad for p in self.params]
                out.update(age=metrics.age(final), age_scaled=metrics.age_scaled(final))
                if cfg.age_per_tensor:
                    out["age_tensors"] = metrics.age_per_tensor(final, self.param_names)
            self.opt.step()
            if cfg.weight_norm > 0:
                self._project_weights(cfg.weight_norm)
            after = self.transform.after_step(ctx)  # at the new parameters (a meta step after the model's)
            if after.ok:
                after.commit()
            self.bad_steps = 0
        else:  # the transform's state change is not committed: the step leaves no trace but the counters
            self.bad_steps += 1
            self.skipped_steps += 1
            if self.acc.scaler is not None:  # fp16: let the loss scale back off, as a skipped scaler step would
                self.acc.scaler.update()
        self.schedule.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        out["loss"] = loss.item()
        if self.bad_steps >= cfg.max_bad_steps:
            raise NonFiniteError(f"{self.bad_steps} consecutive steps with a non-finite loss or gradient (last at "
                                 f"step {self.step}); stopped, the last good checkpoint is kept")
        return out

    @torch.no_grad()
    def _project_weights(self, radius: float) -> None:
        """Omnigrok's constant-norm training: rescales all parameters together to global L2 norm ``radius``."""
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self.params)))
        torch._foreach_mul_(self.params, radius / norm)

    def _context(self, log: bool, x: torch.Tensor, y: torch.Tensor) -> Context:
        """What a gradient method may use at this step, whose batch is (x, y)."""
        return Context(step=self.step, params=self.params, lookahead=self.inner_opt.lookahead,
                       unroll=self.inner_opt.unroll, loss=lambda name, params: self._loss_at(params, self.streams[name]),
                       batch_grads=lambda params: self._batch_grads(params, x, y),
                       reduce=self._sum_over_processes, log=log)

    def _batch_grads(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The gradient of the mean loss on (x, y) at ``params`` (constants), averaged over processes as the step's."""
        model = self.acc.unwrap_model(self.model)
        params = [p.detach().requires_grad_() for p in params]
        with self.acc.autocast():
            logits = functional_call(model, dict(zip(self.param_names, params)), (x,), {"answer_only": True})
        grads = torch.autograd.grad(cross_entropy(logits, y, self.cfg.loss), params)
        world = self.acc.num_processes
        return [self._sum_over_processes(g) / world for g in grads] if world > 1 else list(grads)

    def _loss_at(self, params: list[torch.Tensor], stream: BatchStream) -> torch.Tensor:
        """This process's part of the mean loss on the next batch of ``stream``, with ``params`` substituted.

        Each process holds a share of the batch and returns its summed loss over the whole
        batch's size, so the sum over processes is the mean over the batch.
        """
        model = self.acc.unwrap_model(self.model)
        names = [n for n, _ in model.named_parameters()]
        x, y = self._batch(stream.next())
        with self.acc.autocast():
            logits = functional_call(model, dict(zip(names, params)), (x,), {"answer_only": True})
        return cross_entropy(logits, y, self.cfg.loss, reduction="sum") / stream.batch_size

    def _sum_over_processes(self, t: torch.Tensor) -> torch.Tensor:
        return sum_over_processes(self.acc, t)

    # -- evaluation -------------------------------------------------------------
    def evaluate(self, rows: torch.Tensor, exact_from: float = 0.0) -> tuple[float, float, int]:
        """Mean loss, accuracy and the rows they cover over ``rows`` (evaluation.evaluate)."""
        return evaluate(self.model, self.acc, self.data.x, self.data.y, rows, self.cfg.loss, exact_from)

    def eval_row(self, grad_stats: dict, clock: RunClock) -> dict:
        """The metrics line at this step; its evaluation time is added to ``eval_seconds``."""
        start = time.perf_counter()
        cfg, splits = self.cfg, self.data.splits
        train_rows = splits.train[:cfg.train_eval_rows] if cfg.train_eval_rows else splits.train
        train_loss, train_acc, n_train = self.evaluate(train_rows)
        last = self.step >= cfg.max_steps  # the final accuracy is always exact
        exact_from = 0.0 if last or not cfg.eval_exact_from else min(cfg.eval_exact_from, cfg.stop_acc)
        test_loss, test_acc, n_test = self.evaluate(splits.test, exact_from)
        with torch.no_grad():
            weight_norm = torch.sqrt(sum((p.float() ** 2).sum() for p in self.params)).item()
        row = dict(step=self.step, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
                   train_rows=n_train, test_rows=n_test, weight_norm=weight_norm, **clock.fields(),
                   awe=metrics.awe(self.params), skipped_steps=self.skipped_steps)
        row.update({k: v for k, v in grad_stats.items() if k != "loss"})
        self.eval_seconds += time.perf_counter() - start
        return row

    # -- the run ----------------------------------------------------------------
    def _resume(self, log: MetricsLog) -> list[dict]:
        """Restores the newest intact checkpoint and the metrics logged up to it; [] when starting afresh."""
        found = checkpoint.load_latest(self.out)
        if found is None:
            logged = metrics_file(log.path)  # the plain log, or a compacted run's metrics.jsonl.xz
            if logged.exists() and logged.stat().st_size:
                print(f"neuralgrok: no usable checkpoint in {self.out}; starting again from step 0", file=sys.stderr)
            return log.truncate_to(0) if self.acc.is_main_process else []
        step, state = found
        self.load_state_dict(state, state["elapsed"], state.get("cpu"))  # "cpu": absent from older checkpoints
        rows = log.truncate_to(step) if self.acc.is_main_process else []
        self.acc.wait_for_everyone()
        checkpoint.warn_of_setup_change(state, self.out)
        if not self.quiet and self.acc.is_main_process:
            print(f"neuralgrok: resuming {self.out} from step {step}", file=sys.stderr)
        return rows

    def _on_signal(self, signum, frame) -> None:
        self._signal = signum

    def _lock(self) -> FolderLock | None:
        """The run folder's lock, taken by the main process before anything is written; FolderLocked if held.

        The other processes wait for the main process's attempt and raise the same error
        when it failed, so that no process of a distributed run touches a folder it does not own.
        """
        lock, error = None, ""
        if self.acc.is_main_process:
            try:
                lock = FolderLock(self.out).acquire()
            except FolderLocked as e:
                error = str(e)
        if self.acc.num_processes > 1:
            error = broadcast_object_list([error])[0]
        if error:
            raise FolderLocked(error if self.acc.is_main_process else f"the main process could not lock {error}")
        return lock

    def run(self, resume: bool = False) -> dict:
        """Trains until the target or ``max_steps``; with ``resume``, continues from the newest checkpoint."""
        cfg, main = self.cfg, self.acc.is_main_process
        lock = self._lock()
        previous, trackers = {}, None
        flushing = cfg.flush_denormal and torch.set_flush_denormal(True)  # False where the CPU cannot
        try:
            if main:
                write_atomic(self.out / "config.json", to_json(cfg) + "\n")
            log = MetricsLog(self.out / "metrics.jsonl")
            if main and not self.quiet:
                print(self.describe_setup(), file=sys.stderr)
            rows = self._resume(log) if resume else []
            if main and cfg.log_with != "none":
                trackers = Trackers(tracker_names(cfg.log_with), self.out, dataclasses.asdict(cfg))
            if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
                previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
            return self._loop(rows, log, main, trackers)
        finally:
            if trackers is not None:
                trackers.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if flushing:
                torch.set_flush_denormal(False)  # process-wide: leave the caller as found (off by default)
            if lock is not None:
                lock.release()

    def _loop(self, rows: list[dict], log: MetricsLog, main: bool, trackers: Trackers | None = None) -> dict:
        cfg = self.cfg
        bar = self._progress_bar()
        clock, stopped = RunClock(*self.seconds_before), "max_steps"
        done = self._target_reached()  # a resumed run may have met its target already
        snapshots = snapshot_schedule(cfg.snapshot_steps, cfg.max_steps)
        try:
            while self.step < cfg.max_steps and not done:
                due = (self.step + 1) % cfg.eval_every == 0 or self.step + 1 == cfg.max_steps
                stats = self.train_step(log=due)
                if bar is not None:
                    bar.update(1)
                if due:
                    row = self.eval_row(stats, clock)
                    rows.append(row)
                    if main:
                        log.append(row)
                        if trackers is not None:
                            trackers.log(row)
                    if bar is not None:
                        bar.set_postfix(train=f"{row['train_acc']:.3f}", test=f"{row['test_acc']:.3f}", refresh=False)
                    self.good_evals = self.good_evals + 1 if row["test_acc"] >= cfg.stop_acc else 0
                    self.transform.observe(row)
                    done = self._target_reached()
                if self.step in snapshots and main:
                    save_snapshot(self.out, self.step, self.acc.unwrap_model(self.model))
                if self._signal is not None:
                    self.save_checkpoint(clock)
                    raise Interrupted(self._signal, self.step)
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint(clock)
        except NonFiniteError:
            self._finish(rows, clock, "non_finite")
            raise
        finally:
            if bar is not None:
                bar.close()
        if done:
            stopped = "target"
        self.save_checkpoint(clock)
        return self._finish(rows, clock, stopped)

    def _target_reached(self) -> bool:
        return self.good_evals >= self.cfg.stop_patience and not self.cfg.run_on

    def _finish(self, rows: list[dict], clock: RunClock, stopped: str) -> dict:
        summary = summarize(rows, self.step, clock.wall(), stopped)
        cpu = clock.cpu()
        summary.update(cpu_seconds=None if cpu is None else round(cpu, 3),
                       eval_seconds=round(self.eval_seconds, 3), skipped_steps=self.skipped_steps,
                       processes=self.acc.num_processes,
                       threads=torch.get_num_threads(),  # the count changes float rounding, and so does the code
                       code=code_version(), host=host_description())
        if self.acc.is_main_process:
            write_json(self.out / "summary.json", summary)
            self.transform.save(self.out)
        return summary

    def describe_setup(self) -> str:
        return describe(self.acc)

    def _progress_bar(self):
        if self.quiet or not self.acc.is_main_process or not sys.stderr.isatty():
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.cfg.max_steps, desc=f"{self.cfg.method} {self.data.task.label}", unit="step",
                    dynamic_ncols=True)


def train(cfg: RunConfig, out: str | Path, quiet: bool = False, resume: bool = False) -> dict:
    """Runs one training run into ``out`` (continuing from its checkpoint with ``resume``); returns its summary."""
    return Trainer(cfg, out, quiet).run(resume)
