"""What a newcomer meets first: the product's headline command (must-show 1 of the user-experience
issue) and the README's first run."""

from __future__ import annotations

import json
import re
import shlex

from omegaconf import OmegaConf

from .conftest import REPO, run_cli


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
    assert run_dir.name.endswith("_synthetic-lsh-4-standard-seed0")  # the folder says which run it holds


def readme_first_run() -> tuple[list[str], float]:
    """The command of the README's "A first run", as written (its `\\` continuations joined), and
    the validation accuracy the README tells a user to expect ("at least 0.90")."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## A first run\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]  # the first fenced block: the command
    command = shlex.split(block.replace("\\\n", " "))
    expected = re.search(r"validation accuracy of at least (0\.\d+)", section)
    assert command[:2] == ["reformer", "run"] and expected, "the README's first run has moved"
    return command[1:], float(expected.group(1))


def test_the_readme_first_run_reaches_the_result_it_states(tmp_path):
    """Must-show 3: the README's first-run command exactly as written (`reformer` is
    `python -m reformer_cli`), on CPU, reaches the accuracy the README states and prints it."""
    args, expected = readme_first_run()
    out = run_cli(args, tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    done = [line for line in out.stdout.splitlines() if line.startswith("done in ")]
    assert done and "outputs/synthetic/" in done[-1], out.stdout[-2000:]
    printed = float(re.search(r"valid accuracy ([\d.]+)", done[-1]).group(1))
    (run_dir,) = (tmp_path / "outputs" / "synthetic").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 300
    assert summary["final"]["valid"]["accuracy"] >= expected and printed >= expected
