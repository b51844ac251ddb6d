"""`reformer eval`: repeatable evaluation, other attention settings on a trained model (Table 2),
the record it writes, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from reformer_cli.evaluation import evaluate, merge_attention
from reformer_cli.model.reformer import build_model
from reformer_cli.tasks import build_task
from reformer_cli.train import train

from .conftest import TINY, compose, in_process, run_cli

LSH1 = [*TINY, "attention=lsh", "attention.n_rounds=1", "attention.chunk_length=8", "trainer.max_steps=30",
        "trainer.eval_every=30", "trainer.ckpt_every=30", "trainer.progress=none"]


@pytest.fixture(scope="module")
def lsh1_run(tmp_path_factory) -> Path:
    """A tiny model trained with LSH, one round."""
    run_dir = tmp_path_factory.mktemp("lsh1") / "run"
    train(compose(LSH1), run_dir)
    return run_dir


def test_evaluation_is_repeatable():
    """Must-show 4: the same eval seed gives the same numbers; another seed other rotations."""
    cfg = compose([*TINY, "attention=lsh", "attention.n_rounds=2", "attention.chunk_length=4"])
    torch.manual_seed(0)
    model = build_model(cfg, 128, cfg.task.seq_len)
    task = build_task(cfg.task, 0)
    kwargs = dict(split="valid", batch_size=8, max_batches=0, device=torch.device("cpu"), precision="fp32")
    a = evaluate(model, task, seed=3, **kwargs)
    b = evaluate(model, task, seed=3, **kwargs)
    c = evaluate(model, task, seed=4, **kwargs)
    assert a == b
    assert a["loss"] != c["loss"]


def test_training_and_evaluation_with_rotations_per_example(tmp_path, capsys, monkeypatch):
    """attention.rotations=per_example trains (2 steps) and evaluates repeatably: the same eval twice
    gives the training's final numbers; the shared rotations give other ones."""
    run_dir = tmp_path / "run"
    train(compose([*LSH1, "attention.rotations=per_example", "trainer.max_steps=2", "trainer.eval_every=2",
                   "trainer.ckpt_every=2"]), run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    monkeypatch.chdir(tmp_path)
    records = {}
    for name, extra in [("once", []), ("twice", []), ("shared", ["attention.rotations=shared"])]:
        code, err = in_process(["eval", f"checkpoint={run_dir}", f"output={name}.json", "progress=none", *extra], capsys)
        assert code == 0, err
        records[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert records["once"]["evaluated_attention"]["rotations"] == "per_example"
    assert (records["once"]["evaluated_label"], records["shared"]["evaluated_label"]) == ("lsh-1-perexample", "lsh-1")
    assert records["once"]["metrics"] == records["twice"]["metrics"] == summary["final"]["valid"]
    assert records["shared"]["metrics"]["loss"] != records["once"]["metrics"]["loss"]


def test_eval_with_8_rounds_on_a_model_trained_with_1(lsh1_run, tmp_path):
    """Must-show 4: `reformer eval checkpoint=RUN attention.n_rounds=8` runs and records accuracy."""
    out = run_cli(["eval", f"checkpoint={lsh1_run}", "attention.n_rounds=8", "output=lsh8.json"], tmp_path)
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "lsh8.json").read_text())
    assert record["trained_attention"]["n_rounds"] == 1 and record["evaluated_attention"]["n_rounds"] == 8
    assert record["evaluated_attention"]["chunk_length"] == 8  # the trained settings are kept
    assert (record["trained_label"], record["evaluated_label"]) == ("lsh-1", "lsh-8")
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and record["metrics"]["bits"] > 0
    assert record["n_targets"] == 32 * 15  # task.eval_sequences x the second copy of w
    assert record["checkpoint"].endswith("step-00000030.pt") and record["step"] == 30
    assert record["split"] == "valid" and record["seed"] == 0 and record["device"] == "cpu"
    assert record["task"]["name"] == "synthetic" and record["code_version"]["package"] and record["date"]
    assert "lsh-1 -> lsh-8" in out.stderr + out.stdout


def test_full_attention_without_the_self_mask_on_an_lsh_model(lsh1_run, tmp_path):
    """The Table 2 diagnostic: an LSH-trained model under shared-QK full attention, self logit kept."""
    for name, extra in (("self", []), ("noself", ["attention.self_mask=false"])):
        out = run_cli(["eval", f"checkpoint={lsh1_run}", "attention=full", *extra, f"output={name}.json"], tmp_path)
        assert out.returncode == 0, out.stderr
    with_mask, without = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("self", "noself"))
    assert with_mask["evaluated_label"] == "full-sharedqk" and without["evaluated_label"] == "full-sharedqk-noself"
    assert without["evaluated_attention"]["shared_qk"] is True and without["evaluated_attention"]["self_mask"] is False
    assert without["metrics"]["loss"] != with_mask["metrics"]["loss"]


