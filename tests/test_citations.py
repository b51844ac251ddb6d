"""Nothing in the product cites a document it does not contain (must-show 5 of the user-experience
issue): no reference to the working notes and specification that lived outside the repository
(`notes/...`, `SPEC section N`, `/work/shared/...`), every repository path a tracked file names
exists, and every `docs/<page>.md, "Heading"` citation names a heading of that page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

OUTSIDE = re.compile(r"notes/|SPEC section|SPEC §|SPEC\.md|/work/shared")
# Files whose text is data, not documentation: references inside them are not citations.
DATA = {"experiments/data/smoke_corpus.txt"}  # a frozen text corpus (docs/data.md, "Smoke corpus")
# a repository path as text names it; results/ and outputs/ are where runs write, not documents
PATH = re.compile(r"(?<![\w./<-])((?:docs|reformer_cli|conf|experiments|tests)/[\w./-]*\.(?:py|md|yaml|txt))")
DOCS_HEADING = re.compile(r"docs/([\w-]+\.md)[,:] \"([^\"]+)\"")


def tracked() -> dict[str, str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git clone")
    files = {}
    for name in out.stdout.splitlines():
        if name.startswith(("results/runs/", "tests/fixtures/table/runs/")) or name.endswith((".png", ".pt")):
            continue
        try:
            files[name] = (REPO / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
    return files


FILES = tracked() if (REPO / ".git").exists() else {}


def test_nothing_cites_the_notes_or_specification_outside_the_repository():
    found = [(name, line.strip()) for name, text in FILES.items() if name not in DATA and name != "tests/test_citations.py"
             for line in text.splitlines() if OUTSIDE.search(line)]
    assert found == []


def test_every_repository_path_named_exists():
    missing = []
    for name, text in FILES.items():
        if name in DATA:
            continue
        for path in PATH.findall(text):
            path = path.rstrip(".")
            if "*" not in path and not (REPO / path).exists():
                missing.append((name, path))
    assert missing == []


def headings(page: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")}


def test_every_docs_citation_names_a_heading_of_its_page():
    wrong = []
    for name, text in FILES.items():
        for page, heading in DOCS_HEADING.findall(" ".join(text.split())):
            if heading not in headings(REPO / "docs" / page):
                wrong.append((name, page, heading))
    assert wrong == []
