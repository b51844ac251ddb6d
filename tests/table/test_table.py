"""`reformer table`: fixture records -> exactly the expected markdown (must-show 3), missing cells
shown as missing, plots written, the README's Table 2 block, no torch.

The fixture records (tests/fixtures/table/runs/, values invented, device "fixture (not a
measurement)") cover every layout: Table 2 with two cells missing, Figure 3 with two tasks and
missing runs, Figure 5 (left) with a number the paper states, a speed record in the contract of
`reformer bench speed --json` (with an OOM row), a memory record with an OOM, Figure 4 with no
record at all, and a smoke record the default page must not show (quick is more faithful).
The pages are built from the real experiments/*.yaml: after changing a definition's text,
regenerate the expected pages with REFORMER_UPDATE_GOLDEN=1 and read the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO, cli_env, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "table"
PAGES = ["table2", "fig3", "fig4", "fig5_depth", "fig5_speed", "memory_claims", "README"]


@pytest.fixture
def workdir(tmp_path) -> Path:
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    return tmp_path


def test_fixture_records_give_exactly_the_expected_pages(workdir):
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots"], workdir)
    assert out.returncode == 0, out.stderr
    if os.environ.get("REFORMER_UPDATE_GOLDEN") == "1":
        for page in PAGES:
            shutil.copy(workdir / "out" / f"{page}.md", FIXTURES / "expected" / f"{page}.md")
    for page in PAGES:
        expected = (FIXTURES / "expected" / f"{page}.md").read_text()
        assert (workdir / "out" / f"{page}.md").read_text() == expected, page
    # the same records give the same bytes again
    first = {p: (workdir / "out" / f"{p}.md").read_bytes() for p in PAGES}
    assert run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots"], workdir).returncode == 0
    assert {p: (workdir / "out" / f"{p}.md").read_bytes() for p in PAGES} == first


def test_missing_cells_are_shown_missing_never_filled(workdir):
    (workdir / "runs" / "quick" / "table2" / "lsh-4__lsh-8.json").unlink()
    assert run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--only", "table2"], workdir).returncode == 0
    page = (workdir / "out" / "table2.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| LSH-4 |"))
    assert row.split(" | ")[2] == "missing / 100 / -"  # the LSH-8 column of the LSH-4 row
    row = next(line for line in page.splitlines() if line.startswith("| LSH-2 |"))
    assert row.split(" | ")[1] == "missing / 0.8 / -"  # missing in the fixture itself
    assert "(3 missing)" in page


def test_a_result_with_no_record_says_so(workdir):
    assert run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots"], workdir).returncode == 0
    fig4 = (workdir / "out" / "fig4.md").read_text()
    assert "No records yet" in fig4
    assert fig4.count("| missing | curve only |") == 6


def test_profile_choice_and_smoke_pages_say_not_comparable(workdir):
    # default: quick, the more faithful profile; --profile smoke shows the smoke record, labelled
    assert run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--only", "table2",
                    "--profile", "smoke"], workdir).returncode == 0
    page = (workdir / "out" / "table2.md").read_text()
    assert "**smoke profile: not comparable to the paper.**" in page
    assert "| Full attention | 100.0 / 100 / 0.0 | missing / 94.8 / - |" in page


def test_plots_are_png_files(workdir):
    out = run_cli(["table", "--runs", "runs", "--out", "out"], workdir)
    assert out.returncode == 0, out.stderr
    for name in ("fig3", "fig5_depth", "fig5_speed", "memory_claims"):
        data = (workdir / "out" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert f"]({name}.png)" in (workdir / "out" / f"{name}.md").read_text()
    assert not (workdir / "out" / "fig4.png").exists()  # no curve to draw


def test_readme_block_shows_gpu_numbers_only(workdir):
    readme = workdir / "README.md"
    readme.write_text("intro\n<!-- reformer table: table2 begin -->\nold\n<!-- reformer table: table2 end -->\nrest\n")
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--readme", "README.md"], workdir)
    assert out.returncode == 0, out.stderr
    text = readme.read_text()
    # a quick profile is scaled down: its label comes first
    assert text.startswith("intro\n<!-- reformer table: table2 begin -->\n**quick profile: ")
    assert "\nAccuracy % on the `test` split, **ours / paper / difference**" in text
    assert "| LSH-4 | 2.1 / 0.8 / +1.3 |" in text and text.endswith("<!-- reformer table: table2 end -->\nrest\n")
    # with smoke records only, the block keeps the paper's table and says it has not run on a GPU
    shutil.rmtree(workdir / "runs" / "quick" / "table2")
    assert run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--readme", "README.md"], workdir).returncode == 0
    text = readme.read_text()
    assert "**Not yet run on a GPU.**" in text and "| LSH-1 | 0.8 | 99.9 | 99.6 | 94.8 | 77.9 |" in text
    readme.write_text("no markers\n")
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--readme", "README.md"], workdir)
    assert out.returncode == 2 and out.stderr.startswith("error: README.md has no") and out.stderr.count("\n") == 1


def test_readme_verdicts_block_lists_every_claim_of_the_curves_pages(workdir):
    readme = workdir / "README.md"
    readme.write_text("<!-- reformer table: table2 begin -->\n<!-- reformer table: table2 end -->\n"
                      "<!-- reformer table: verdicts begin -->\nold\n<!-- reformer table: verdicts end -->\n")
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--readme", "README.md"], workdir)
    assert out.returncode == 0, out.stderr
    block = readme.read_text().split("<!-- reformer table: verdicts begin -->\n", 1)[1].split("\n<!--", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    pages = {line.split("](")[0].split("[")[-1] for line in rows}
    assert "fig3" in pages, block
    # the fixture records have one seed per run: no claim of a curves page may read "holds"
    curves_rows = [line for line in rows if "[fig5_speed]" not in line and "[memory_claims]" not in line]
    assert curves_rows and all("**holds**" not in line for line in curves_rows), block
    assert all(("1 seed" in line and "inconclusive" in line) or "**missing**" in line for line in curves_rows), block
    # the speed and memory pages add one claim each, decided from their benchmark records
    assert {"fig5_speed", "memory_claims"} <= pages, block
    assert "old" not in block.splitlines()


def test_every_layout_has_a_page_builder_and_every_builder_a_layout():
    """The layouts are listed once (definitions.experiments.LAYOUTS); each names its builder's module."""
    import reformer_cli.table as table
    from reformer_cli.definitions.experiments import LAYOUTS

    assert all(callable(table.builder(layout)) for layout in LAYOUTS)
    builders = {p.stem for p in Path(table.__file__).parent.glob("*.py") if "def build(" in p.read_text()}
    assert builders == set(LAYOUTS)


