"""The training loop of `reformer run`: steps, periodic evaluation, records, checkpoints, resumption.

Data flows one way: config -> task (batches) -> model -> trainer -> records. Every training batch
and every forward's randomness is a pure function of (seed, step), and a checkpoint holds the
partial log window too, so a run resumed from a checkpoint continues exactly as it would have
(the same metrics lines), and metrics.jsonl is cut back to the checkpoint's step so no line is
lost or written twice. One process writes a run folder (its lock, run_folder.py). A loss or
gradient that stops being finite is caught at the step it happens (finite.py), never saved, and
stops the run naming the last finite checkpoint; resuming takes the newest intact, finite
checkpoint (writing, keeping and restoring checkpoints: checkpointer.py). SIGINT / SIGTERM finish
the current step, save a checkpoint and exit (code 130 / 143); a second Ctrl-C stops at once (one
line, code 130), abandoning a checkpoint being written (the previous one stays).

Evaluations: the periodic one (`valid_estimate`, or `valid` when it covers the whole split) decides
`best`, `trainer.keep_best` (checkpoints/best.pt) and `trainer.early_stop`; the final one, shown
with its own progress and counted in the ETA, is the run's `valid` number everywhere it is shown
(eval_plan.py, best.py).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import OmegaConf

from . import run_folder
from .best import improves, stop_reason
from .attention.per_layer import layer_attentions
from .attention.registry import spec_of
from .config import RunConfig
from .checkpointer import Checkpointer, TrainState
from .distributed import any_rank, init_world, shutdown, wrap_model
from .errors import Interrupted
from .eval_plan import ESTIMATE, SHORT_RUN_STEPS, covered, final_batches, periodic_split
from .evaluation import eval_seed_of, evaluate
from .finite import Diverged, FiniteWatch
from .loggers import NullLogger, RunIdentity, build_logger
from .model.reformer import build_model, count_parameters
from .naming import default_run_name  # noqa: F401  (also imported from here)
from .optimization import build_optimizer, lr_at, train_step
from .primitives.context import derive_seed
from .memory_estimate import keeps_freed_memory
from .progress import make_progress
from .records import MetricsLog, code_version, list_checkpoints, write_json_atomic, write_text_atomic
from .runtime import (
    device_name, keep_freed_cpu_memory, resolve_precision, seed_everything, select_device, small_model_threads,
)
from .tasks import task_spec
from .tasks.base import Batch
from .text import shown_path  # relative to the folder the command ran in, as the README shows it

log = logging.getLogger("reformer")


# ------------------------------------------------------------------------------------ stopping


class StopRequest:
    """SIGINT/SIGTERM set a flag the loop checks after each step; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        log.info("stop requested: finishing this step and saving a checkpoint (Ctrl-C again to stop now)")

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signal is not None


def check_attention_device(attention: Any, device: torch.device) -> None:
    """An attention the device cannot run (LSH's impl=fast without CUDA): one line before the
    model is built (the spec's `check_device`)."""
    spec_of(attention).check_device(attention, device)


