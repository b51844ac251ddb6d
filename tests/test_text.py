"""The shared text helpers: the clock, a path as shown, a markdown table."""

from __future__ import annotations

from reformer_cli.text import clock, escape_bars, markdown_table, shown_path


def test_the_clock_rounds_to_the_second_and_shows_hours_only_when_there_are_some():
    assert [clock(s) for s in (None, 0, 41.6, 59.4, 725, 3599.6, 3725, 36000)] == \
        ["-", "0:00", "0:42", "0:59", "12:05", "1:00:00", "1:02:05", "10:00:00"]


def test_a_path_is_shown_relative_to_the_working_folder_when_inside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shown_path(tmp_path / "runs" / "a") == "runs/a"
    assert shown_path("runs/a") == "runs/a"
    outside = tmp_path.parent / "elsewhere"
    assert shown_path(outside) == str(outside)


def test_a_markdown_table_escapes_bars_only_when_asked():
    assert markdown_table(["a", "b|c"], [["1", 2]]) == ["| a | b|c |", "|---|---|", "| 1 | 2 |"]
    assert markdown_table(["a", "b|c"], [["x|y", 2]], escape_bars) == \
        ["| a | b\\|c |", "|---|---|", "| x\\|y | 2 |"]
