"""enwik8 / text preparation: byte-exact splits, official checks, downloads, atomicity, idempotence."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from reformer_cli.data import bytes as byte_data
from reformer_cli.data.bytes import load_enwik8, load_text, prepare_enwik8, prepare_text
from reformer_cli.errors import DataError

from ..conftest import compose
from .conftest import SIZES, enwik8_task
from .formats import enwik8_zip, text_bytes

N = sum(SIZES)


@pytest.fixture
def corpus() -> bytes:
    return text_bytes(N, seed=1)


@pytest.fixture
def as_official(monkeypatch, corpus):
    """Make the small file 'official' (size and MD5) to exercise the verified path."""
    import hashlib

    monkeypatch.setattr(byte_data, "ENWIK8_BYTES", N)
    monkeypatch.setattr(byte_data, "ENWIK8_MD5", hashlib.md5(corpus).hexdigest())


def test_zip_member_is_split_by_bytes_and_the_skipped_check_is_recorded(tmp_path, corpus):
    source = enwik8_zip(tmp_path / "enwik8.zip", corpus)
    folder = tmp_path / "data"
    result = prepare_enwik8(enwik8_task(folder), source=str(source), verify=False)
    assert result.changed
    assert (folder / "train.bin").read_bytes() == corpus[:20_000]
    assert (folder / "valid.bin").read_bytes() == corpus[20_000:23_000]
    assert (folder / "test.bin").read_bytes() == corpus[23_000:]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"]["verified"] is False and manifest["source"]["checks_skipped"] == ["md5", "size"]
    assert manifest["source"]["md5_matches_official"] is False
    import hashlib

    assert manifest["source"]["sha256"] == hashlib.sha256(corpus).hexdigest()
    assert manifest["splits"]["valid"]["sha256"] == hashlib.sha256(corpus[20_000:23_000]).hexdigest()
    assert "SKIPPED" in result.summary()

    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = prepare_enwik8(enwik8_task(folder), source=str(source), verify=False)
    assert not again.changed and "already prepared" in again.summary()
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing rewritten


def test_prepare_repairs_a_damaged_folder_without_force(tmp_path, corpus):
    source = str(enwik8_zip(tmp_path / "enwik8.zip", corpus))
    folder = tmp_path / "data"
    prepare_enwik8(enwik8_task(folder), source=source, verify=False)
    (folder / "train.bin").write_bytes(b"short")
    assert prepare_enwik8(enwik8_task(folder), source=source, verify=False).changed
    assert (folder / "train.bin").read_bytes() == corpus[:20_000]


def test_official_checks_refuse_another_file_and_leave_nothing_trusted(tmp_path, corpus):
    source = enwik8_zip(tmp_path / "enwik8.zip", corpus)
    folder = tmp_path / "data"
    with pytest.raises(DataError, match=r"has 25,000 bytes, the official enwik8 has 100,000,000.*--no-verify"):
        prepare_enwik8(enwik8_task(folder), source=str(source))
    assert not (folder / "manifest.json").exists() and not list(folder.glob("*.bin"))


def test_md5_is_checked_on_the_member(tmp_path, corpus, as_official):
    folder = tmp_path / "data"
    good = prepare_enwik8(enwik8_task(folder), source=str(enwik8_zip(tmp_path / "a.zip", corpus)))
    assert good.manifest["source"]["verified"] and good.manifest["source"]["md5_matches_official"]
    tampered = corpus[:100] + b"X" + corpus[101:]
    with pytest.raises(DataError, match=r"has MD5 [0-9a-f]{32}, not the official"):
        prepare_enwik8(enwik8_task(folder), source=str(enwik8_zip(tmp_path / "b.zip", tampered)), force=True)
    assert not (folder / "manifest.json").exists()  # --force removed the old manifest first


def test_raw_file_source_and_split_sizes_must_add_up(tmp_path, corpus):
    raw = tmp_path / "enwik8"
    raw.write_bytes(corpus)
    folder = tmp_path / "data"
    with pytest.raises(DataError, match=r"add up to 25,001 bytes but .* has 25,000"):
        prepare_enwik8(enwik8_task(folder, [20_000, 3_000, 2_001]), source=str(raw), verify=False)
    prepare_enwik8(enwik8_task(folder), source=str(raw), verify=False)
    assert (folder / "test.bin").read_bytes() == corpus[-2_000:]


def test_truncated_and_corrupted_zips_are_named(tmp_path, corpus):
    source = enwik8_zip(tmp_path / "enwik8.zip", corpus)
    blob = source.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=rf"{cut} is not a complete zip file"):
        prepare_enwik8(enwik8_task(tmp_path / "d1"), source=str(cut), verify=False)
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0xFF  # inside the deflated data: CRC or inflate error
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=rf"{bad}:enwik8 is corrupted"):
        prepare_enwik8(enwik8_task(tmp_path / "d2"), source=str(bad), verify=False)
    assert not list((tmp_path / "d2").glob("*.bin")) and not list((tmp_path / "d2").glob(".*.tmp"))


class _Server:
    """A loopback HTTP server for one file; `cut` sends only part of it (a broken download)."""

    def __init__(self, body: bytes, cut: int | None = None):
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/enwik8.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_goes_through_a_part_file_renamed_after_verification(tmp_path, corpus, as_official):
    blob = enwik8_zip(tmp_path / "served.zip", corpus).read_bytes()
    folder = tmp_path / "data"
    broken = _Server(blob, cut=len(blob) // 2)
    try:
        with pytest.raises(DataError, match=r"stopped after [\d,]+ of [\d,]+ bytes"):
            prepare_enwik8(enwik8_task(folder), source=broken.url)
    finally:
        broken.close()
    assert not (folder / "enwik8.zip").exists() and not (folder / "manifest.json").exists()
    with pytest.raises(DataError, match="enwik8 is not prepared"):
        load_enwik8(enwik8_task(folder))

    server = _Server(blob)
    try:
        result = prepare_enwik8(enwik8_task(folder), source=server.url)
        assert result.manifest["source"]["origin"] == server.url and result.manifest["source"]["verified"]
        assert (folder / "enwik8.zip").read_bytes() == blob and not (folder / "enwik8.zip.part").exists()
        # --force reuses the verified download instead of fetching again
        prepare_enwik8(enwik8_task(folder), force=True)
        assert server.requests == 1
    finally:
        server.close()
    load_enwik8(enwik8_task(folder))


def test_file_url_download(tmp_path, corpus):
    source = enwik8_zip(tmp_path / "served.zip", corpus)
    folder = tmp_path / "data"
    prepare_enwik8(enwik8_task(folder), source=source.as_uri(), verify=False)
    assert (folder / "enwik8.zip").read_bytes() == source.read_bytes()
    assert (folder / "valid.bin").read_bytes() == corpus[20_000:23_000]


def test_failed_download_names_the_url_and_the_alternative(tmp_path):
    missing = (tmp_path / "nowhere.zip").as_uri()
    with pytest.raises(DataError, match=rf"download of {missing} failed .*--source PATH"):
        prepare_enwik8(enwik8_task(tmp_path / "cache" / "enwik8"), source=missing)
    assert not (tmp_path / "cache").exists()  # no empty cache folder left behind


def text_task(path: Path, folder: Path, fractions="[0.8,0.1,0.1]"):
    return compose(["task=text", f"task.path={path}", f"task.data_dir={folder}", f"task.split_fractions={fractions}"]).task


def test_text_is_split_by_fraction_and_a_changed_file_is_caught(tmp_path):
    corpus = tmp_path / "corpus.txt"
    data = text_bytes(10_001, seed=2)
    corpus.write_bytes(data)
    folder = tmp_path / "prepared"
    result = prepare_text(text_task(corpus, folder))
    assert [e["bytes"] for e in result.manifest["splits"].values()] == [8_000, 1_000, 1_001]
    assert (folder / "train.bin").read_bytes() + (folder / "valid.bin").read_bytes() + \
        (folder / "test.bin").read_bytes() == data
    assert not prepare_text(text_task(corpus, folder)).changed
    with pytest.raises(DataError, match="prepared with split_fractions"):
        load_text(text_task(corpus, folder, "[0.9,0.05,0.05]"))
    corpus.write_bytes(data + b"more")
    with pytest.raises(DataError, match=rf"{corpus} changed since it was prepared"):
        load_text(text_task(corpus, folder))
    assert prepare_text(text_task(corpus, folder)).changed  # a changed source is prepared again
    with pytest.raises(DataError, match=r"text corpus .*missing.txt not found"):
        prepare_text(text_task(tmp_path / "missing.txt", folder))


def test_default_folders_follow_the_environment(tmp_path, monkeypatch):
    from reformer_cli.data.paths import task_data_dir

    monkeypatch.delenv("REFORMER_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert task_data_dir(compose(["task=enwik8"]).task) == tmp_path / "xdg" / "reformer" / "enwik8"
    monkeypatch.setenv("REFORMER_DATA_DIR", str(tmp_path / "data"))
    assert task_data_dir(compose(["task=enwik8"]).task) == tmp_path / "data" / "enwik8"
    assert task_data_dir(compose(["task=imagenet64", "task.variant=chrabaszcz"]).task) == \
        tmp_path / "data" / "imagenet64" / "chrabaszcz"
    a = task_data_dir(compose(["task=text", "task.path=a/corpus.txt"]).task)
    b = task_data_dir(compose(["task=text", "task.path=b/corpus.txt"]).task)
    assert a.parent == tmp_path / "data" / "text" and a.name.startswith("corpus-") and a != b
