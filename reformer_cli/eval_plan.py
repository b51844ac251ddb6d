"""How big a training run's evaluations are, and what each is called in the records.

Two kinds of number describe a model on the validation split, and they must never share a name:

* the periodic evaluation (every `trainer.eval_every` steps, `trainer.eval_batches` batches) is an
  estimate when it covers fewer batches than the split has: it is recorded as `valid_estimate`
  (metrics.jsonl, W&B, summary.json's `best`), and as `valid` only when it covers the whole split;
* the final evaluation is `valid` (summary.json's `final`, the done line, the sweep table, W&B's
  `final/valid/...` summary). Its size is `trainer.final_eval_batches`: 0 the whole split; unset,
  the whole split too, except that a short run (max_steps <= SHORT_RUN_STEPS) caps it at
  SHORT_RUN_FINAL_BATCHES batches and says so (a 20-step try should not spend minutes on it).
"""

from __future__ import annotations

ESTIMATE = "valid_estimate"
SHORT_RUN_STEPS = 100
SHORT_RUN_FINAL_BATCHES = 64


def covered(max_batches: int, total: int | None) -> int | None:
    """Batches an evaluation of `max_batches` (0: all) runs on a split of `total` (None: unknown)."""
    if not max_batches:
        return total
    return max_batches if total is None else min(max_batches, total)


def periodic_split(eval_batches: int, total: int | None) -> str:
    """`valid` when the periodic evaluation covers the whole validation split, else `valid_estimate`
    (also when the split's size is unknown and the evaluation is capped)."""
    if not eval_batches or (total is not None and eval_batches >= total):
        return "valid"
    return ESTIMATE


def final_batches(final_eval_batches: int | None, max_steps: int) -> tuple[int, bool]:
    """(max_batches for the final evaluation, 0 = all; whether the short-run cap chose it)."""
    if final_eval_batches is not None:
        return int(final_eval_batches), False
    if max_steps <= SHORT_RUN_STEPS:
        return SHORT_RUN_FINAL_BATCHES, True
    return 0, False
