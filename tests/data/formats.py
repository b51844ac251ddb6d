"""Small files in the exact formats of the real datasets (the real ones cannot be downloaded here).

- enwik8: a zip holding a member named `enwik8` (deflated, as the official zip), of text-like bytes;
- imagenet64 oord: a tar of 64x64 RGB PNGs under `train_64x64/` / `valid_64x64/`;
- imagenet64 chrabaszcz: `train_data_batch_1..10` and `val_data` as .npz or as pickles of a dict
  with `data` [N, 12288] uint8 channel-major, `labels` 1-indexed and `mean`.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

WORDS = [b"the", b"reformer", b"[[attention]]", b"&lt;page&gt;", b"\n", b"wiki", b"\xc3\xa9t\xc3\xa9", b"1999", b"\x00"]


def text_bytes(n: int, seed: int = 0) -> bytes:
    """`n` bytes of wiki-like text (UTF-8 and a few NUL bytes, which must stay distinct tokens)."""
    rng = np.random.default_rng(seed)
    out = bytearray()
    while len(out) < n:
        out += WORDS[int(rng.integers(len(WORDS)))] + b" "
    return bytes(out[:n])


def enwik8_zip(path: Path, data: bytes, member: str = "enwik8") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path


def images(n: int, seed: int = 0) -> np.ndarray:
    """[n, 64, 64, 3] uint8 (row, column, channel)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def png(image: np.ndarray, mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def oord_tar(path: Path, pictures: np.ndarray, folder: str, extra: dict[str, bytes] | None = None) -> Path:
    """A tar of PNGs `<folder>/<i>.png` in array order (as `train_64x64.tar`)."""
    with tarfile.open(path, "w") as tar:
        dir_info = tarfile.TarInfo(folder)
        dir_info.type = tarfile.DIRTYPE
        tar.addfile(dir_info)
        members = {f"{folder}/{i:07d}.png": png(p) for i, p in enumerate(pictures)}
        members.update(extra or {})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def oord_dataset(folder: Path, train: np.ndarray, valid: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    oord_tar(folder / "train_64x64.tar", train, "train_64x64")
    oord_tar(folder / "valid_64x64.tar", valid, "valid_64x64")
    return folder


def channel_major(pictures: np.ndarray) -> np.ndarray:
    """[n, 64, 64, 3] -> [n, 12288] channel-major, the chrabaszcz layout."""
    return np.ascontiguousarray(pictures.transpose(0, 3, 1, 2)).reshape(len(pictures), -1)


def chrabaszcz_batch(path: Path, pictures: np.ndarray, fmt: str) -> Path:
    batch = {
        "data": channel_major(pictures),
        "labels": [int(i % 1000) + 1 for i in range(len(pictures))],  # 1-indexed
        "mean": channel_major(pictures).mean(axis=0),
    }
    if fmt == "npz":
        np.savez(path, data=batch["data"], labels=np.array(batch["labels"]), mean=batch["mean"])
        return path.with_suffix(".npz")
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    return path


def chrabaszcz_dataset(folder: Path, train: np.ndarray, valid: np.ndarray, fmt: str = "npz") -> Path:
    """The ten train batches (train split evenly, in order) and val_data, as the unzipped parts:
    batches 1-5 in Imagenet64_train_part1/, 6-10 in Imagenet64_train_part2/, val in Imagenet64_val/."""
    parts = np.array_split(np.arange(len(train)), 10)
    for i, idx in enumerate(parts, start=1):
        sub = folder / ("Imagenet64_train_part1" if i <= 5 else "Imagenet64_train_part2")
        sub.mkdir(parents=True, exist_ok=True)
        chrabaszcz_batch(sub / f"train_data_batch_{i}", train[idx], fmt)
    (folder / "Imagenet64_val").mkdir(parents=True, exist_ok=True)
    chrabaszcz_batch(folder / "Imagenet64_val" / "val_data", valid, fmt)
    return folder
