"""Local attention (attention=local) against a brute force: a dense softmax over every (query, key)
pair, masked to the chunks each query may see. Values and gradients, causal or not, with padding."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.attention.local import local_attention
from reformer_cli.config import validate
from reformer_cli.errors import ConfigError

from ..conftest import compose


def brute_force(q, k, v, chunk_length, before, after, causal, key_padding_mask=None):
    """softmax(q k^T / sqrt(d)) v over the allowed pairs, written from the definition."""
    length = q.shape[-2]
    allowed = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(length):
            near = i // chunk_length - before <= j // chunk_length <= i // chunk_length + after
            allowed[i, j] = near and (j <= i or not causal)
    allowed = allowed[None, None].expand(q.shape[0], 1, length, length)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


def inputs(length, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, length, 4, generator=gen, dtype=dtype, requires_grad=True) for _ in range(3)]


CASES = [  # length, chunk_length, before, after, causal
    (16, 4, 1, 0, True),
    (13, 4, 1, 0, True),  # a partial last chunk
    (16, 4, 2, 0, True),
    (16, 4, 0, 0, True),
    (16, 4, 1, 1, False),
    (11, 3, 0, 2, False),
    (8, 16, 1, 0, True),  # one chunk longer than the sequence: full causal attention
]


@pytest.mark.parametrize("length, chunk, before, after, causal", CASES)
def test_equals_the_brute_force_with_its_gradients(length, chunk, before, after, causal):
    q, k, v = inputs(length)
    padding = torch.ones(2, length, dtype=torch.bool)
    padding[1, 2:4] = False  # keys of the second sequence no query may attend
    got = local_attention(q, k, v, chunk_length=chunk, n_chunks_before=before, n_chunks_after=after,
                          causal=causal, key_padding_mask=padding)
    want = brute_force(q, k, v, chunk, before, after, causal, padding)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    seed = torch.randn(got.shape, dtype=got.dtype, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((got * seed).sum(), (q, k, v))
    grads_want = torch.autograd.grad((want * seed).sum(), (q, k, v))
    for g, w in zip(grads, grads_want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_gradcheck():
    q, k, v = inputs(7)
    assert torch.autograd.gradcheck(
        lambda q, k, v: local_attention(q, k, v, chunk_length=3, n_chunks_before=1, causal=True), (q, k, v))


def test_the_window_matters():
    """The cases above would pass for full attention if the window were ignored: it is not."""
    q, k, v = inputs(16)
    local = local_attention(q, k, v, chunk_length=4, n_chunks_before=1)
    full = brute_force(q, k, v, 16, 0, 0, True)
    assert torch.allclose(local[..., :8, :], full[..., :8, :])  # the first two chunks see everything
    assert not torch.allclose(local[..., 8:, :], full[..., 8:, :])


@pytest.mark.parametrize("overrides, message", [
    (["attention.n_chunks_after=1"], "attention.n_chunks_after=1: a causal query attends no later chunk"),
    (["attention.chunk_length=0"], "attention.chunk_length=0 must be a positive integer"),
    (["attention.n_chunks_before=-1"], "attention.n_chunks_before=-1 must be >= 0"),
])
def test_bad_settings_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(["attention=local", *overrides]))


def test_mixed_layers_train_resume_and_evaluate(tmp_path, monkeypatch, capsys):
    """model.attn_layers=[local, full] through the command line: a run, its continuation, an
    evaluation whose record and the runs table label the model as its run name does."""
    import json

    from ..conftest import TINY, in_process

    monkeypatch.chdir(tmp_path)
    args = ["run", *TINY, "model.n_layers=2", "model.attn_layers=[local,full]",
            "+model.attn_settings.local.chunk_length=8", "trainer.ckpt_every=2", "trainer.eval_every=2"]
    code, err = in_process([*args, "trainer.max_steps=2"], capsys)
    assert code == 0, err
    (run,) = (tmp_path / "outputs" / "synthetic").iterdir()
    assert "local-8+full" in json.loads((run / "summary.json").read_text())["run_name"]
    code, err = in_process([*args, "trainer.max_steps=4", f"resume={run}"], capsys)
    assert code == 0, err
    runs = list((tmp_path / "outputs" / "synthetic").iterdir())
    assert any(json.loads((r / "summary.json").read_text()).get("steps") == 4 for r in runs), runs
    code, err = in_process(["eval", f"checkpoint={run}", "output=eval.json", "progress=none", "max_batches=1"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "eval.json").read_text())
    assert record["trained_label"] == record["evaluated_label"] == "local-8+full"
    # under another attention only the layers that ran `attention` (full) change
    code, err = in_process(["eval", f"checkpoint={run}", "output=eval2.json", "progress=none", "max_batches=1",
                            "attention=local", "attention.chunk_length=4"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "eval2.json").read_text())
    assert (record["trained_label"], record["evaluated_label"]) == ("local-8+full", "local-8+local-4"), record
    from reformer_cli.cli import main

    capsys.readouterr()
    assert main(["runs", "outputs", "--json"]) in (0, None)
    assert {r["attention"] for r in json.loads(capsys.readouterr().out)} == {"local-8+full"}
