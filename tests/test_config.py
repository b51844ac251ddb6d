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
        (["attention=lsh", "attention.rotations=per_batch"], "attention.rotations='per_batch' is not one of"),
    ],
)
def test_semantic_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))


def test_group_schemas_reject_unknown_keys():
    with pytest.raises(UserError, match=r"^unknown config key 'model.n_layer' \(did you mean 'model.n_layers'\?\) \(list the keys with"):
        compose(["model.n_layer=3"])


@pytest.mark.parametrize("override,expected", [
    ("atention=lsh", "unknown config key 'atention' (did you mean 'attention'?)"),
    ("trainer.max_step=3", "unknown config key 'trainer.max_step' (did you mean 'trainer.max_steps'?)"),
    ("task=synthtic", "unknown task 'synthtic' (did you mean 'synthetic'?)"),
    ("trainer.nonsense=1", "unknown config key 'trainer.nonsense' (list the keys"),  # nothing close: no guess
])
def test_a_misspelt_key_group_or_option_gets_a_did_you_mean(override, expected):
    with pytest.raises(UserError) as caught:
        compose([override])
    assert str(caught.value).startswith(expected), str(caught.value)


def numeric_options() -> list[tuple[list[str], str, str]]:
    """(selection, key, bad value) for every int and float option of every schema: -1 for an
    integer (no count, size or seed is negative), NaN for a float."""
    from dataclasses import fields

    from reformer_cli.config import SCHEMAS, RunConfig
    from reformer_cli.tasks import task_specs

    found = [([], f.name, "-1") for f in fields(RunConfig) if f.type == "int"]
    schemas = {**SCHEMAS, **{("task", spec.name): spec.schema for spec in task_specs()}}
    for (group, name), schema in schemas.items():
        select = [] if group == name else [f"{group}={name}"]
        if group == "task" and name == "text":
            select.append("task.path=corpus.txt")
        for f in fields(schema):
            kind = str(f.type).replace("Optional[", "").rstrip("]")
            if kind in ("int", "float"):
                found.append((select, f"{group}.{f.name}", "-1" if kind == "int" else "nan"))
    return found


@pytest.mark.parametrize("select, key, bad", numeric_options(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_numeric_option_is_checked(select, key, bad):
    """A value out of range (or NaN) is one ConfigError naming the key, for every numeric option."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose([*select, f"{key}={bad}"]))


@pytest.mark.parametrize("overrides, key", [
    (["+trainer.foo=1"], "trainer.foo"),
    (["++model.width=3"], "model.width"),
    (["+extra=1"], "extra"),
    (["attention=lsh", "+attention.rounds=4"], "attention.rounds"),
])
def test_keys_added_with_plus_are_refused(overrides, key):
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        validate(compose(overrides))


def test_eval_options_are_checked():
    from reformer_cli.config import validate_eval

    for override, key in (("max_batches=-1", "max_batches"), ("batch_size=0", "batch_size"),
                          ("+foo=1", "unknown config key 'foo'")):
        with pytest.raises(ConfigError, match=key):
            validate_eval(compose(["checkpoint=x", override], config_name="eval"))
