"""Must-show 5: an LSH model learns the duplication task on CPU within a few hundred steps."""

from __future__ import annotations

import json

from reformer_cli.train import train

from ..conftest import compose

# A small version of Table 2's task: `0 w 0 w`, |w| = 7, 15 symbols (chance accuracy 1/15), LSH
# with 2 rounds of 8 buckets over chunks of 4 (a query sees 8 of the 16 positions per round).
SMALL_LSH = [
    "task=synthetic", "task.seq_len=16", "task.vocab_size=16", "task.eval_sequences=128",
    "model=tiny", "attention=lsh", "attention.n_rounds=2", "attention.chunk_length=4",
    "trainer.batch_size=32", "trainer.lr=1e-2", "trainer.schedule=constant", "trainer.warmup_steps=50",
    "trainer.max_steps=200", "trainer.eval_every=100", "trainer.ckpt_every=200", "trainer.device=cpu",
    "trainer.progress=none", "logger=none",
]


def test_lsh_model_learns_the_duplication_task(tmp_path):
    summary = train(compose(SMALL_LSH), tmp_path / "run")
    curve = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r["accuracy"] for r in curve if r["split"] == "valid"]
    chance = 1 / 15
    assert summary["final"]["valid"]["accuracy"] > max(0.5, 5 * chance), valid  # seeds 0-2 reach 0.89-0.93
    assert valid[-1] > valid[0], valid