def test_eval_reproduces_the_training_evaluation_and_itself(lsh1_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = json.loads((lsh1_run / "summary.json").read_text())
    records = {}
    for name, extra in [("same", []), ("r4", ["attention.n_rounds=4"]), ("r4again", ["attention=lsh", "attention.n_rounds=4"]),
                        ("r4seed", ["attention.n_rounds=4", "attention.eval_seed=5"])]:
        code, err = in_process(["eval", f"checkpoint={lsh1_run}", f"output={name}.json", "progress=none", *extra], capsys)
        assert code == 0, err
        records[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert records["same"]["metrics"] == summary["final"]["valid"]  # the trained attention, same seed
    assert records["r4"]["metrics"] == records["r4again"]["metrics"]  # repeatable
    assert records["r4seed"]["seed"] == 5 and records["r4seed"]["metrics"] != records["r4"]["metrics"]


def test_default_record_goes_to_its_own_folder(lsh1_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["eval", f"checkpoint={lsh1_run / 'checkpoints' / 'step-00000030.pt'}", "attention=full",
                            "max_batches=1", "progress=none"], capsys)
    assert code == 0, err
    (record_path,) = (tmp_path / "outputs" / "eval").glob("*/eval.json")
    record = json.loads(record_path.read_text())
    assert record["evaluated_attention"] == {"name": "full", "shared_qk": True, "causal": True, "dropout": 0.0,
                                             "self_mask": True, "self_mask_value": -1e5, "self_mask_mode": "replace",
                                             "shared_qk_keys": "unit"}
    assert record["batches"] == 1 and record["n_targets"] == 8 * 15


def test_merge_attention_rules():
    lsh = dict(compose(["attention=lsh", "attention.chunk_length=8", "attention.n_rounds=1"]).attention)
    lsh_defaults = dict(compose(["attention=lsh"]).attention)
    full = dict(compose(["attention=full", "attention.causal=false"]).attention)
    assert merge_attention(lsh, None, set()) == lsh
    assert merge_attention(lsh, {**lsh_defaults, "n_rounds": 8}, {"n_rounds"}) == {**lsh, "n_rounds": 8}
    switched = merge_attention(lsh, dict(compose(["attention=full"]).attention), set())
    assert switched["name"] == "full" and switched["shared_qk"] is True
    assert merge_attention(full, {**lsh_defaults, "n_rounds": 4}, {"n_rounds"})["causal"] is False


def write_checkpoint(path: Path, overrides: list[str]) -> Path:
    cfg = compose(overrides)
    model = build_model(cfg, 128, cfg.task.seq_len)
    state = {"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True), "state": {"step": 0}}
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda d: d / "missing.pt", [], "neither a checkpoint file nor a run folder"),
        (lambda d: d, [], "holds no checkpoint"),
        (lambda d: (d / "bad.pt").write_bytes(b"not a checkpoint") and d / "bad.pt", [], "cannot be read"),
        (lambda d: write_checkpoint(d / "full.pt", TINY), ["attention=lsh"], "needs shared-QK weights"),
        (lambda d: write_checkpoint(d / "full.pt", TINY), ["attention.n_rounds=8"], "unknown config key"),
        (lambda d: write_checkpoint(d / "lsh.pt", [*TINY, "attention=lsh"]), ["attention.n_rounds=0"], "attention.n_rounds=0"),
        (lambda d: d / "x.pt", ["split=train"], "split='train'"),
        (None, [], "checkpoint=PATH is required"),
    ],
)
def test_errors_are_one_line(make, extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["eval", *([f"checkpoint={make(tmp_path)}"] if make else []), *extra]
    code, err = in_process(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_checkpoint_saved_before_the_bucket_rule_is_evaluated_as_trained(lsh1_run, tmp_path, capsys, monkeypatch):
    """A checkpoint whose config predates `attend_across_buckets` and `dedup` was trained across
    buckets without the correction: it is evaluated that way (not with today's paper defaults),
    and the record says which keys were filled in."""
    monkeypatch.chdir(tmp_path)
    saved = torch.load(lsh1_run / "checkpoints" / "step-00000030.pt", weights_only=False)
    for key in ("attend_across_buckets", "dedup"):
        del saved["config"]["attention"][key]
    torch.save(saved, tmp_path / "old.pt")
    code, err = in_process(["eval", f"checkpoint={tmp_path / 'old.pt'}", "output=old.json", "progress=none"], capsys)
    assert code == 0, err
    code, err = in_process(["eval", f"checkpoint={lsh1_run}", "output=new.json", "progress=none",
                            "attention.attend_across_buckets=true", "attention.dedup=false"], capsys)
    assert code == 0, err
    old, new = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("old", "new"))
    assert old["trained_attention_filled_in"] == {"attend_across_buckets": True, "dedup": False}
    assert old["evaluated_attention"]["attend_across_buckets"] is True and old["evaluated_attention"]["dedup"] is False
    assert old["metrics"] == new["metrics"]
    assert new["trained_attention_filled_in"] == {}
