"""Datasets on disk: download, verify, prepare into memory-mappable split files with a manifest.

    paths.py      where data lives by default ($REFORMER_DATA_DIR, else the XDG cache)
    files.py      hashing, staged (atomic) output files
    manifest.py   manifest.json: what a prepared folder holds, and the checks that trust it
    download.py   HTTP / file:// download to a `.part` file with a byte progress bar
    bytes.py      enwik8 and any local text file -> train.bin / valid.bin / test.bin (uint8)
    imagenet64.py oord PNG tars or chrabaszcz batches -> train.u8 / valid.u8 ([N, 12288] uint8)

Nothing here imports torch: `reformer data ...` starts fast. The tasks that read these folders are
in reformer_cli/tasks/ (bytes.py, imagenet64.py).
"""
