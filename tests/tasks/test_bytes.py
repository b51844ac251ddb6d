"""Byte-level tasks: training windows, evaluation coverage, and bpc against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reformer_cli.data.bytes import prepare_enwik8
from reformer_cli.evaluation import evaluate
from reformer_cli.model.reformer import build_model
from reformer_cli.tasks import build_task
from reformer_cli.tasks.base import shift_right
from reformer_cli.tasks.bytes import START, VOCAB_SIZE

from ..conftest import compose
from ..data.formats import enwik8_zip, text_bytes

SIZES = [20_000, 3_000, 2_001]  # test: 2,001 bytes = 62 full windows of 32 and one of 17
SEQ = 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("enwik8")
    data = text_bytes(sum(SIZES), seed=3)
    prepare_enwik8(cfg(root / "data").task, source=str(enwik8_zip(root / "enwik8.zip", data)), verify=False)
    return root / "data", data


def cfg(folder, *extra):
    return compose(["task=enwik8", f"task.data_dir={folder}", f"task.seq_len={SEQ}",
                    f"task.split_sizes=[{','.join(map(str, SIZES))}]", "model=tiny", "attention=full", *extra])


def task_of(corpus, seed=0):
    return build_task(cfg(corpus[0]).task, seed=seed)


def test_training_windows_are_slices_of_train_read_after_a_start_token(corpus):
    folder, data = corpus
    task = task_of(corpus)
    assert task.vocab_size == VOCAB_SIZE == 257 and task.metric == "bpc"
    batch = task.train_batch(step=7, batch_size=16)
    assert batch.inputs.dtype == batch.targets.dtype == torch.long and batch.targets.shape == (16, SEQ)
    train = data[: SIZES[0]]
    for row in batch.targets.tolist():
        window = bytes(row)
        assert train.find(window) >= 0  # a contiguous run of the train split
    assert torch.equal(batch.inputs, shift_right(batch.targets, START))
    assert torch.all(batch.weights == 1)


def test_training_batches_are_a_function_of_seed_step_and_rank(corpus):
    a, b = task_of(corpus), task_of(corpus)
    assert torch.equal(a.train_batch(5, 4).targets, b.train_batch(5, 4).targets)
    assert not torch.equal(a.train_batch(5, 4).targets, a.train_batch(6, 4).targets)
    global_batch = a.train_batch(5, 8).targets  # ranks take their rows of the global batch
    assert torch.equal(a.train_batch(5, 4, rank=0, world_size=2).targets, global_batch[:4])
    assert torch.equal(a.train_batch(5, 4, rank=1, world_size=2).targets, global_batch[4:])
    assert not torch.equal(task_of(corpus, seed=1).train_batch(5, 4).targets, a.train_batch(5, 4).targets)
    starts = {bytes(r[:8]) for _ in range(3) for r in a.train_batch(_, 64).targets.tolist()}
    assert len(starts) > 100  # offsets vary across the split


@pytest.mark.parametrize("split, first", [("valid", 20_000), ("test", 23_000)])
def test_evaluation_predicts_every_byte_exactly_once(corpus, split, first):
    folder, data = corpus
    expected = data[first : first + {"valid": 3_000, "test": 2_001}[split]]
    batches = list(task_of(corpus).eval_batches(split, batch_size=5))
    covered = b"".join(bytes(b.targets[b.weights > 0].tolist()) for b in batches)
    assert covered == expected
    assert sum(b.size for b in batches) == math.ceil(len(expected) / SEQ)
    last = batches[-1]
    assert last.weights[-1].sum() == len(expected) % SEQ or len(expected) % SEQ == 0
    for b in batches:
        assert torch.equal(b.inputs, shift_right(b.targets, START))  # no context across windows
    assert len(list(task_of(corpus).eval_batches(split, batch_size=5, max_batches=2))) == 2


def test_evaluation_bpc_equals_a_direct_computation_over_the_same_bytes(corpus):
    folder, data = corpus
    torch.manual_seed(0)
    config = cfg(folder)
    task = build_task(config.task, seed=0)
    model = build_model(config, task.vocab_size, task.seq_len).double().eval()
    metrics = evaluate(model, task, split="test", batch_size=16, max_batches=0, device=torch.device("cpu"),
                       precision="fp32", seed=0)

    test = torch.tensor(list(data[23_000:]))  # the source bytes, not the prepared file
    full = len(test) // SEQ * SEQ
    nats = 0.0
    with torch.no_grad():  # T2T: independent windows, each read after the start token; the last one shorter
        for windows in (test[:full].view(-1, SEQ), test[full:][None]):
            inputs = torch.cat([torch.full_like(windows[:, :1], START), windows[:, :-1]], dim=1)
            logp = F.log_softmax(model(inputs).double(), dim=-1)
            nats -= logp.gather(2, windows[..., None]).sum().item()
    direct_bpc = nats / math.log(2) / len(test)
    assert metrics["bpc"] == pytest.approx(direct_bpc, rel=1e-10)
    assert metrics["loss"] == pytest.approx(nats / len(test), rel=1e-10)
    assert 6.0 < metrics["bpc"] < 10.0  # an untrained model: about log2(257)


def test_describe_records_the_data(corpus):
    task = task_of(corpus)
    task.check_data()
    info = task.describe()
    assert info["name"] == "enwik8" and info["metric"] == "bpc" and info["official"] is False
    assert info["data_sha256"] == task.manifest["data_sha256"] and len(info["data_sha256"]) == 64
    assert info["split_bytes"] == dict(zip(("train", "valid", "test"), SIZES))
    assert info["source"]["verified"] is False


def test_a_train_split_shorter_than_a_window_is_refused(corpus):
    from reformer_cli.errors import DataError

    with pytest.raises(DataError, match="has 20,000 bytes, fewer than task.seq_len=65536"):
        build_task(cfg(corpus[0], "task.seq_len=65536").task, seed=0).check_data()
