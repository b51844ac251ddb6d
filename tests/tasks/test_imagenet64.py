"""imagenet64: windows of images, evaluation coverage, test -> valid, bits per dim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reformer_cli.data.imagenet64 import prepare_imagenet64
from reformer_cli.evaluation import evaluate
from reformer_cli.model.reformer import build_model
from reformer_cli.tasks import build_task
from reformer_cli.tasks.base import shift_right

from ..conftest import compose
from ..data.formats import chrabaszcz_dataset, images

TRAIN, VALID = images(10, seed=4), images(2, seed=5)
SEQ = 3072  # a quarter image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet64")
    chrabaszcz_dataset(root, TRAIN, VALID, "npz")
    prepare_imagenet64(cfg(root).task, verify=False)
    return root


def cfg(root, seq_len=SEQ):
    return compose(["task=imagenet64", "task.variant=chrabaszcz", f"task.data_dir={root}", f"task.seq_len={seq_len}",
                    "model=tiny", "attention=full", "model.n_layers=1", "model.d_model=16", "model.d_ff=16"])


def test_training_windows_are_aligned_parts_of_train_images(folder):
    task = build_task(cfg(folder).task, seed=0)
    assert task.vocab_size == 256 and task.metric == "bits_per_dim" and task.windows_per_image == 4
    batch = task.train_batch(3, 12)
    flat = TRAIN.reshape(10, 4, SEQ)  # (image, window, token)
    for row in batch.targets.numpy():
        assert any(np.array_equal(row, flat[i, w]) for i in range(10) for w in range(4))
    assert torch.equal(batch.inputs, shift_right(batch.targets, 0))
    assert torch.equal(task.train_batch(3, 12).targets, batch.targets)
    assert not torch.equal(task.train_batch(4, 12).targets, batch.targets)


def test_evaluation_covers_every_token_of_valid_once_and_test_means_valid(folder, caplog):
    task = build_task(cfg(folder).task, seed=0)
    batches = list(task.eval_batches("valid", batch_size=3))
    tokens = torch.cat([b.targets.flatten() for b in batches]).numpy()
    assert np.array_equal(tokens, VALID.reshape(-1)) and all(torch.all(b.weights == 1) for b in batches)
    with caplog.at_level("INFO", logger="reformer"):
        test = list(task.eval_batches("test", batch_size=3))
    assert "no test split" in caplog.text
    assert all(torch.equal(a.targets, b.targets) for a, b in zip(batches, test))
    info = task.describe()
    assert info["variant"] == "chrabaszcz" and info["images"] == {"train": 10, "valid": 2}
    assert len(info["data_sha256"]) == 64


def test_bits_per_dim_equals_a_direct_computation_over_every_window(folder):
    torch.manual_seed(0)
    seq = 768  # 16 windows per image
    config = cfg(folder, seq_len=seq)
    task = build_task(config.task, seed=0)
    model = build_model(config, task.vocab_size, task.seq_len).double().eval()
    metrics = evaluate(model, task, split="valid", batch_size=5, max_batches=0, device=torch.device("cpu"),
                       precision="fp32", seed=0)
    with torch.no_grad():  # each window on its own, read after the start token 0
        targets = torch.from_numpy(VALID.reshape(-1, seq)).long()
        logp = F.log_softmax(model(shift_right(targets, 0)).double(), dim=-1)
        nats = -logp.gather(2, targets[..., None]).sum().item()
    assert targets.numel() == 2 * 12288
    assert metrics["bits_per_dim"] == pytest.approx(nats / math.log(2) / targets.numel(), rel=1e-10)
