"""`reformer sample` as a user runs it: on a text run trained by a tiny CLI run, an imagenet64 run on
fixture images, a synthetic run; and one line for each bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import reformer_cli

from ..conftest import compose, in_process, run_cli
from ..data.formats import images, oord_dataset, text_bytes

STEPS = ["model=tiny", "attention=lsh", "attention.chunk_length=16", "trainer.max_steps=3", "trainer.batch_size=4",
         "trainer.warmup_steps=1", "trainer.device=cpu", "trainer.progress=plain", "trainer.eval_batches=1",
         "logger=none"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    (root / "corpus.txt").write_bytes(text_bytes(8_000, seed=5))
    data = ["task=text", f"task.path={root / 'corpus.txt'}", f"task.data_dir={root / 'data'}"]
    assert run_cli(["data", "prepare", *data], root).returncode == 0
    out = run_cli(["run", *data, "task.seq_len=64", *STEPS], root)
    assert out.returncode == 0, out.stderr
    return next((root / "outputs" / "text").iterdir())


def test_sample_prints_text_and_writes_its_record(text_run, tmp_path):
    out = run_cli(["sample", str(text_run), "--prompt", "the ", "--length", "30", "--count", "2", "--seed", "3",
                   "--out", str(tmp_path / "s")], tmp_path)
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "s" / "sample.json").read_text())
    assert record["task"] == "text" and record["prompt"] == "the " and record["length"] == 30
    assert [s["bytes"] for s in record["samples"]] == [30, 30]
    for k, s in enumerate(record["samples"]):  # printed as drawn, after the prompt
        assert s["text"] == bytes.fromhex(s["hex"]).decode("utf-8", "replace")
        assert f"--- sample {k + 1}/2\nthe {s['text']}\n" in out.stdout
    again = run_cli(["sample", str(text_run), "--prompt", "the ", "--length", "30", "--count", "2", "--seed", "3",
                     "--out", str(tmp_path / "t")], tmp_path)
    assert json.loads((tmp_path / "t" / "sample.json").read_text())["samples"] == record["samples"]


def test_load_returns_the_model_its_config_and_task(text_run):
    import torch

    model, config, task = reformer_cli.load(text_run)
    assert config.task.name == "text" and task.vocab_size == 257 and not model.training
    batch = next(iter(task.eval_batches("valid", 2, 1)))
    with torch.no_grad():
        assert model(batch.inputs).shape == (2, 64, 257)


@pytest.mark.parametrize("args, message", [
    (["--prompt", ""], "error: the prompt is empty"),
    (["--prompt", "abc", "--length", "62"], "error: --length 62 after a prompt of 3 bytes needs 65 positions; this"
     " model has 64"),
    (["--top-p", "1.5"], "error: --top-p 1.5 must be in (0, 1]"),
    *[(["--temperature", value], f"error: --temperature {float(value)} must be a finite number >= 0 (0: the most"
       " likely token)") for value in ("-1", "nan", "inf")],
    (["--seed", str(2**63)], f"error: --seed {2**63} must be an integer in [-2^63, 2^63)"),
    (["--device", "cuda:abc"], "error: --device 'cuda:abc' is not one of: auto, cpu, cuda, cuda:N, mps"),
])
def test_bad_input_is_one_line(text_run, tmp_path, capsys, args, message):
    code, err = in_process(["sample", str(text_run), *args, "--out", str(tmp_path)], capsys)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err


def test_paths_that_cannot_work_are_one_line(text_run, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("kept\n")
    code, err = in_process(["sample", str(text_run), "--length", "3", "--out", str(taken)], capsys)
    assert code == 2 and err == f"error: --out {taken} is a file, not a folder: sample.json cannot be written in it\n"
    assert taken.read_text() == "kept\n"
    code, err = in_process(["sample", str(text_run), "--prompt-file", str(tmp_path), "--out", str(tmp_path)], capsys)
    assert code == 2 and err == f"error: --prompt-file {tmp_path}: a folder, not a file\n"


def test_a_prompt_argument_that_is_not_utf8_is_its_bytes(text_run, tmp_path, capsys):
    (tmp_path / "prompt").write_bytes(b"caf\xe9 ")
    for how, prompt in (("argument", ["--prompt", os.fsdecode(b"caf\xe9 ")]),
                        ("file", ["--prompt-file", str(tmp_path / "prompt")])):
        code, err = in_process(["sample", str(text_run), *prompt, "--length", "4", "--out", str(tmp_path / how)],
                               capsys)
        assert code == 0, err
    drawn = [json.loads((tmp_path / how / "sample.json").read_text())["samples"] for how in ("argument", "file")]
    assert drawn[0] == drawn[1] and drawn[0][0]["bytes"] == 4


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    code, err = in_process(["sample", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and err == f"error: {tmp_path / 'nowhere'} is neither a checkpoint file nor a run folder\n"


def test_imagenet64_writes_a_png_grid_drawn_and_completed(tmp_path, capsys):
    from PIL import Image

    from reformer_cli.data.imagenet64 import prepare_imagenet64
    from reformer_cli.train import train

    oord_dataset(tmp_path / "raw", images(4, seed=1), images(3, seed=2))
    cfg = compose(["task=imagenet64", "task.variant=oord", f"task.data_dir={tmp_path / 'raw'}", "task.seq_len=384",
                   *STEPS])
    prepare_imagenet64(cfg.task, verify=False)
    train(cfg, tmp_path / "run")
    code, err = in_process(["sample", str(tmp_path / "run"), "--count", "4", "--out", str(tmp_path / "d")], capsys)
    assert code == 0, err
    png = np.asarray(Image.open(tmp_path / "d" / "samples.png"))
    assert png.shape == (4 * (2 * 2 + 2), 4 * (2 * 64 + 2), 3)  # 2 x 2 samples of 2 rows x 64 pixels, x4, 2-pixel gaps
    drawn = json.loads((tmp_path / "d" / "sample.json").read_text())["samples"]
    assert len(drawn) == 4 and all(len(s) == 384 and 0 <= min(s) and max(s) <= 255 for s in drawn)

    code, err = in_process(["sample", str(tmp_path / "run"), "--complete", "3", "--prompt-rows", "1",
                            "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "c" / "sample.json").read_text())
    valid = images(3, seed=2).reshape(3, -1)
    for original, completed in zip(valid, record["samples"]):  # the given upper row is kept as it is
        assert completed[:192] == original[:192].tolist() and len(completed) == 384
    png = np.asarray(Image.open(tmp_path / "c" / "samples.png"))
    assert png.shape == (4 * (2 * 2 + 2), 4 * (2 * 128 + 2), 3)  # cells: original beside completion
    assert (png[:8, :4 * 64] == np.repeat(np.repeat(valid[0][:384].reshape(2, 64, 3), 4, 0), 4, 1)).all()


def test_synthetic_shows_the_copy_and_its_accuracy(tmp_path, capsys):
    from reformer_cli.train import train

    cfg = compose(["task.seq_len=32", "task.eval_sequences=8", *STEPS])
    train(cfg, tmp_path / "run")
    code, err = in_process(["sample", str(tmp_path / "run"), "--count", "3", "--out", str(tmp_path / "s")], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "s" / "sample.json").read_text())
    copies = record["copies"]
    assert len(copies) == 3 and all(len(c["w"]) == len(c["copy"]) == 15 for c in copies)
    hits = sum(a == b for c in copies for a, b in zip(c["w"], c["copy"]))
    assert record["accuracy"] == hits / 45 and record["sampling"]["temperature"] == 0.0
    code, err = in_process(["sample", str(tmp_path / "run"), "--prompt", "5 200 3"], capsys)
    assert code == 2 and err.startswith("error: the prompt's symbol 200 is outside this model's vocabulary")
