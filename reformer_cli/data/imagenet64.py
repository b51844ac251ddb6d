"""ImageNet 64x64 from the user's files -> train.u8 / valid.u8, uint8 [N, 12288] + manifest.

Two different datasets, never mixed (docs/data.md, "imagenet64"); `task.variant` says which:

- `oord` (the paper's: "Downsampled ImageNet", van den Oord et al. 2016; T2T's ImageImagenet64Gen,
  TFDS downsampled_imagenet/64x64): `train_64x64.tar` and `valid_64x64.tar`, tars of 64x64 RGB
  PNGs, 1,281,149 and 49,999 images. From http://image-net.org/small/download.php.
- `chrabaszcz` (Chrabaszcz, Loshchilov & Hutter 2017, "Imagenet64x64", a box-resized classification
  set): `train_data_batch_1` .. `train_data_batch_10` and `val_data`, each a pickle or .npz holding
  `data` as [N, 12288] uint8 channel-major (reshape to [N, 3, 64, 64]), 1,281,167 and 50,000
  images; labels are not used. From https://image-net.org/download-images.php (login needed).

Each image becomes 12,288 tokens in (row, column, channel) order: token r*192 + c*3 + ch is the
value of channel ch of the pixel at row r, column c. The paper has no test split: `valid` is the
held-out set. Images keep the order of the files (tar order; batch 1..10).

No official checksums exist for either variant; the image counts are checked instead (`--no-verify`
skips that, and the manifest says so), and the manifest records the sha256 of the prepared files.
PNGs are decoded with Pillow (`pip install pillow`, the `data` extra).
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import DataError
from .bytes import PrepareResult
from .files import StagedFile, progress_bar, remove_stale_temps
from .manifest import MANIFEST, build_manifest, load_prepared, prepared_manifest, read_manifest, write_manifest
from .paths import prepare_command, prepared_dir, task_data_dir

SIDE, CHANNELS = 64, 3
TOKENS = SIDE * SIDE * CHANNELS  # 12,288
SPLITS = ("train", "valid")

OORD_FILES = {"train": ["train_64x64.tar"], "valid": ["valid_64x64.tar"]}
OORD_COUNTS = {"train": 1_281_149, "valid": 49_999}
OORD_URL = "http://image-net.org/small/download.php"
CHRABASZCZ_FILES = {"train": [f"train_data_batch_{i}" for i in range(1, 11)], "valid": ["val_data"]}
CHRABASZCZ_COUNTS = {"train": 1_281_167, "valid": 50_000}
CHRABASZCZ_URL = "https://image-net.org/download-images.php (Downsampled ImageNet 64x64, login needed)"
CHRABASZCZ_SUFFIXES = ("", ".npz", ".pkl", ".pickle")

FILES = {"oord": OORD_FILES, "chrabaszcz": CHRABASZCZ_FILES}
COUNTS = {"oord": OORD_COUNTS, "chrabaszcz": CHRABASZCZ_COUNTS}
SOURCES = {
    "oord": f"download train_64x64.tar and valid_64x64.tar from {OORD_URL}",
    "chrabaszcz": f"download Imagenet64_train_part1/2 and Imagenet64_val (.zip or _npz.zip) from {CHRABASZCZ_URL}"
                  " and unzip them",
}


def split_file(split: str) -> str:
    return f"{split}.u8"


# ---------------------------------------------------------------------------------- raw files


def _find(folder: Path, name: str, suffixes: tuple[str, ...]) -> Path | None:
    """`name` (with one of `suffixes`) in `folder` or one of its sub-folders (an unzipped part)."""
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
    for place in places:
        for suffix in suffixes:
            path = place / (name + suffix)
            if path.is_file():
                return path
    return None


def _locate(variant: str, folder: Path) -> tuple[dict[str, list[Path]], list[str]]:
    suffixes = ("",) if variant == "oord" else CHRABASZCZ_SUFFIXES
    found: dict[str, list[Path]] = {}
    missing: list[str] = []
    for split, names in FILES[variant].items():
        for name in names:
            path = _find(folder, name, suffixes)
            if path is None:
                missing.append(name)
            else:
                found.setdefault(split, []).append(path)
    return found, missing


def raw_files(task: Any) -> dict[str, list[Path]]:
    """The variant's files in `task.data_dir`; a DataError names what is missing and where to get it."""
    variant, folder = task.variant, task_data_dir(task)
    found, missing = _locate(variant, folder)
    if not missing:
        return found
    other = "chrabaszcz" if variant == "oord" else "oord"
    hint = ""
    if not _locate(other, folder)[1]:
        hint = f" ({folder} holds the {other} files: set task.variant={other})"
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    raise DataError(
        f"imagenet64 ({variant}): {shown} not found in {folder}{hint}; {SOURCES[variant]} into that folder"
        f" (or set task.data_dir=DIR), then run `{prepare_command(task)}`"
    )


# ---------------------------------------------------------------------------------- decoding


def channel_major_to_rco(data: np.ndarray) -> np.ndarray:
    """[N, 12288] channel-major (chrabaszcz: [N, 3, 64, 64]) -> [N, 12288] (row, column, channel)."""
    n = data.shape[0]
    return np.ascontiguousarray(data.reshape(n, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)).reshape(n, TOKENS)


