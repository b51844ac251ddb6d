"""A short CPU training run through the CLI with reversible layers, chunking and axial positions."""

from __future__ import annotations

import json

from .conftest import TINY, metrics_of, only_run_dir, run_cli


def test_reversible_chunked_axial_run_trains(tmp_path):
    args = ["run", *TINY, "layer=reversible", "model.positions=axial", "model.ff_chunks=2", "model.loss_chunks=2",
            "model.dropout=0.1", "trainer.max_steps=60", "trainer.eval_every=30", "trainer.log_every=10",
            "trainer.lr=3e-3"]
    out = run_cli(args, tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["layer"]["name"] == "reversible"
    assert (run_dir / "checkpoints" / "step-00000060.pt").is_file()
    records = metrics_of(run_dir)
    train = [r["loss"] for r in records if r["split"] == "train"]
    valid = [r["loss"] for r in records if r["split"] == "valid" and not r.get("final")]  # periodic, whole split
    assert len(train) == 6 and len(valid) == 2
    assert train[-1] < train[0] and valid[-1] < valid[0]
