"""The data tasks' config checks: one line before any work, the real enwik8 split the default."""

from __future__ import annotations

import pytest

from reformer_cli.config import validate_task
from reformer_cli.tasks.bytes_spec import ENWIK8_SPLIT_SIZES
from reformer_cli.errors import ConfigError

from ..conftest import compose


def test_defaults_are_the_papers():
    enwik8 = compose(["task=enwik8"]).task
    assert list(enwik8.split_sizes) == ENWIK8_SPLIT_SIZES == [90_000_000, 5_000_000, 5_000_000]
    assert enwik8.seq_len == 65536 and enwik8.verify == "auto"
    imagenet = compose(["task=imagenet64"]).task
    assert imagenet.variant == "oord" and imagenet.seq_len == 12288
    for name in ("enwik8", "imagenet64"):
        validate_task(compose([f"task={name}"]).task)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["task=enwik8", "task.split_sizes=[90000000,10000000]"], "must be three positive byte counts"),
        (["task=enwik8", "task.split_sizes=[1,0,1]"], "must be three positive byte counts"),
        (["task=enwik8", "task.verify=sometimes"], "task.verify='sometimes' is not one of: auto, size, full"),
        (["task=text", "task.path=x", "task.split_fractions=[0.9,0.1,0]"], "three positive fractions"),
        (["task=text", "task.path=x", "task.split_fractions=[0.5,0.1,0.1]"], "adding up to 1"),
        (["task=imagenet64", "task.variant=both"], "task.variant='both' is not one of: oord, chrabaszcz"),
        (["task=imagenet64", "task.seq_len=1000"], "task.seq_len=1000 must divide 12288"),
    ],
)
def test_bad_values_are_one_line_config_errors(overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        validate_task(compose(overrides).task)


def test_text_without_a_path_is_stopped_by_the_task():
    from reformer_cli.errors import DataError
    from reformer_cli.tasks import build_task

    with pytest.raises(DataError, match=r"task=text needs task.path=FILE.*reformer data prepare task=text"):
        build_task(compose(["task=text"]).task, seed=0).check_data()
