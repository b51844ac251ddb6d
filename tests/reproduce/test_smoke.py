"""Must-show 1: `make reproduce-table PROFILE=smoke` runs end to end on a CPU within 10 minutes
(under 3 on an idle 2-core machine with JOBS=2), in a temporary copy of the repository. A pipeline check, it
writes its records and pages to a scratch folder (outputs/reproduce/smoke/results), never over the
committed results/ or the README."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO, cli_env

COPIED = ("reformer_cli", "conf", "experiments", "Makefile", "README.md", "pyproject.toml")
PAGES = ("table2", "fig3", "fig4", "fig5_depth", "fig5_speed", "memory_claims")


def fingerprint(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_reproduce_table_smoke_end_to_end(tmp_path):
    committed = fingerprint(REPO / "results")
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    env = cli_env()
    env["PYTHONPATH"] = str(copy)
    start = time.monotonic()
    out = subprocess.run(["make", "reproduce-table", "PROFILE=smoke", "JOBS=2", f"PY={sys.executable}"], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    log = out.stdout + out.stderr
    assert elapsed < 600, log

    skipped = [line for line in out.stdout.splitlines() if "skipping" in line]
    assert out.returncode == 0 and not skipped, log
    assert "failed" not in out.stdout, log

    assert not (copy / "results").exists()  # nothing written over committed records or pages
    assert (copy / "README.md").read_text() == (REPO / "README.md").read_text()  # smoke numbers never go to the README
    results = copy / "outputs" / "reproduce" / "smoke" / "results"
    # table2: 7 trained models (the paper's 4 + full without the self mask, with raw keys, LSH-2 across
    # buckets) x 10 evaluations (the paper's 5 + 5 beyond it) + 7 training records
    expected_records = {"table2": 77, "fig3": 3, "fig4": 6, "fig5_depth": 3, "memory_claims": 1}
    for experiment, n in expected_records.items():
        records = list((results / "runs" / "smoke" / experiment).glob("*.json"))
        assert len(records) == n, experiment
        for record in records:
            data = json.loads(record.read_text())
            assert data["profile"] == "smoke" and data["date"] and data["device"] and data["command"].startswith("reformer ")
    for page in PAGES:
        text = (results / f"{page}.md").read_text()
        assert "**smoke profile: not comparable to the paper.**" in text, page
        if page != "table2":  # a table in the paper too: no plot
            assert (results / f"{page}.png").read_bytes()[:4] == b"\x89PNG", page
    assert "| records | `outputs/reproduce/smoke/results/runs/smoke/table2/` (77 of 77) |" in (results / "table2.md").read_text()
    assert fingerprint(REPO / "results") == committed
