"""manifest.json: what a prepared dataset folder holds, and the checks that decide to trust it.

    {"format": 1, "task": "enwik8", "variant": null,
     "params": {"split_sizes": [...]},                 what the task config asked for
     "source": {"origin": ..., "bytes": ..., "md5": ..., "sha256": ...,
                "verified": true, "checks_skipped": []},  what it was made from
     "splits": {"train": {"file": "train.bin", "bytes": ..., "shape": [...], "dtype": "uint8",
                          "sha256": ...}, ...},
     "data_sha256": ...}                               one checksum over the split files

The manifest is written last, after every split file is in place, so a folder with a manifest is
complete; a missing manifest means "not prepared". At the start of a run the split files are
checked against it: always by size (a truncated file is caught at once), and by sha256 when
`task.verify` is `full`, or `auto` and the splits add up to at most 2 GiB (enwik8: 100 MB, about
0.3 s). Larger data (imagenet64, about 16 GB) is hashed by `reformer data prepare` and
`reformer data verify`, not on every run start.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import DataError
from .files import sha256_file, write_bytes_atomic

MANIFEST = "manifest.json"
FORMAT = 1
FULL_HASH_LIMIT = 2 << 30  # `verify: auto` hashes at run start up to this many bytes


def data_checksum(splits: dict[str, dict]) -> str:
    """One sha256 naming the prepared data: over the sorted (split, sha256) pairs."""
    text = "\n".join(f"{name} {splits[name]['sha256']}" for name in sorted(splits))
    return hashlib.sha256(text.encode()).hexdigest()


def build_manifest(task: str, variant: str | None, params: dict, source: dict, splits: dict) -> dict:
    return {
        "format": FORMAT,
        "task": task,
        "variant": variant,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "reformer_version": __version__,
        "params": params,
        "source": source,
        "splits": splits,
        "data_sha256": data_checksum(splits),
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    write_bytes_atomic(Path(folder) / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def read_manifest(folder: Path, fix: str) -> dict | None:
    """The manifest of `folder`, or None if there is none. An unreadable one is a DataError."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("splits"), dict):
            raise ValueError(f"format {manifest.get('format')!r} is not {FORMAT}")
        for entry in manifest["splits"].values():
            for key in ("file", "bytes", "sha256", "shape"):
                if key not in entry:
                    raise ValueError(f"a split has no '{key}'")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"{path} cannot be read ({exc}); {fix}") from None
    return manifest


def mismatch(manifest: dict, task: str, variant: str | None, params: dict) -> str | None:
    """Why this manifest does not describe the data the config asks for (None if it does)."""
    if manifest.get("task") != task:
        return f"it holds task '{manifest.get('task')}', not '{task}'"
    if manifest.get("variant") != variant:
        return f"it holds variant '{manifest.get('variant')}', not '{variant}' (never mixed)"
    have = manifest.get("params", {})
    for key, value in params.items():
        if have.get(key) != value:
            return f"it was prepared with {key}={have.get(key)}, the config asks for {value}"
    return None


def wants_full_hash(policy: str, manifest: dict) -> bool:
    if policy == "full":
        return True
    if policy == "size":
        return False
    return sum(entry["bytes"] for entry in manifest["splits"].values()) <= FULL_HASH_LIMIT


def check_split_files(folder: Path, manifest: dict, *, full: bool, fix: str, progress: bool = False) -> None:
    """Every split file exists with the manifest's size (and sha256 when `full`), else a DataError
    naming the file."""
    folder = Path(folder)
    for name, entry in manifest["splits"].items():
        path = folder / entry["file"]
        if not path.is_file():
            raise DataError(f"{path} is missing (listed in {folder / MANIFEST}); {fix}")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise DataError(
                f"{path} is truncated or replaced: {size:,} bytes, the manifest says {entry['bytes']:,}; {fix}"
            )
    if not full:
        return
    for name, entry in manifest["splits"].items():
        path = folder / entry["file"]
        digest = sha256_file(path, desc=f"sha256 {path.name}" if progress else None)
        if digest != entry["sha256"]:
            raise DataError(
                f"{path} is corrupted: its sha256 {digest[:16]}... differs from the manifest's"
                f" {entry['sha256'][:16]}...; {fix}"
            )


def load_prepared(
    folder: Path, *, task: str, variant: str | None, params: dict, verify: str, fix: str, missing: str
) -> dict:
    """The manifest of a prepared folder after checking it matches the config and its files are
    intact; `missing` is the message when nothing is prepared, `fix` how to repair."""
    manifest = read_manifest(folder, fix)
    if manifest is None:
        raise DataError(missing)
    why = mismatch(manifest, task, variant, params)
    if why is not None:
        raise DataError(f"{Path(folder) / MANIFEST} does not match the config: {why}; {fix}")
    check_split_files(folder, manifest, full=wants_full_hash(verify, manifest), fix=fix)
    return manifest


def prepared_manifest(folder: Path, *, task: str, variant: str | None, params: dict) -> dict | None:
    """The manifest of `folder` if it is complete and matches the config (files checked by size),
    else None: what `prepare` uses to decide there is nothing to do."""
    try:
        return load_prepared(folder, task=task, variant=variant, params=params, verify="size", fix="", missing="")
    except DataError:
        return None
