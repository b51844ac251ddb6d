"""Axial positional embeddings (trax AxialPositionalEncoding): layout, checks, values."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.config import validate
from reformer_cli.errors import ConfigError, UserError
from reformer_cli.model.axial import AxialPositions, axial_layout

from ..conftest import compose


def model_cfg(*overrides, seq_len=64):
    return compose(["model=tiny", "attention=full", f"task.seq_len={seq_len}", "model.positions=axial", *overrides])


def test_default_layout_is_two_near_square_axes_and_an_even_split():
    assert axial_layout(model_cfg(seq_len=64).model, 64) == ([8, 8], [32, 32])
    cfg = compose(["model=large", "task.seq_len=65536"])
    assert axial_layout(cfg.model, 65536) == ([128, 512], [256, 768])  # the trax enwik8 config
    cfg = compose(["model=large", "task.seq_len=12288", "model.axial_shape=null", "model.axial_dims=null"])
    assert axial_layout(cfg.model, 12288) == ([96, 128], [512, 512])
    three = model_cfg("model.axial_shape=[4,4,4]", "model.d_model=64").model
    assert axial_layout(three, 64) == ([4, 4, 4], [21, 21, 22])


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model.axial_shape=[8,4]"], ["[8, 4]", "32", "task.seq_len=64"]),
        (["model.axial_dims=[16,32]"], ["[16, 32]", "48", "model.d_model=64"]),
        (["model.axial_shape=[4,4,4]", "model.axial_dims=[32,32]"], ["3 axes", "2"]),
        (["model.axial_shape=[0,64]"], ["positive"]),
    ],
)
def test_layout_errors_are_one_line_naming_the_numbers(overrides, words):
    cfg = model_cfg(*overrides)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_embedding_is_the_concatenation_of_the_axis_tables():
    torch.manual_seed(0)
    axial = AxialPositions([3, 4, 2], [5, 2, 3])
    x = torch.randn(2, 24, 10)
    out = axial(x)
    a, b, c = axial.tables
    for pos in range(24):
        i, j, k = pos // 8, (pos // 2) % 4, pos % 2  # row-major: the last axis varies fastest
        expected = torch.cat([a[i], b[j], c[k]])
        assert torch.equal(out[:, pos], x[:, pos] + expected)


def test_a_grid_longer_than_the_sequence_is_accepted():
    cfg = compose(["model=large", "task.seq_len=1024"])  # laid out for 65,536 tokens
    validate(cfg)
    assert axial_layout(cfg.model, 1024) == ([128, 512], [256, 768])


def test_shorter_inputs_use_the_first_positions_longer_ones_are_an_error():
    axial = AxialPositions([4, 4], [3, 3])
    x = torch.zeros(1, 16, 6)
    assert torch.equal(axial(x[:, :10]), axial(x)[:, :10])
    with pytest.raises(UserError, match="longer"):
        axial(torch.zeros(1, 17, 6))


def test_axial_tables_are_trained_and_initialised_like_trax():
    from reformer_cli.model.reformer import build_model

    torch.manual_seed(0)
    model = build_model(compose(["model=tiny", "model.positions=axial"]), 16, 1024)
    tables = list(model.positions.tables)
    assert [tuple(t.shape) for t in tables] == [(32, 32), (32, 32)]
    values = torch.cat([t.flatten() for t in tables])
    assert 0.9 < values.std().item() < 1.1  # N(0, 1)
    tokens = torch.randint(0, 16, (1, 1024))
    model.loss(tokens, tokens, torch.ones(1, 1024)).loss_sum.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)
