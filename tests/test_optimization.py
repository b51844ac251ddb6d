"""The learning-rate schedules (optimization.py)."""

from __future__ import annotations

import math

import pytest

from reformer_cli.optimization import lr_at

from .conftest import compose


def trainer(**kw):
    cfg = compose([f"trainer.{k}={v}" for k, v in kw.items()])
    return cfg.trainer


def test_rsqrt_is_trax_multifactor_with_peak_lr():
    t = trainer(lr=0.01, warmup_steps=100, schedule="rsqrt")
    constant = 0.01 * math.sqrt(100)  # trax's 'constant' for the same curve
    for step in (1, 50, 100, 400, 10_000):
        trax = constant * min(1.0, step / 100) / math.sqrt(max(step, 100))
        assert lr_at(step, t) == pytest.approx(trax)
    assert lr_at(100, t) == pytest.approx(0.01)


def test_constant_and_cosine():
    t = trainer(lr=0.5, warmup_steps=10, schedule="constant")
    assert lr_at(5, t) == pytest.approx(0.25) and lr_at(500, t) == pytest.approx(0.5)
    t = trainer(lr=0.5, warmup_steps=10, schedule="cosine", max_steps=110)
    assert lr_at(10, t) == pytest.approx(0.5) and lr_at(60, t) == pytest.approx(0.25) and lr_at(110, t) == pytest.approx(0.0)
