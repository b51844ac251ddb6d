"""Download a URL (http, https, file) to `<dest>.part` with a byte progress bar.

The caller verifies the `.part` file and only then renames it to its final name, so a broken or
interrupted download never sits where a later run would trust it; the next attempt starts over.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from .files import CHUNK, progress_bar

TIMEOUT_S = 60


def is_url(text: str) -> bool:
    return "://" in str(text)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: Path, *, fallback: str) -> Path:
    """Fetch `url` into `<dest>.part` and return that path. Errors name the URL and say what to do
    instead (`fallback`: e.g. how to pass a file downloaded by hand)."""
    part = part_path(Path(dest))
    part.parent.mkdir(parents=True, exist_ok=True)
    part.unlink(missing_ok=True)
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = progress_bar(total, f"download {Path(dest).name}")
            try:
                with open(part, "wb") as out:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"download of {url} failed after {received:,} bytes ({reason}); {fallback}"
        ) from None
    if total is not None and received != total:
        raise DataError(
            f"download of {url} stopped after {received:,} of {total:,} bytes (left in {part}, never used);"
            f" {fallback}"
        )
    return part