def decode_png(data: bytes, where: str) -> np.ndarray:
    """One PNG -> [12288] uint8 in (row, column, channel) order."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            "Pillow is needed to decode the imagenet64 oord PNGs: pip install pillow"
            " (or pip install 'reformer-cli[data]')"
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode, size = image.mode, image.size
            pixels = np.asarray(image, dtype=np.uint8)
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise DataError(f"{where} is not a readable PNG ({type(exc).__name__}: {exc})") from None
    if mode != "RGB" or size != (SIDE, SIDE):
        raise DataError(f"{where} is a {size[0]}x{size[1]} {mode} image; expected 64x64 RGB")
    return pixels.reshape(TOKENS)  # numpy's [row, column, channel] layout


def oord_images(tar_path: Path) -> Iterator[np.ndarray]:
    """The PNGs of an oord tar in tar order, each [1, 12288]; read as a stream (one pass)."""
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                where = f"{tar_path}:{member.name}"
                if not member.name.lower().endswith(".png"):
                    raise DataError(f"{where} is not a PNG; the oord tars hold only 64x64 PNGs")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise EOFError(f"{member.name} is cut short")
                yield decode_png(data, where)[None]
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{tar_path} is truncated or corrupted ({exc}): download it again") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (a pickle can run any code otherwise)."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol-2 pickles store bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def load_batch(path: Path) -> np.ndarray:
    """`data` of one chrabaszcz batch (npz or pickle) as [N, 12288] uint8, channel-major."""
    try:
        if zipfile.is_zipfile(path):  # .npz
            with np.load(path, allow_pickle=False) as npz:
                if "data" not in npz.files:
                    raise DataError(f"{path} has no array 'data' (arrays: {', '.join(npz.files)})")
                data = npz["data"]
        else:
            with open(path, "rb") as f:
                batch = _ArrayUnpickler(f, encoding="latin1").load()
            if not isinstance(batch, dict) or "data" not in batch:
                raise DataError(f"{path} does not hold a dict with 'data' (an Imagenet64x64 batch)")
            data = np.asarray(batch["data"])
    except DataError:
        raise
    except Exception as exc:  # truncated npz / pickle, wrong contents
        raise DataError(f"{path} is truncated or corrupted ({type(exc).__name__}: {exc}): download it again") from None
    if data.ndim != 2 or data.shape[1] != TOKENS or data.dtype != np.uint8:
        raise DataError(f"{path}: 'data' is {data.dtype} {list(data.shape)}, expected uint8 [N, {TOKENS}]")
    return data


def chrabaszcz_images(path: Path, rows: int = 4096) -> Iterator[np.ndarray]:
    data = load_batch(path)
    for start in range(0, data.shape[0], rows):
        yield channel_major_to_rco(data[start : start + rows])


# ---------------------------------------------------------------------------------- prepare


def _missing_message(task: Any, folder: Path) -> str:
    try:
        raw_files(task)
    except DataError as exc:
        return str(exc)
    return (
        f"imagenet64 ({task.variant}) is not prepared (no {MANIFEST} in {folder}): run"
        f" `{prepare_command(task)}` (converts the files of {task_data_dir(task)} to one memory-mapped file)"
    )


def load_imagenet64(task: Any) -> tuple[Path, dict]:
    """(folder, manifest) of the prepared variant, checked against the config; DataError otherwise."""
    folder = prepared_dir(task)
    fix = f"rerun `{prepare_command(task, '--force')}`"
    missing = _missing_message(task, folder) if read_manifest(folder, fix) is None else ""
    manifest = load_prepared(folder, task="imagenet64", variant=task.variant, params={"tokens": TOKENS},
                             verify=task.verify, fix=fix, missing=missing)
    return folder, manifest


def prepare_imagenet64(task: Any, *, verify: bool = True, force: bool = False) -> PrepareResult:
    """Convert the variant's files to train.u8 / valid.u8 ([N, 12288] uint8, row-column-channel).
    `verify` checks the image counts of the full dataset."""
    variant, out = task.variant, prepared_dir(task)
    params = {"tokens": TOKENS}
    existing = None if force else prepared_manifest(out, task="imagenet64", variant=variant, params=params)
    if existing is not None:
        return PrepareResult(out, existing, changed=False)
    files = raw_files(task)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    remove_stale_temps(out, [split_file(s) for s in SPLITS] + [MANIFEST])

    staged: dict[str, StagedFile] = {}
    counts: dict[str, int] = {}
    try:
        for split in SPLITS:
            expected = COUNTS[variant][split]
            target = staged[split] = StagedFile(out / split_file(split))
            bar = progress_bar(expected, f"{variant} {split}", unit="img")
            try:
                for path in files[split]:
                    images = oord_images(path) if variant == "oord" else chrabaszcz_images(path)
                    for rows in images:
                        target.write(memoryview(rows).cast("B"))
                        bar.update(rows.shape[0])
            finally:
                bar.close()
            target.close()
            counts[split] = target.bytes // TOKENS
            if counts[split] == 0:
                raise DataError(f"imagenet64 ({variant}): no images in {', '.join(map(str, files[split]))}")
            if verify and counts[split] != expected:
                raise DataError(
                    f"imagenet64 ({variant}) {split}: {counts[split]:,} images in"
                    f" {', '.join(map(str, files[split]))}, the full set has {expected:,} (a partial download?"
                    " pass --no-verify to use these files anyway)"
                )
    except BaseException:
        for target in staged.values():
            target.discard()
        raise
    for target in staged.values():
        target.commit()
    splits = {
        split: {"file": split_file(split), "bytes": staged[split].bytes, "shape": [counts[split], TOKENS],
                "dtype": "uint8", "sha256": staged[split].sha256.hexdigest()}
        for split in SPLITS
    }
    source = {
        "origin": str(task_data_dir(task)),
        "files": {split: [{"path": str(p), "bytes": p.stat().st_size} for p in paths] for split, paths in files.items()},
        "images": counts, "official_images": COUNTS[variant],
        "verified": verify, "checks_skipped": [] if verify else ["image counts"],
    }
    manifest = build_manifest("imagenet64", variant, params, source, splits)
    write_manifest(out, manifest)
    return PrepareResult(out, manifest, changed=True)
