"""Hostile records: curated records, run folders, checkpoints and output paths made to crash a
command after its work or to leave a traceback. Each case asserts the exact one line (an
`error: ...` with exit 2, or the line of a skipped record) and what was (not) written.

Everything runs in-process and stops at validation or reads fixture records; no case trains for
more than a few tiny steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import in_process
from .test_hostile import one_error_line

TABLE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "table" / "runs"


# ------------------------------------------------------------------------------ 1. curated records


@pytest.mark.parametrize("case, text, why", [
    ("list", "[1, 2]", "it is a list, not a JSON object"),
    ("metric", None, "its metrics.accuracy is a string, not a number"),
    ("deep", "[" * 10_000 + "]" * 10_000, "its JSON is nested too deeply"),
    ("broken", '{"schema": 1,', "it is not readable JSON (JSONDecodeError: Expecting property name enclosed in"
                                " double quotes: line 1 column 14 (char 13))"),
])
def test_a_damaged_record_is_skipped_and_the_pages_still_build(case, text, why, tmp_path, monkeypatch, capsys):
    shutil.copytree(TABLE_FIXTURES, tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    record = Path("runs/quick/table2/lsh-1__lsh-4.json")
    if text is None:
        edited = json.loads(record.read_text())
        edited["metrics"]["accuracy"] = "high"
        text = json.dumps(edited)
    kept = record.read_text()
    record.unlink()
    assert in_process(["table", "--runs", "runs", "--out", "without", "--no-plots"], capsys) == (0, "")
    record.write_text(text)
    code, err = in_process(["table", "--runs", "runs", "--out", "out", "--no-plots"], capsys)
    assert code == 0
    assert err == f"skipped {record}: {why}\n"
    # the pages are those of the records without it (its cell shows missing)
    pages = sorted(p.name for p in Path("without").iterdir())
    assert "table2.md" in pages and sorted(p.name for p in Path("out").iterdir()) == pages
    for page in pages:
        assert (Path("out") / page).read_text() == (Path("without") / page).read_text(), page
    assert kept != text
