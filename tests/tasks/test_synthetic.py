"""The duplication task: structure, masking, determinism."""

from __future__ import annotations

import torch

from reformer_cli.tasks import build_task

from ..conftest import compose


def task(seq_len=16):
    return build_task(compose([f"task.seq_len={seq_len}", "task.eval_sequences=10"]).task, seed=0)


def test_sequences_are_0w0w_and_only_the_second_copy_counts():
    t = task(16)
    batch = t.train_batch(step=3, batch_size=4)
    seq, n = batch.targets, t.word_len
    assert n == 7
    assert torch.all(seq[:, 0] == 0) and torch.all(seq[:, n + 1] == 0)
    assert torch.equal(seq[:, 1 : n + 1], seq[:, n + 2 :])
    assert torch.all(seq[:, 1 : n + 1] >= 1) and torch.all(seq[:, 1 : n + 1] <= 127)
    assert torch.equal(batch.inputs[:, 1:], seq[:, :-1]) and torch.all(batch.inputs[:, 0] == 0)
    expected = torch.zeros(16)
    expected[-n:] = 1
    assert torch.equal(batch.weights, expected.expand(4, 16))


def test_batches_are_a_function_of_seed_and_step():
    a, b = task(), task()
    assert torch.equal(a.train_batch(5, 4).inputs, b.train_batch(5, 4).inputs)
    assert not torch.equal(a.train_batch(5, 4).inputs, a.train_batch(6, 4).inputs)
    global_batch = a.train_batch(5, 8).inputs
    assert torch.equal(a.train_batch(5, 4, rank=0, world_size=2).inputs, global_batch[:4])
    assert torch.equal(a.train_batch(5, 4, rank=1, world_size=2).inputs, global_batch[4:])


def test_eval_set_is_fixed_and_covers_every_sequence_once():
    t = task()
    batches = list(t.eval_batches("valid", batch_size=4))
    assert [b.size for b in batches] == [4, 4, 2]
    again = list(t.eval_batches("valid", batch_size=4))
    assert all(torch.equal(x.inputs, y.inputs) for x, y in zip(batches, again))
    assert len(list(t.eval_batches("valid", batch_size=4, max_batches=2))) == 2
    test = next(iter(t.eval_batches("test", batch_size=4)))
    assert not torch.equal(test.inputs, batches[0].inputs)
