"""imagenet64 preparation from files in the real formats: (row, column, channel) order, both
variants giving the same tokens for the same pictures, counts, and broken files named."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from reformer_cli.data.imagenet64 import load_batch, load_imagenet64, prepare_imagenet64
from reformer_cli.errors import DataError

from ..conftest import compose
from .formats import chrabaszcz_dataset, images, oord_dataset, oord_tar, png

TRAIN, VALID = images(10, seed=0), images(3, seed=1)


def task(folder, variant="oord", *extra):
    return compose(["task=imagenet64", f"task.variant={variant}", f"task.data_dir={folder}", "task.seq_len=64",
                    *extra]).task


def prepared_rows(result, split):
    entry = result.manifest["splits"][split]
    return np.fromfile(result.folder / entry["file"], dtype=np.uint8).reshape(entry["shape"])


def test_oord_pngs_become_row_column_channel_tokens(tmp_path):
    oord_dataset(tmp_path, TRAIN, VALID)
    result = prepare_imagenet64(task(tmp_path), verify=False)
    train = prepared_rows(result, "train")
    assert train.shape == (10, 12288) and result.folder == tmp_path / "prepared"
    r, c, ch = 5, 17, 2  # token r*192 + c*3 + ch is channel ch of pixel (r, c)
    assert train[4, r * 192 + c * 3 + ch] == TRAIN[4, r, c, ch]
    assert np.array_equal(train, TRAIN.reshape(10, -1))
    assert np.array_equal(prepared_rows(result, "valid"), VALID.reshape(3, -1))
    m = result.manifest
    assert m["variant"] == "oord" and m["source"]["images"] == {"train": 10, "valid": 3}
    assert m["source"]["checks_skipped"] == ["image counts"]
    assert not prepare_imagenet64(task(tmp_path), verify=False).changed


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
def test_chrabaszcz_batches_give_the_same_tokens_as_the_same_pictures_in_png(tmp_path, fmt):
    chrabaszcz_dataset(tmp_path, TRAIN, VALID, fmt)
    result = prepare_imagenet64(task(tmp_path, "chrabaszcz"), verify=False)
    assert np.array_equal(prepared_rows(result, "train"), TRAIN.reshape(10, -1))  # batches 1..10 in order
    assert np.array_equal(prepared_rows(result, "valid"), VALID.reshape(3, -1))
    assert result.manifest["variant"] == "chrabaszcz"


def test_image_counts_of_the_full_set_are_checked_unless_told_not_to(tmp_path):
    oord_dataset(tmp_path, TRAIN, VALID)
    with pytest.raises(DataError, match=r"train: 10 images in .*train_64x64.tar, the full set has 1,281,149.*--no-verify"):
        prepare_imagenet64(task(tmp_path))
    assert not (tmp_path / "prepared" / "manifest.json").exists()
    assert not list((tmp_path / "prepared").glob("*.u8")) and not list((tmp_path / "prepared").glob(".*.tmp"))


def test_missing_files_say_what_where_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        prepare_imagenet64(task(tmp_path))
    message = str(err.value)
    assert f"train_64x64.tar, valid_64x64.tar not found in {tmp_path}" in message
    assert "http://image-net.org/small/download.php" in message
    assert "reformer data prepare task=imagenet64 task.variant=oord" in message
    chrabaszcz_dataset(tmp_path, TRAIN, VALID)
    with pytest.raises(DataError, match="holds the chrabaszcz files: set task.variant=chrabaszcz"):
        load_imagenet64(task(tmp_path))
    (tmp_path / "Imagenet64_train_part2" / "train_data_batch_7.npz").unlink()
    with pytest.raises(DataError, match=r"imagenet64 \(chrabaszcz\): train_data_batch_7 not found"):
        prepare_imagenet64(task(tmp_path, "chrabaszcz"), verify=False)


def test_not_prepared_and_variant_mismatch(tmp_path):
    oord_dataset(tmp_path, TRAIN, VALID)
    with pytest.raises(DataError, match=r"imagenet64 \(oord\) is not prepared .*`reformer data prepare task=imagenet64"):
        load_imagenet64(task(tmp_path))
    prepare_imagenet64(task(tmp_path), verify=False)
    load_imagenet64(task(tmp_path))
    shared = f"task.prepared_dir={tmp_path / 'prepared'}"
    chrabaszcz_dataset(tmp_path, TRAIN, VALID)
    with pytest.raises(DataError, match=r"holds variant 'oord', not 'chrabaszcz' \(never mixed\)"):
        load_imagenet64(task(tmp_path, "chrabaszcz", shared))


def test_truncated_tar_and_bad_pngs_are_named(tmp_path):
    oord_dataset(tmp_path, TRAIN, VALID)
    tar = tmp_path / "train_64x64.tar"
    blob = tar.read_bytes()
    tar.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(DataError, match=rf"{tar} is truncated or corrupted"):
        prepare_imagenet64(task(tmp_path), verify=False)

    oord_tar(tar, TRAIN[:2], "train_64x64", extra={"train_64x64/gray.png": png(TRAIN[0, :, :, 0], mode="L")})
    with pytest.raises(DataError, match=rf"{tar}:train_64x64/gray.png is a 64x64 L image; expected 64x64 RGB"):
        prepare_imagenet64(task(tmp_path), verify=False)
    oord_tar(tar, TRAIN[:2], "train_64x64", extra={"train_64x64/x.png": b"not a png"})
    with pytest.raises(DataError, match=rf"{tar}:train_64x64/x.png is not a readable PNG"):
        prepare_imagenet64(task(tmp_path), verify=False)


def test_batches_hold_data_only_as_uint8_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "val_data"
    path.write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DataError, match=r"val_data is truncated or corrupted \(UnpicklingError: unexpected object builtins.print"):
        load_batch(path)
    np.savez(tmp_path / "wrong.npz", data=np.zeros((2, 100), dtype=np.uint8))
    with pytest.raises(DataError, match=r"'data' is uint8 \[2, 100\], expected uint8 \[N, 12288\]"):
        load_batch(tmp_path / "wrong.npz")
    good = tmp_path / "good"
    good.write_bytes(pickle.dumps({"data": np.ones((2, 12288), dtype=np.uint8), "labels": [1, 2]}, protocol=2))
    assert load_batch(good).shape == (2, 12288)
    good5 = tmp_path / "good5"
    good5.write_bytes(pickle.dumps({"data": np.ones((2, 12288), dtype=np.uint8)}, protocol=5))
    assert load_batch(good5).sum() == 2 * 12288
