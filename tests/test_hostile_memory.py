"""Hostile sizes that only an attention over chunks or axial positions makes large: LSH's and local
attention's windows (`attention.n_chunks_before=1000000`), LSH's hash projections (the paper's
default n_buckets grows with task.seq_len / attention.chunk_length), and an axial grid far longer
than the sequence. The first are refused in one line before anything is allocated; the grid costs
only the rows the sequence uses."""

from __future__ import annotations

import pytest
import torch

from .test_hostile_input import rejected

WINDOWS = "(reduce attention.n_chunks_before or attention.chunk_length)"


@pytest.mark.parametrize("overrides, largest", [
    # the weights count WEIGHT_COPIES times (scores, masked scores, probabilities, their gradient), in
    # each of the 2 standard layers that runs the attention
    (["attention=lsh", "attention.n_chunks_before=1000000"],
     "LSH's window weights, trainer.batch_size x model.n_heads x task.seq_len x attention.n_rounds x"
     f" (attention.n_chunks_before + 1) x attention.chunk_length {WINDOWS}, 1,953.1 GiB"),
    (["attention=local", "attention.n_chunks_before=1000000"],
     "local attention's window weights, trainer.batch_size x model.n_heads x task.seq_len x"
     f" (attention.n_chunks_before + 1 + attention.n_chunks_after) x attention.chunk_length {WINDOWS}, 976.6 GiB"),
    # a layer of another type than `attention` counts too (one layer of 2 here)
    (["model.attn_layers=[full,local]", "+model.attn_settings.local.n_chunks_before=1000000"],
     "local attention's window weights, trainer.batch_size x model.n_heads x task.seq_len x"
     f" (attention.n_chunks_before + 1 + attention.n_chunks_after) x attention.chunk_length {WINDOWS}, 488.3 GiB"),
    # 2 x 32,768 / 4 = 16,384 buckets as one factor: 8,192 projections per round and query
    (["attention=lsh", "task.seq_len=32768", "attention.chunk_length=4", "attention.n_buckets=16384"],
     "LSH's hash projections, trainer.batch_size x model.n_heads x task.seq_len x attention.n_rounds x"
     " attention.n_buckets / 2 (set attention.n_buckets lower, or factorised as a list such as [64, 64]), 32.0 GiB;"
     " trainer.batch_size=1 fits (about 4.8 GiB)"),
])
def test_an_attention_s_windows_or_hashes_that_cannot_fit_are_refused(overrides, largest, tmp_path, monkeypatch,
                                                                      capsys):
    from reformer_cli import memory_estimate

    monkeypatch.setattr(memory_estimate, "host_memory", lambda: 8 << 30)
    line = rejected(overrides, tmp_path, monkeypatch, capsys)
    assert line.startswith("error: this run needs about ") and " but the device has 8.0 GiB:" in line
    assert line.endswith(f"the largest term is {largest}"), line


def test_factorised_buckets_cost_the_sum_of_their_factors(tmp_path, monkeypatch, capsys):
    """The same run as the last above, with its 16,384 buckets as [128, 128]: 128 projections per
    round and query instead of 8,192, so it fits."""
    from reformer_cli.hydra_entry import compose
    from reformer_cli.memory_estimate import check_fits, memory_terms

    cfg = compose("config", ["model=tiny", "attention=lsh", "task.seq_len=32768", "attention.chunk_length=4",
                             "attention.n_buckets=[128,128]"])
    hashes = [size for size, what in memory_terms(cfg) if what.startswith("LSH's hash projections")]
    assert hashes == [8 * 2 * 32768 * 2 * 128 * 4]
    check_fits(cfg, 8 << 30)


def test_an_axial_grid_far_longer_than_the_sequence_builds_only_the_rows_it_uses():
    """A 10^12-position grid (its full table would be 24 TB) on a sequence of 40."""
    from reformer_cli.model.axial import AxialPositions

    torch.manual_seed(0)
    axial = AxialPositions([10**6, 10**6], [2, 3])
    x = torch.randn(2, 40, 5)
    out = axial(x)
    rows, columns = axial.tables
    for position in range(40):  # row-major: position p is (p // 10^6, p % 10^6)
        expected = torch.cat([rows[position // 10**6], columns[position % 10**6]])
        assert torch.equal(out[:, position], x[:, position] + expected)
    out.sum().backward()
    assert torch.equal(rows.grad[0], torch.full((2,), 80.0)) and rows.grad[1:].abs().sum() == 0
    assert torch.equal(columns.grad[:40], torch.full((40, 3), 2.0)) and columns.grad[40:].abs().sum() == 0
