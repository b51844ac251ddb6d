"""enwik8 and any local text file as bytes: a source -> train.bin / valid.bin / test.bin + manifest.

enwik8 (docs/data.md, "enwik8"): the member `enwik8` of
http://mattmahoney.net/dc/enwik8.zip, 100,000,000 bytes, MD5 a1fa5ffddb56f4953e226637dabbb36a,
split by bytes into [0, 90M) train, [90M, 95M) valid, [95M, 100M) test (as
salesforce/awd-lstm-lm's prep_enwik8.py; T2T reads the file in text mode, so its split may be by
decoded characters instead). The MD5 of the member is checked, not the zip's (the zip's listed
size changed over the years). `--no-verify` uses another file: the manifest then records that the
check was skipped, and the MD5 / sha256 of what was used.

text: any local file, the same pipeline, split by `task.split_fractions`. At run start the corpus
is compared with the one prepared: by size, and by content (sha256) when it is small or its
modification time changed (`source_changed`), so an edit that keeps the size is caught too.

Split files are raw uint8, one byte per token, read with np.memmap. Nothing is trusted until the
manifest is written, which happens last.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..errors import DataError
from .download import download, is_url
from .files import StagedFile, make_folder, progress_bar, read_chunks, remove_empty, remove_stale_temps, sha256_file
from .manifest import MANIFEST, build_manifest, load_prepared, prepared_manifest, read_manifest, write_manifest
from .paths import as_path, prepare_command, task_data_dir

ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
ENWIK8_ZIP = "enwik8.zip"
ENWIK8_MEMBER = "enwik8"
ENWIK8_BYTES = 100_000_000
ENWIK8_MD5 = "a1fa5ffddb56f4953e226637dabbb36a"
SPLITS = ("train", "valid", "test")


def split_file(split: str) -> str:
    return f"{split}.bin"


@dataclass
class PrepareResult:
    folder: Path
    manifest: dict
    changed: bool  # False: the folder was already prepared, nothing was done

    def summary(self) -> str:
        m = self.manifest
        splits = ", ".join(f"{name} {entry['bytes']:,} B" for name, entry in m["splits"].items())
        state = "prepared" if self.changed else "already prepared (--force redoes it)"
        variant = f" ({m['variant']})" if m.get("variant") else ""
        checked = "" if m["source"].get("verified") else "; official checks SKIPPED (--no-verify)"
        return f"{m['task']}{variant} {state} in {self.folder}: {splits}; data sha256 {m['data_sha256'][:16]}{checked}"


# ------------------------------------------------------------------------------------- sources


@contextlib.contextmanager
def open_bytes(path: Path, member: str | None) -> Iterator[tuple[BinaryIO, int, str]]:
    """(stream, length, description) of a raw file, or of `member` when `path` is a zip."""
    if member is not None and zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path} is not a readable zip file ({exc}): delete it and download it again") from None
        with archive:
            if member not in archive.namelist():
                names = ", ".join(archive.namelist()[:5]) or "none"
                raise DataError(f"{path} has no member '{member}' (members: {names})")
            info = archive.getinfo(member)
            with archive.open(info) as stream:
                yield stream, info.file_size, f"{path}:{member}"
        return
    if member is not None and (path.suffix == ".zip" or path.name.endswith(".zip.part")):
        raise DataError(f"{path} is not a complete zip file (a truncated download?): delete it and download it again")
    with open(path, "rb") as stream:
        yield stream, path.stat().st_size, str(path)


def write_splits(stream: BinaryIO, length: int, sizes: list[int], folder: Path, what: str) -> tuple[dict, dict]:
    """Copy `stream` into the split files (staged), hashing as it goes. Returns (source facts,
    split entries) with the files still staged; the caller commits them via the returned entries."""
    staged = [StagedFile(folder / split_file(name)) for name in SPLITS]
    md5, sha = hashlib.md5(), hashlib.sha256()
    bar = progress_bar(length, f"split {Path(what).name}")
    try:
        for out, size in zip(staged, sizes):
            for chunk in read_chunks(stream, size):
                md5.update(chunk)
                sha.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
            out.close()
            if out.bytes != size:
                total = sum(f.bytes for f in staged)
                raise DataError(f"{what} ended after {total:,} bytes, expected {length:,}: the file is truncated")
        if stream.read(1):  # for a zip member this read also checks the CRC
            raise DataError(f"{what} holds more than the {length:,} bytes expected")
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        for out in staged:
            out.discard()
        raise DataError(f"{what} is corrupted ({exc}): delete it and download it again") from None
    except BaseException:
        for out in staged:
            out.discard()
        raise
    finally:
        bar.close()
    source = {"bytes": length, "md5": md5.hexdigest(), "sha256": sha.hexdigest()}
    splits = {
        name: {"file": split_file(name), "bytes": out.bytes, "shape": [out.bytes], "dtype": "uint8",
               "sha256": out.sha256.hexdigest(), "_staged": out}
        for name, out in zip(SPLITS, staged)
    }
    return source, splits


def commit_splits(splits: dict) -> dict:
    for entry in splits.values():
        entry.pop("_staged").commit()
    return splits


def discard_splits(splits: dict) -> None:
    for entry in splits.values():
        staged = entry.pop("_staged", None)
        if staged is not None:
            staged.discard()


def start_over(folder: Path) -> None:
    """Remove the manifest first (nothing trusts the folder while its files are replaced)."""
    (folder / MANIFEST).unlink(missing_ok=True)
    remove_stale_temps(folder, [split_file(s) for s in SPLITS] + [MANIFEST])


# ------------------------------------------------------------------------------------- enwik8


def enwik8_params(task: Any) -> dict:
    return {"split_sizes": [int(s) for s in task.split_sizes]}


def enwik8_missing(task: Any, folder: Path) -> str:
    return (
        f"enwik8 is not prepared in {folder} (no {MANIFEST}): run `{prepare_command(task)}` to download"
        f" {ENWIK8_URL} (36 MB) and split it, or point task.data_dir at a prepared folder"
    )


def load_enwik8(task: Any) -> tuple[Path, dict]:
    """(folder, manifest) of prepared enwik8, checked against the config; DataError otherwise."""
    folder = task_data_dir(task)
    fix = f"rerun `{prepare_command(task, '--force')}`"
    manifest = load_prepared(folder, task="enwik8", variant=None, params=enwik8_params(task),
                             verify=task.verify, fix=fix, missing=enwik8_missing(task, folder))
    return folder, manifest


def prepare_enwik8(task: Any, *, source: str | None = None, verify: bool = True, force: bool = False) -> PrepareResult:
    """Download (or take `source`: a zip, a raw file or a URL), check the MD5 of the member unless
    `verify` is False, split by `task.split_sizes`, write the manifest. A folder whose manifest
    matches the config is left alone unless `force`."""
    folder = task_data_dir(task)
    params = enwik8_params(task)
    sizes = params["split_sizes"]
    existing = None if force else prepared_manifest(folder, task="enwik8", variant=None, params=params)
    if existing is not None:
        return PrepareResult(folder, existing, changed=False)
    created = make_folder(folder)

    zip_path = folder / ENWIK8_ZIP
    downloaded: Path | None = None
    if source is None and zip_path.is_file():
        path, origin = zip_path, f"{ENWIK8_URL} (downloaded earlier to {zip_path})"
    elif source is None or is_url(source):
        origin = source or ENWIK8_URL
        fallback = (f"download {origin} yourself and run `{prepare_command(task, '--source PATH')}`")
        try:
            path = downloaded = download(origin, zip_path, fallback=fallback)
        except DataError:
            remove_empty(created)  # a failed download leaves no empty cache folder behind
            raise
    else:
        path, origin = as_path(source), str(as_path(source))
        if not path.is_file():
            raise DataError(f"--source {path} does not exist; give the downloaded enwik8.zip or the raw enwik8 file")

    if source is None or is_url(source):
        redo = f"delete {zip_path} and rerun `{prepare_command(task)}`" if downloaded is None else \
            f"rerun `{prepare_command(task)}` to download it again"
    else:
        redo = f"download {ENWIK8_URL} again and pass it with --source"
    try:
        with open_bytes(path, ENWIK8_MEMBER) as (stream, length, what):
            if verify and length != ENWIK8_BYTES:
                raise DataError(
                    f"{what} has {length:,} bytes, the official enwik8 has {ENWIK8_BYTES:,}: a truncated or"
                    f" different file ({redo}, or pass --no-verify to use your own file)"
                )
            if sum(sizes) != length:
                raise DataError(
                    f"task.split_sizes={sizes} add up to {sum(sizes):,} bytes but {what} has {length:,}"
                )
            start_over(folder)  # only now: a refused source or split leaves a good preparation alone
            facts, splits = write_splits(stream, length, sizes, folder, what)
        if verify and facts["md5"] != ENWIK8_MD5:
            discard_splits(splits)
            raise DataError(
                f"{what} has MD5 {facts['md5']}, not the official {ENWIK8_MD5}: corrupted or not enwik8"
                f" ({redo}, or pass --no-verify to use your own file)"
            )
    except DataError:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)  # never kept under a name a later run trusts
        raise
    commit_splits(splits)
    if downloaded is not None:
        os.replace(downloaded, zip_path)  # verified (or explicitly unverified): keep it for --force
        path = zip_path
    source_facts = {
        "origin": origin, "file": str(path), "member": ENWIK8_MEMBER if zipfile.is_zipfile(path) else None,
        **facts, "official_md5": ENWIK8_MD5, "md5_matches_official": facts["md5"] == ENWIK8_MD5,
        "verified": verify, "checks_skipped": [] if verify else ["md5", "size"],
    }
    manifest = build_manifest("enwik8", None, params, source_facts, splits)
    write_manifest(folder, manifest)
    return PrepareResult(folder, manifest, changed=True)


# --------------------------------------------------------------------------------------- text


def text_split_sizes(length: int, fractions: list[float], path: Path) -> list[int]:
    train = int(length * fractions[0])
    valid = int(length * (fractions[0] + fractions[1])) - train
    sizes = [train, valid, length - train - valid]
    if min(sizes) < 1:
        raise DataError(f"{path} has {length:,} bytes: too few to split by task.split_fractions={fractions}")
    return sizes


def text_params(task: Any) -> dict:
    return {"split_fractions": [float(f) for f in task.split_fractions], "source": str(as_path(task.path))}


def text_source(task: Any) -> Path:
    require_path(task)
    path = as_path(task.path)
    if not path.is_file():
        raise DataError(f"text corpus {path} not found (task.path): give an existing file")
    return path


def check_expected_sha256(task: Any, path: Path, actual: str) -> None:
    """A named corpus (`task.sha256`) is that corpus and no other: a file with another sha256 is
    refused before anything is prepared or trained on it."""
    expected = task.get("sha256") if hasattr(task, "get") else getattr(task, "sha256", None)
    if expected and actual != str(expected).lower():
        raise DataError(f"{path} has sha256 {actual}, not the {expected} that task.sha256 names: it is another"
                        " file than the corpus this configuration was written for")


def require_path(task: Any) -> None:
    if not task.path:
        raise DataError("task=text needs task.path=FILE, the file to train on (prepare it with"
                        " `reformer data prepare task=text task.path=FILE`)")


def load_text(task: Any) -> tuple[Path, dict]:
    """(folder, manifest) of a prepared corpus; the corpus must not have changed size since."""
    require_path(task)
    folder = task_data_dir(task)
    fix = f"rerun `{prepare_command(task, '--force')}`"
    missing = f"{as_path(task.path)} is not prepared (no {MANIFEST} in {folder}): run `{prepare_command(task)}`"
    if not as_path(task.path).is_file() and read_manifest(folder, fix) is None:
        text_source(task)  # the clearer message: the corpus itself is missing
    manifest = load_prepared(folder, task="text", variant=None, params=text_params(task),
                             verify=task.verify, fix=fix, missing=missing)
    source = as_path(task.path)
    if source.is_file():
        why = source_changed(source, manifest["source"], task.verify)
        if why:
            raise DataError(f"{source} changed since it was prepared ({why}); {fix}")
    check_expected_sha256(task, source, manifest["source"]["sha256"])
    return folder, manifest


SOURCE_HASH_LIMIT = 256 << 20  # a corpus up to this size is re-hashed at every run start


def source_changed(path: Path, recorded: dict, policy: str) -> str | None:
    """Why the corpus at `path` is not the one the manifest was prepared from, or None. Its size
    is always compared; its sha256 too when it is small (`SOURCE_HASH_LIMIT`), when `policy` is
    `full`, or when its modification time differs from the recorded one (the fast path for big
    files: same size and mtime are trusted unless `policy` is `full`)."""
    stat = path.stat()
    if stat.st_size != recorded["bytes"]:
        return f"{stat.st_size:,} bytes now, {recorded['bytes']:,} then"
    same_mtime = recorded.get("mtime_ns") == stat.st_mtime_ns
    if policy != "full" and stat.st_size > SOURCE_HASH_LIMIT and same_mtime:
        return None
    if sha256_file(path) != recorded["sha256"]:
        return "same size, different content: its sha256 differs"
    return None


def prepare_text(task: Any, *, force: bool = False) -> PrepareResult:
    """Split a local file by `task.split_fractions`. Nothing is done when the manifest matches the
    config and the file's sha256 is unchanged."""
    path = text_source(task)
    folder = task_data_dir(task)
    params = text_params(task)
    digest = sha256_file(path)
    check_expected_sha256(task, path, digest)
    existing = None if force else prepared_manifest(folder, task="text", variant=None, params=params)
    if (existing is not None and existing["source"]["bytes"] == path.stat().st_size
            and existing["source"]["sha256"] == digest):
        return PrepareResult(folder, existing, changed=False)
    folder.mkdir(parents=True, exist_ok=True)
    with open_bytes(path, None) as (stream, length, what):
        sizes = text_split_sizes(length, params["split_fractions"], path)
        start_over(folder)  # only now: a corpus too small to split leaves a good preparation alone
        facts, splits = write_splits(stream, length, sizes, folder, what)
    commit_splits(splits)
    source_facts = {"origin": str(path), "file": str(path), "member": None, **facts,
                    "mtime_ns": path.stat().st_mtime_ns, "verified": True, "checks_skipped": []}
    manifest = build_manifest("text", None, params, source_facts, splits)
    write_manifest(folder, manifest)
    return PrepareResult(folder, manifest, changed=True)
