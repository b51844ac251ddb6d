"""The pieces of the reference LSH attention that replace a plainer formulation, against it."""

from __future__ import annotations

import itertools

import torch

from reformer_cli.attention.lsh import angular_bucket


def test_angular_bucket_is_the_argmax_of_x_r_and_minus_x_r_on_ties():
    """Every vector of entries in {-1, 0, 1} (exact ties of equal and of opposite sign, all-zero
    rows) and random ones: the first index of the maximum of [a ; -a]."""
    ties = torch.tensor(list(itertools.product([-1.0, 0.0, 1.0], repeat=4)), dtype=torch.float64)
    rand = torch.randn(500, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for a in (ties, ties * 2.5, rand):
        expected = torch.cat([a, -a], dim=-1).argmax(dim=-1)
        plain = [max(range(8), key=lambda i, row=row: (float(torch.cat([row, -row])[i]), -i)) for row in a]
        assert torch.equal(angular_bucket(a), expected)
        assert angular_bucket(a).tolist() == plain
