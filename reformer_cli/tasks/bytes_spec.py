"""Byte-level language modelling: enwik8 and any local text file, their configs, checks and data
on disk (data/bytes.py prepares them). The batches are made by tasks/bytes.py."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from ..data.bytes import load_enwik8, load_text, prepare_enwik8, prepare_text
from ..data.paths import text_default_dir
from ..errors import ConfigError
from .spec import COMMON_METRICS, PreparedTaskSpec

# enwik8 (docs/data.md, "enwik8"): the first 10^8 bytes of English Wikipedia, split by bytes.
ENWIK8_SPLIT_SIZES = [90_000_000, 5_000_000, 5_000_000]


@dataclass
class Enwik8TaskConfig:
    """enwik8 as bytes (reformer_cli/tasks/bytes.py). Prepare with `reformer data prepare task=enwik8`."""

    name: str = "enwik8"
    seq_len: int = 65536  # the paper's enwik8-64K
    # prepared split files + manifest.json; null: $REFORMER_DATA_DIR/enwik8, else
    # ${XDG_CACHE_HOME:-~/.cache}/reformer/enwik8
    data_dir: Optional[str] = None
    # bytes of train / valid / test; they must add up to the source's size (10^8 for enwik8)
    split_sizes: List[int] = field(default_factory=lambda: list(ENWIK8_SPLIT_SIZES))
    # checks at run start: size (file sizes vs manifest) | full (also sha256) | auto (full up to 2 GiB)
    verify: str = "auto"


@dataclass
class TextTaskConfig:
    """Any local file as bytes, the enwik8 pipeline with splits by fraction."""

    name: str = "text"
    seq_len: int = 1024
    path: Optional[str] = None  # the corpus file (required)
    # null: <cache>/text/<file stem>-<hash of its absolute path>
    data_dir: Optional[str] = None
    split_fractions: List[float] = field(default_factory=lambda: [0.9, 0.05, 0.05])
    verify: str = "auto"
    # the corpus's expected sha256 (64 hex digits): prepare and every run refuse another file
    sha256: Optional[str] = None


BYTE_METRICS = {**COMMON_METRICS, "bpc": False}


def fake_byte_splits(train_bytes: int) -> dict:
    """The layout `reformer bench data` fakes for a byte task: three splits of random bytes."""
    return {"sizes": {"train": train_bytes, "valid": 1 << 20, "test": 1 << 20}, "shape_tail": (),
            "suffix": ".bin", "variant": None}


class Enwik8Spec(PreparedTaskSpec):
    name = "enwik8"
    byte_tokens = True
    samples = "text"
    schema = Enwik8TaskConfig
    metric = "bpc"
    metrics = BYTE_METRICS
    data_usage = "enwik8 (downloaded)"
    official_checks = "the MD5 check (enwik8)"
    source_help = "enwik8: a downloaded enwik8.zip, the raw enwik8 file, or another URL"

    def check(self, cfg: Any) -> None:
        super().check(cfg)
        sizes = list(cfg.split_sizes)
        if len(sizes) != 3 or any(s < 1 for s in sizes):
            raise ConfigError(f"task.split_sizes={sizes} must be three positive byte counts (train, valid, test)")

    def build(self, cfg: Any, seed: int) -> Any:
        from .bytes import Enwik8Task

        return Enwik8Task(cfg, seed)

    def prepare(self, cfg: Any, *, source: str | None, verify: bool, force: bool) -> Any:
        return prepare_enwik8(cfg, source=source, verify=verify, force=force)

    def load(self, cfg: Any) -> tuple[Path, dict]:
        return load_enwik8(cfg)

    def bench_splits(self, train_bytes: int) -> dict:
        layout = fake_byte_splits(train_bytes)
        return {**layout, "params": {"split_sizes": list(layout["sizes"].values())}}

    def bench_config(self, cfg: Any, folder: Path, manifest: dict) -> None:
        cfg.data_dir = str(folder)
        cfg.split_sizes = manifest["params"]["split_sizes"]


class TextSpec(PreparedTaskSpec):
    name = "text"
    byte_tokens = True
    samples = "text"
    schema = TextTaskConfig
    metric = "bpc"
    metrics = BYTE_METRICS
    data_usage = "text (task.path=FILE)"
    reads = "task.path"
    no_official_checks = "a local text file has no official checksum"
    bench_layout = "enwik8"  # the same split files, read the same way

    def check(self, cfg: Any) -> None:  # a missing task.path is reported by the task (every option must validate)
        super().check(cfg)
        fractions = list(cfg.split_fractions)
        if len(fractions) != 3 or not all(math.isfinite(f) and f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise ConfigError(
                f"task.split_fractions={fractions} must be three positive fractions (train, valid, test)"
                " adding up to 1"
            )
        if cfg.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(cfg.sha256)):
            raise ConfigError(f"task.sha256={cfg.sha256} must be 64 hexadecimal digits (or null)")

    def build(self, cfg: Any, seed: int) -> Any:
        from .bytes import TextTask

        return TextTask(cfg, seed)

    def default_data_dir(self, cfg: Any) -> Path:
        return text_default_dir(cfg.path)

    def prepare(self, cfg: Any, *, source: str | None, verify: bool, force: bool) -> Any:
        return prepare_text(cfg, force=force)

    def load(self, cfg: Any) -> tuple[Path, dict]:
        return load_text(cfg)

    def provenance(self, manifest: dict) -> str:  # the user's own file: nothing official to check it against
        return f"source {manifest['source'].get('origin')} (your own file: no official checksum exists for it)"

    def bench_config(self, cfg: Any, folder: Path, manifest: dict) -> None:
        params = manifest["params"]
        cfg.data_dir = str(folder)
        cfg.path, cfg.split_fractions = params["source"], params["split_fractions"]

    def bench_prepare_hint(self, folder: Path) -> str:
        return f"reformer data prepare task=text task.path=<your text file> task.data_dir={folder}"


ENWIK8 = Enwik8Spec()
TEXT = TextSpec()