def test_table_imports_no_torch(workdir):
    code = (
        "import sys; from reformer_cli.cli import main; rc = main(['table', '--runs', 'runs', '--out', 'out']);"
        " print('torch' in sys.modules, rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=cli_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False 0"


def test_a_folder_without_records_is_refused_with_one_line(tmp_path):
    out = run_cli(["table"], tmp_path)  # no results/runs here
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("error: no records in results/runs: nothing to build pages from")
    assert not (tmp_path / "results").exists()


def test_a_record_that_is_not_curated_is_a_one_line_error(workdir):
    (workdir / "runs" / "quick" / "table2" / "stray.json").write_text('{"kind": "eval"}\n')
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots"], workdir)
    assert out.returncode == 2
    assert "stray.json is not a curated run record" in out.stderr and out.stderr.count("\n") == 1


def test_committed_results_were_built_from_the_committed_records(tmp_path):
    """results/*.md in the repository are exactly what `reformer table` makes of results/runs/."""
    if not (REPO / "results" / "runs").is_dir():
        pytest.skip("no committed results")
    shutil.copytree(REPO / "results" / "runs", tmp_path / "results" / "runs")
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    out = run_cli(["table", "--no-plots", "--readme", "README.md"], tmp_path)
    assert out.returncode == 0, out.stderr
    for page in sorted((tmp_path / "results").glob("*.md")):
        assert page.read_text() == (REPO / "results" / page.name).read_text(), page.name
    assert (tmp_path / "README.md").read_text() == (REPO / "README.md").read_text()  # its Table 2 block too


def test_only_rebuilds_some_pages_but_the_index_and_readme_blocks_cover_every_experiment(workdir):
    readme = workdir / "README.md"
    readme.write_text("<!-- reformer table: table2 begin -->\n<!-- reformer table: table2 end -->\n"
                      "<!-- reformer table: verdicts begin -->\nold\n<!-- reformer table: verdicts end -->\n")
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--no-plots", "--readme", "README.md", "--only", "table2"],
                  workdir)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (workdir / "out").glob("*.md")) == ["README.md", "table2.md"]
    index = (workdir / "out" / "README.md").read_text()
    assert "(fig3.md)" in index and "(memory_claims.md)" in index  # every experiment stays listed
    assert "[fig3](out/fig3.md)" in readme.read_text()  # and every claim in the README's block
