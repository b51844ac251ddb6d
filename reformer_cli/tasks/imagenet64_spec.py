"""ImageNet 64x64 density estimation: its config, checks and data on disk (data/imagenet64.py
prepares them; 64 x 64 x 3 = 12,288 tokens an image is `data.imagenet64.TOKENS`). The batches are
made by tasks/imagenet64.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..config import _choice
from ..data.paths import as_path, data_root, task_data_dir
from ..errors import ConfigError
from .spec import COMMON_METRICS, PreparedTaskSpec


@dataclass
class ImageNet64TaskConfig:
    """64x64x3 images as 12,288 tokens in (row, column, channel) order; bits per dim."""

    name: str = "imagenet64"
    variant: str = "oord"  # oord (the paper's, PNG tars) | chrabaszcz (npz/pickle batches); never mixed
    seq_len: int = 12288  # a divisor of 12,288 cuts each image into independent windows (CPU tests)
    # the downloaded files; null: <cache>/imagenet64/<variant>
    data_dir: Optional[str] = None
    # the prepared memmap + manifest.json; null: <data_dir>/prepared
    prepared_dir: Optional[str] = None
    verify: str = "auto"


class ImageNet64Spec(PreparedTaskSpec):
    name = "imagenet64"
    samples = "images"
    schema = ImageNet64TaskConfig
    metric = "bits_per_dim"
    metrics = {**COMMON_METRICS, "bits_per_dim": False}
    data_usage = "imagenet64 (task.variant=oord|chrabaszcz, task.data_dir=DIR holding the downloaded files)"
    official_checks = "the image counts (imagenet64)"

    def check(self, cfg: Any) -> None:
        from ..data.imagenet64 import FILES, TOKENS

        super().check(cfg)
        _choice("task.variant", cfg.variant, tuple(FILES))
        if TOKENS % cfg.seq_len:
            raise ConfigError(
                f"task.seq_len={cfg.seq_len} must divide {TOKENS} (64x64x3; the paper uses all of it)"
            )

    def build(self, cfg: Any, seed: int) -> Any:
        from .imagenet64 import ImageNet64Task

        return ImageNet64Task(cfg, seed)

    def default_data_dir(self, cfg: Any) -> Path:
        return data_root() / self.name / cfg.variant

    def prepared_dir(self, cfg: Any) -> Path:
        """Apart from the downloaded files: `task.prepared_dir`, default `<data_dir>/prepared`."""
        return as_path(cfg.prepared_dir) if cfg.get("prepared_dir") else task_data_dir(cfg) / "prepared"

    def prepare(self, cfg: Any, *, source: str | None, verify: bool, force: bool) -> Any:
        from ..data.imagenet64 import prepare_imagenet64

        return prepare_imagenet64(cfg, verify=verify, force=force)

    def load(self, cfg: Any) -> tuple[Path, dict]:
        from ..data.imagenet64 import load_imagenet64

        return load_imagenet64(cfg)

    def bench_splits(self, train_bytes: int) -> dict:
        from ..data.imagenet64 import TOKENS

        return {"sizes": {"train": train_bytes - train_bytes % TOKENS, "valid": TOKENS * 8}, "shape_tail": (TOKENS,),
                "suffix": ".u8", "variant": "oord", "params": {"tokens": TOKENS}}

    def bench_config(self, cfg: Any, folder: Path, manifest: dict) -> None:
        cfg.prepared_dir, cfg.variant = str(folder), manifest["variant"]

    def bench_prepare_hint(self, folder: Path) -> str:
        return f"reformer data prepare task=imagenet64 task.prepared_dir={folder} (the raw files in task.data_dir=...)"


IMAGENET64 = ImageNet64Spec()
