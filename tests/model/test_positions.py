"""Learned positions: the init scale is a config choice (model.position_init_std)."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.errors import ConfigError
from reformer_cli.config import validate
from reformer_cli.model.reformer import build_model

from ..conftest import compose


@pytest.mark.parametrize("std", [0.02, 1.0])
def test_learned_position_table_starts_at_the_configured_scale(std):
    cfg = compose(["model=table2", f"model.position_init_std={std}"])
    torch.manual_seed(0)
    table = build_model(cfg, 128, cfg.task.seq_len).positions.table
    assert table.shape == (1024, 256)
    assert abs(table.std().item() - std) < 0.02 * std
    assert compose(["model=table2"]).model.position_init_std == 0.02  # the default is unchanged


def test_position_init_std_must_be_positive():
    with pytest.raises(ConfigError, match="model.position_init_std=0.0 must be a finite number > 0"):
        validate(compose(["model.position_init_std=0"]))


def test_configs_saved_before_the_option_still_build():
    """Checkpoints store their config; one written before position_init_std existed lacks it."""
    from omegaconf import OmegaConf

    saved = OmegaConf.to_container(compose(["model=table2"]), resolve=True)
    del saved["model"]["position_init_std"]
    torch.manual_seed(0)
    table = build_model(OmegaConf.create(saved), 128, saved["task"]["seq_len"]).positions.table
    assert abs(table.std().item() - 0.02) < 0.001
