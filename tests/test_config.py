"""Every config option composes and validates; semantic checks catch bad combinations."""

from __future__ import annotations

import pytest

from reformer_cli.config import validate
from reformer_cli.errors import ConfigError, UserError
from reformer_cli.hydra_entry import CONF_DIR

from .conftest import compose

GROUPS = ["model", "attention", "layer", "task", "trainer", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}"])
    validate(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.schedule=linear"], "trainer.schedule"),
        (["trainer.betas=[0.9]"], "trainer.betas"),
        (["task.seq_len=7"], "even length"),
        (["model.dropout=1.5"], "model.dropout"),
        (["trainer.device=tpu"], "trainer.device"),
        (["logger.mode=sometimes"], "logger.mode"),
        (["attention=full", "attention.self_mask=false"], "attention.self_mask=false applies to shared-QK"),
        (["attention=full", "attention.shared_qk_keys=raw"], "attention.shared_qk_keys=raw applies to shared-QK"),
        (["attention=full", "attention.self_mask_value=-32"], "attention.self_mask_value=-32.0 applies"),
        (["attention=full", "attention.self_mask_mode=add"], "attention.self_mask_mode=add applies"),
        (["attention=full", "attention.shared_qk=true", "attention.self_mask_mode=sub"], "attention.self_mask_mode='sub'"),
        (["attention=full", "attention.shared_qk=true", "attention.shared_qk_keys=scaled"],
         "attention.shared_qk_keys='scaled' is not one of"),
    ],
)
def test_semantic_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))


def test_group_schemas_reject_unknown_keys():
    with pytest.raises(UserError, match=r"^unknown config key 'model.n_layer' \(list the keys with"):
        compose(["model.n_layer=3"])
