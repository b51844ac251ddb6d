"""The duplication task of the paper's Table 2 (section 2.1): its config and checks. The batches
are made by tasks/synthetic.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import _positive, _seed
from ..errors import ConfigError
from .spec import COMMON_METRICS, TaskSpec


@dataclass
class SyntheticTaskConfig:
    """The duplication task of the paper's Table 2: sequences `0 w 0 w`, |w| = seq_len / 2 - 1."""

    name: str = "synthetic"
    seq_len: int = 1024
    vocab_size: int = 128  # symbols 1..vocab_size-1 (N = 127 in the paper) plus the separator 0
    eval_sequences: int = 512  # a fixed validation set drawn from `eval_seed`
    eval_seed: int = 1_000_003


class SyntheticSpec(TaskSpec):
    name = "synthetic"
    samples = "copies"
    schema = SyntheticTaskConfig
    metric = "accuracy"
    metrics = {**COMMON_METRICS, "bits": False}

    def check(self, cfg: Any) -> None:
        if cfg.seq_len < 4 or cfg.seq_len % 2:
            raise ConfigError(f"task.seq_len={cfg.seq_len}: the duplication task needs an even length >= 4")
        if cfg.vocab_size < 2:
            raise ConfigError(f"task.vocab_size={cfg.vocab_size} must be >= 2")
        _positive("task.eval_sequences", cfg.eval_sequences)
        _seed("task.eval_seed", cfg.eval_seed)

    def build(self, cfg: Any, seed: int) -> Any:
        from .synthetic import SyntheticTask

        return SyntheticTask(cfg, seed)


SYNTHETIC = SyntheticSpec()