# ------------------------------------------------------------------------------------ the loop


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, identity: RunIdentity | None = None):
        self.cfg, self.run_dir, self.t = cfg, Path(run_dir), cfg.trainer
        self.identity = identity or RunIdentity()
        self.world, device = init_world(self.t.device)
        self.rank, self.world_size, self.is_main = self.world.rank, self.world.size, self.world.is_main
        self.device = select_device(device)
        for attention in layer_attentions(cfg.model, cfg.attention):  # model.attn_layers: each layer's
            check_attention_device(attention, self.device)
        self.precision = resolve_precision(self.t.precision, self.device)
        seed_everything(cfg.seed, self.t.deterministic)
        self.spec = task_spec(cfg.task.name)
        self.task = self.spec.build(cfg.task, cfg.seed)
        self.task.check_data()
        if small_model_threads(self.device, self.t.batch_size * self.task.seq_len * cfg.model.d_model):
            log.info("one CPU thread: the fastest for a model this small (OMP_NUM_THREADS=N chooses)")
        if keeps_freed_memory(cfg):  # a run small against the host's memory (memory_estimate.py)
            keep_freed_cpu_memory(self.device)  # no page faults for each step's activations (runtime.py)
        self.model = build_model(cfg, self.task.vocab_size, self.task.seq_len).to(self.device)
        # DistributedDataParallel first, then torch.compile around it (PyTorch's recommended order)
        self.ddp = wrap_model(self.model, self.world, self.device)
        self.forward_model = torch.compile(self.ddp) if self.t.compile else self.ddp
        self.optimizer = build_optimizer(self.t, self.model)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.state = TrainState()
        self.run_name = cfg.run_name or self.identity.name or default_run_name(cfg)
        self.config_dict = OmegaConf.to_container(cfg, resolve=True)
        self.eval_batch_size = self.t.eval_batch_size or self.t.batch_size
        self.tokens_per_step = self.t.batch_size * self.t.grad_accum * self.task.seq_len * self.world_size
        # the log window: [loss_sum, weight_sum, correct_sum] since the last train line; saved in
        # checkpoints so a resumed run writes the same lines
        self.window = torch.zeros(3, dtype=torch.float64, device=self.device)
        self.watch = FiniteWatch(self.device)
        self.checkpoints = Checkpointer(self.run_dir, self.model, self.optimizer, self.t, self.config_dict,
                                        self.is_main)
        # what each evaluation covers (eval_plan.py): the periodic one's name and size, the final one's
        valid_total = self.task.eval_batch_count("valid", self.eval_batch_size)
        self.periodic_total = covered(self.t.eval_batches, valid_total)
        self.periodic_split = periodic_split(self.t.eval_batches, valid_total)
        self.final_max, self.final_capped = final_batches(self.t.final_eval_batches, self.t.max_steps)
        self.split_totals = {split: self.task.eval_batch_count(split, self.eval_batch_size) for split in self.t.final_splits}
        self.final_totals = {split: covered(self.final_max, total) for split, total in self.split_totals.items()}

    # --- state in and out

    def restore(self) -> None:
        """Continue from the checkpoint `resume` chooses (checkpointer.py), or start fresh; cut
        metrics.jsonl back to the step continued from."""
        restored = self.checkpoints.restore(self.cfg.resume, self.device)
        if restored is not None:
            self.state, window = restored
            if window:
                self.window = torch.tensor(window, dtype=torch.float64, device=self.device)
        if self.is_main:
            self.metrics.truncate_after(self.state.step)

    def save(self) -> Path | None:
        """Write a checkpoint, never with a non-finite value (Diverged instead)."""
        self.check_finite()
        return self.checkpoints.save(self.state, self.window)

    def save_best(self) -> None:
        """checkpoints/best.pt (trainer.keep_best), never with a non-finite value."""
        self.check_finite()
        self.checkpoints.save_best(self.state, self.window)

    def check_finite(self) -> None:
        """Diverged if any step so far had a non-finite loss or gradient norm (one device sync)."""
        bad = self.watch.first_bad_step()
        if bad is not None:
            raise self.checkpoints.diverged(bad, "the loss or the gradient norm became NaN or infinite")

    # --- steps

    def step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step over grad_accum micro-batches; returns (sums, grad_norm) on device."""
        lr = lr_at(step, self.t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        def micro_batches() -> Iterator[tuple[Batch, int]]:
            for micro in range(self.t.grad_accum):
                index = (step - 1) * self.t.grad_accum + micro
                batch = self.task.train_batch(index, self.t.batch_size, self.rank, self.world_size).to(self.device)
                # Each process draws its own dropout masks and LSH rotations (as trax draws per example).
                yield batch, derive_seed(self.cfg.seed, "forward", index, self.rank)

        return train_step(
            self.forward_model, self.model, self.optimizer, micro_batches(), grad_accum=self.t.grad_accum,
            grad_clip=self.t.grad_clip, device=self.device, precision=self.precision, world=self.world,
            no_sync=self.ddp.no_sync if self.world.distributed else None,
        )

    def evaluate(self, split: str, max_batches: int, on_batch: Any = None) -> dict[str, float]:
        return evaluate(
            self.model, self.task, split=split, batch_size=self.eval_batch_size, max_batches=max_batches,
            device=self.device, precision=self.precision, seed=eval_seed_of(self.cfg.attention), world=self.world,
            on_batch=on_batch,
        )

    def record(self, record: dict, logger: Any) -> None:
        """A metrics line to metrics.jsonl and the same metrics to the logger, under `<split>/`."""
        if not self.is_main:
            return
        self.metrics.append(record)
        split = record["split"]
        logger.log({f"{split}/{k}": v for k, v in record.items() if k not in ("step", "split", "final", "batches")},
                   record["step"])

    def run(self) -> dict:
        """Train, holding the run folder's lock (rank 0, the one process that writes it)."""
        with run_folder.hold(self.run_dir) if self.is_main else contextlib.nullcontext():
            if self.is_main:
                removed = run_folder.remove_orphaned_temps(self.run_dir)
                if removed:
                    log.info("removed %d temp file(s) that an interrupted write left in %s", len(removed), self.run_dir)
            return self._run()

    def _run(self) -> dict:
        self.restore()
        if self.is_main:
            write_text_atomic(self.run_dir / "config.yaml", OmegaConf.to_yaml(self.cfg, resolve=True))
        logger = (
            build_logger(self.cfg.logger, self.run_dir, self.config_dict, self.run_name, self.state.wandb_run_id,
                         self.identity)
            if self.is_main
            else NullLogger()
        )
        self.state.wandb_run_id = logger.run_id or self.state.wandb_run_id
        progress = make_progress(self.t.progress if self.is_main else "none", self.t.max_steps, self.run_name)
        stop = StopRequest()
        stop.install()
        exit_code = 0
        wall_start = time.perf_counter()
        wall_before = self.state.wall_seconds
        try:
            log.info(
                "%s: %s parameters on %s (%s), run folder %s",
                self.run_name, f"{count_parameters(self.model):,}", self.device, self.precision, self.run_dir,
            )
            progress.start(self.state.step)
            if self.loop(progress, logger, stop, wall_start, wall_before):
                exit_code = 128 + int(stop.signal)
                self.write_summary("interrupted", {}, wall_start, wall_before)
                progress.finish(
                    f"interrupted at step {self.state.step}; continue with the same command and resume=auto"
                    f" (hydra.run.dir={self.run_dir})"
                )
                raise SystemExit(exit_code)
            final = self.final_evaluation(progress, logger)
            status = "early_stopped" if self.early_stop_due() else "completed"
            summary = self.write_summary(status, final, wall_start, wall_before)
            progress.finish(done_line(summary, self.run_dir))
            return summary
        except Diverged:
            exit_code = Diverged.exit_code
            self.write_summary("diverged", {}, wall_start, wall_before)
            raise
        except KeyboardInterrupt:  # a second Ctrl-C
            exit_code = Interrupted.exit_code
            found = list_checkpoints(self.run_dir)
            kept = f"the last checkpoint is {found[-1][1]}" if found else "no checkpoint was written"
            raise Interrupted(
                f"stopped at once (a second Ctrl-C) at step {self.state.step}; {kept}: continue with the same"
                f" command and resume=auto (hydra.run.dir={self.run_dir})"
            ) from None
        except BaseException:
            exit_code = exit_code or 1
            raise
        finally:
            progress.stop()
            stop.restore()
            logger.finish(exit_code)
            shutdown(self.world)

    def loop(self, progress: Any, logger: Any, stop: StopRequest, wall_start: float, wall_before: float) -> bool:
        """Train until max_steps or a stop; returns True if stopped early. Each step's loss and
        gradient norm go to the finite watch (no sync); it is read at log, evaluation and checkpoint
        steps, so nothing is evaluated or saved from a model that stopped being finite."""
        t = self.t
        window_start, timed_steps = time.perf_counter(), 0  # this process's part of the log window
        self.model.train()
        stopped = False
        while self.state.step < t.max_steps and not stopped and not self.early_stop_due():
            step = self.state.step + 1
            step_start = time.perf_counter()
            sums, grad_norm = self.step(step)
            self.watch.observe(step, sums[0], grad_norm)
            self.window += sums
            timed_steps += 1
            self.state.step = step
            self.state.tokens += self.tokens_per_step
            if step % t.log_every == 0 or step == t.max_steps:
                loss_sum, weight_sum, correct_sum = self.window.tolist()  # one device sync per log line
                elapsed = time.perf_counter() - window_start
                self.state.train_seconds += time.perf_counter() - step_start
                metrics = self.task.metrics(loss_sum, weight_sum, correct_sum)
                record = {
                    "step": step, "split": "train", **metrics, "lr": lr_at(step, t),
                    "grad_norm": float(grad_norm), "tokens": self.state.tokens,
                    "tokens_per_s": self.tokens_per_step * timed_steps / max(elapsed, 1e-9),
                    "wall_s": wall_before + time.perf_counter() - wall_start,
                }
                self.record(record, logger)  # a non-finite value is written as null, flagged
                self.check_finite()
                progress.report(step, {"loss": metrics["loss"], self.task.metric: metrics.get(self.task.metric),
                                       "tokens/s": record["tokens_per_s"]})
                self.window.zero_()
                timed_steps, window_start = 0, time.perf_counter()
            else:
                self.state.train_seconds += time.perf_counter() - step_start
                progress.advance(step)
            if step % t.eval_every == 0 or step == t.max_steps:
                self.periodic_evaluation(step, progress, logger)
                window_start, timed_steps = time.perf_counter(), 0
            stopped = self.stop_requested(stop)
            if step % t.ckpt_every == 0 or step == t.max_steps or stopped or self.early_stop_due():
                self.state.wall_seconds = wall_before + time.perf_counter() - wall_start
                self.save()
        return stopped

    def stop_requested(self, stop: StopRequest) -> bool:
        """Whether to stop now. With several processes they agree (a stop on any one stops all at
        the same step), so the decision is the collective's answer, not the local flag."""
        if not self.world.distributed:
            return stop.requested
        agreed = any_rank(stop.requested, self.device, self.world)
        if agreed and stop.signal is None:
            stop.signal = signal.SIGTERM
        return agreed

    def periodic_evaluation(self, step: int, progress: Any, logger: Any) -> None:
        """Evaluate on `trainer.eval_batches` of valid; record it under its name (eval_plan.py), update
        the best (and best.pt), count towards early stopping, re-estimate the final evaluation's time."""
        self.check_finite()
        started = time.perf_counter()
        metrics = self.evaluate("valid", self.t.eval_batches)
        seconds = time.perf_counter() - started
        improved = self.update_best(metrics)
        split, batches = self.periodic_split, self.periodic_total
        self.record({"step": step, "split": split, **metrics, "batches": batches}, logger)
        what = f"valid estimate ({batches} batches)" if split == ESTIMATE else f"valid ({batches or 'all'} batches)"
        progress.message(f"step {step}: {what} " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if improved and self.t.keep_best:
            self.save_best()
        final = list(self.final_totals.values())
        if batches and all(n is not None for n in final):
            progress.set_tail(seconds / batches * sum(final))

    def update_best(self, metrics: dict[str, float]) -> bool:
        """Keep the best periodic evaluation in the task's metric direction (one kind only: a best of
        another kind, from a resumed run evaluated otherwise, is replaced); count the evaluations
        since the last improvement by early_stop.min_delta. True when this one is the new best."""
        key = self.task.metric
        value = metrics.get(key)
        kind = {"split": self.periodic_split, "batches": self.periodic_total}
        best = self.state.best
        same_kind = best.get("split", kind["split"]) == kind["split"] and best.get("batches", kind["batches"]) == kind["batches"]
        previous = best.get(key) if same_kind else None
        higher = self.spec.higher_is_better(key)
        if improves(higher, value, previous, self.t.early_stop.min_delta):
            self.state.evals_since_best = 0
        else:
            self.state.evals_since_best += 1
        if improves(higher, value, previous):
            self.state.best = {key: value, "step": self.state.step, **kind}
            return True
        return False

    def early_stop_due(self) -> bool:
        """Whether `trainer.early_stop.patience` evaluations in a row have not improved (never when 0)."""
        patience = self.t.early_stop.patience
        return bool(patience) and self.state.evals_since_best >= patience

    def final_evaluation(self, progress: Any, logger: Any) -> dict[str, dict[str, float]]:
        """Evaluate `trainer.final_splits` with visible progress; each split's numbers go to
        metrics.jsonl (`"final": true`), the logger's history and its run summary (`final/<split>/...`)."""
        final = {}
        capped = {s: n for s, n in self.split_totals.items() if self.final_capped and (n is None or n > self.final_max)}
        if capped:
            sizes = ", ".join(f"{'?' if n is None else n} in {split}" for split, n in capped.items())
            progress.message(
                f"final evaluation: {self.final_max} batches per split (of {sizes}): a short run (trainer.max_steps"
                f" <= {SHORT_RUN_STEPS}) caps it; trainer.final_eval_batches=0 evaluates the whole split"
            )
        for split in self.t.final_splits:
            total = self.final_totals[split]
            count = progress.evaluation(f"final evaluation on {split}", total)
            final[split] = self.evaluate(split, self.final_max, on_batch=count.advance)
            count.finish()
            batches = total if total is not None else count.done
            self.record({"step": self.state.step, "split": split, "final": True, **final[split], "batches": batches},
                        logger)
            progress.message(f"final {split} ({batches} batches) " + "  ".join(f"{k} {v:.4g}" for k, v in final[split].items()))
        if self.is_main:
            logger.summarize({f"final/{split}/{k}": v for split, metrics in final.items() for k, v in metrics.items()})
        return final

    def write_summary(self, status: str, final: dict, wall_start: float, wall_before: float) -> dict:
        wall = wall_before + time.perf_counter() - wall_start
        summary = {
            "status": status,
            "run_name": self.run_name,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "task": self.task.describe(),
            "metric": self.task.metric,
            "final": final,  # the final evaluation (valid: the run's number), {split: metrics}
            "final_batches": {split: self.final_totals.get(split) for split in final},
            "best": self.state.best,  # the best periodic evaluation; its `split` says its kind
            "steps": self.state.step,
            "tokens": self.state.tokens,
            "train_seconds": self.state.train_seconds,
            "wall_seconds": wall,
            "tokens_per_second": self.state.tokens / max(self.state.train_seconds, 1e-9),
            "n_parameters": count_parameters(self.model),
            "device": str(self.device),
            "device_name": device_name(self.device),
            "precision": self.precision,
            "peak_memory_bytes": torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None,
            "torch_version": torch.__version__,
            "code_version": code_version(),
            "seed": self.cfg.seed,
            "world_size": self.world_size,
            "wandb_run_id": self.state.wandb_run_id,
            "config": self.config_dict,
        }
        if status == "early_stopped":
            es = self.t.early_stop
            summary["stop_reason"] = stop_reason(self.task.metric, self.periodic_split, es.patience, es.min_delta,
                                                 self.state.best)
        if self.is_main:
            write_json_atomic(self.run_dir / "summary.json", summary)
        return summary


def done_line(summary: dict, run_dir: Path) -> str:
    """`done in 0:21: valid accuracy 0.953, loss 0.166; <run>/summary.json` (the final evaluation),
    with the best periodic evaluation when it came before the last step (`best estimate 0.96 at
    step 800`, `best` alone when the periodic evaluations cover the whole split) and why a run
    stopped early (`done in 0:21 (stopped early: ...)`)."""
    metric = summary["metric"]
    valid = (summary.get("final") or {}).get("valid") or {}
    best = summary.get("best") or {}
    result = f"valid {metric} {valid[metric]:.4g}" if valid.get(metric) is not None else "no validation result"
    if best.get(metric) is not None and best.get("step", summary["steps"]) < summary["steps"]:
        kind = "best estimate" if best.get("split") == ESTIMATE else "best"
        result += f" ({kind} {best[metric]:.4g} at step {best.get('step')})"
    if valid.get("loss") is not None:
        result += f", loss {valid['loss']:.4g}"
    m, s = divmod(int(round(summary["wall_seconds"])), 60)
    why = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
    return f"done in {m}:{s:02d}{why}: {result}; {shown_path(Path(run_dir) / 'summary.json')}"


def train(cfg: RunConfig, run_dir: Path, identity: RunIdentity | None = None) -> dict:
    """Train one configuration into `run_dir` (`reformer run`: a prepared run's config and folder),
    named, grouped and tagged by `identity` (by default after its config); returns the summary."""
    return Trainer(cfg, run_dir, identity).run()
