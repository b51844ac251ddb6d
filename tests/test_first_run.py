"""What a newcomer meets first: the product's headline command (must-show 1 of the user-experience
issue) and the README's first run."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from .conftest import run_cli


def test_the_headline_command_trains_the_papers_lsh_4(tmp_path):
    """`reformer run task=synthetic attention.n_rounds=4 trainer.max_steps=2`: LSH is the default
    attention, so the command trains Table 2's LSH-4 model as written. The evaluations are cut to
    one batch here to keep the suite short (the whole validation split of 512 sequences of 1,024
    tokens takes minutes on a CPU)."""
    command = ["run", "task=synthetic", "attention.n_rounds=4", "trainer.max_steps=2"]
    out = run_cli([*command, "trainer.eval_batches=1", "trainer.final_eval_batches=1"], tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    (run_dir,) = (tmp_path / "outputs" / "synthetic").iterdir()
    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.attention.name == "lsh" and config.attention.n_rounds == 4
    assert (config.model.n_layers, config.model.d_model, config.task.seq_len) == (1, 256, 1024)  # Table 2's model
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert summary["run_name"] == "synthetic-lsh-4-standard-seed0"
