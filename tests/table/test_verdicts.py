"""Verdicts of the curves pages: the arithmetic against hand-computed cases for each outcome
(the stability of the difference over the last quarter too), and a page built from records of two
seeds (means, spreads, paired differences, verdict lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reformer_cli.definitions.experiments import load_experiment
from reformer_cli.table import experiment_verdicts
from reformer_cli.table.verdicts import (FAILS, HOLDS, INCONCLUSIVE, MISSING, UNCHECKED, decide, last_quarter_movement,
                                         paired_differences, spread, stability_limit, verdict)

from ..conftest import run_cli

NOT_WORSE = {"claim": "b is not worse than a", "run": "b", "baseline": "a", "expect": "not_worse", "tolerance": 0.25}
BETTER = {"claim": "b is better than a", "run": "b", "baseline": "a", "expect": "better"}


def test_paired_differences_and_spread():
    # seed 2 has no baseline: not paired; d = [0.5, 0.0]
    assert paired_differences({0: 2.5, 1: 2.0, 2: 9.0}, {1: 2.0, 0: 2.0}) == [0.5, 0.0]
    assert spread([0.5, 0.0]) == 0.25 and spread([0.5]) == 0.0
    assert paired_differences({None: 3.0}, {None: 2.5}) == [0.5]  # records without seeds pair with each other
    assert paired_differences({0: 3.0}, {None: 2.5}) == []


@pytest.mark.parametrize("differences, expected", [
    ([0.0, 0.25], HOLDS),           # m 0.125 + spread 0.125 = 0.25 <= 0.25
    ([0.5, 1.0], FAILS),            # m 0.75 - spread 0.25 = 0.5 > 0.25
    ([0.0, 0.5], INCONCLUSIVE),     # m + s = 0.5 > 0.25, m - s = 0 <= 0.25
    ([-1.0, -0.5], HOLDS),          # well below: better is also not worse
    ([0.125], INCONCLUSIVE),        # one seed: never a verdict
    ([], MISSING),
])
def test_not_worse(differences, expected):
    assert decide(differences, "not_worse", 0.25, "bpc") == expected


@pytest.mark.parametrize("differences, tolerance, expected", [
    ([-0.5, -0.25], 0.0, HOLDS),          # m -0.375 + s 0.125 = -0.25 < 0
    ([-0.5, -0.25], 0.25, INCONCLUSIVE),  # -0.25 is not < -0.25
    ([-0.5, -0.25], 0.125, HOLDS),
    ([0.0, 0.5], 0.0, FAILS),             # m 0.25 - s 0.25 = 0 >= 0
    ([-0.25, 0.5], 0.0, INCONCLUSIVE),    # m 0.125 - s 0.375 < 0 and m + s > 0
    ([-1.0], 0.0, INCONCLUSIVE),
])
def test_better(differences, tolerance, expected):
    assert decide(differences, "better", tolerance, "bpc") == expected


def test_accuracy_is_higher_is_better():
    # run - baseline +0.5 and +0.75 accuracy: better, so not worse; -0.5, -0.75: worse
    assert decide([0.5, 0.75], "better", 0.0, "accuracy") == HOLDS
    assert decide([0.5, 0.75], "not_worse", 0.0, "accuracy") == HOLDS
    assert decide([-0.5, -0.75], "not_worse", 0.25, "accuracy") == FAILS
    assert decide([-0.5, -0.75], "better", 0.0, "accuracy") == FAILS
    assert decide([0.5, 0.75], "better", 0.0, "bpc") == FAILS


def test_a_verdict_keeps_the_measured_difference_and_counts_the_paired_seeds():
    v = verdict(NOT_WORSE, {0: 2.0, 1: 2.5}, {0: 2.0, 1: 2.0}, "bpc", page="x.md", moved=0.0)
    assert (v.verdict, v.difference, v.spread, v.seeds, v.note) == (INCONCLUSIVE, 0.25, 0.25, 2, "")
    one = verdict(BETTER, {0: 1.0}, {0: 2.0, 1: 2.0}, "bpc", moved=0.0)
    assert (one.verdict, one.difference, one.seeds, one.tolerance) == (INCONCLUSIVE, -1.0, 1, 0.0)
    assert one.note == "one seed: a verdict needs two"
    none = verdict(BETTER, {}, {0: 2.0}, "bpc", moved=None)
    assert (none.verdict, none.difference, none.spread, none.seeds, none.note) == (MISSING, None, None, 0, "")


def test_the_last_quarter_movement_reads_the_evaluations_at_or_after_75_percent_of_the_steps():
    # max_steps 1000: steps 750, 875 and 1000 count (max 0.5 - min 0.125); 700 and earlier do not
    differences = {100: 2.0, 700: -1.0, 750: 0.5, 875: 0.125, 1000: 0.25}
    assert last_quarter_movement(differences, 1000) == 0.375
    assert last_quarter_movement(differences, 920) == 1.5  # from step 690: 700 counts too (0.5 - -1.0)
    assert last_quarter_movement(differences, 1200) is None  # from step 900: only 1000, too few to tell
    assert last_quarter_movement({}, 1000) is None


@pytest.mark.parametrize("tolerance, difference, limit", [
    (0.25, 0.125, 0.125),   # half the tolerance
    (0.25, -0.125, 0.125),
    (0.0, -0.5, 0.25),      # a `better` claim without tolerance: half the difference, so its sign held
    (0.25, 1.0, 0.5),       # a difference far larger than the tolerance: half of it
])
def test_stability_limit(tolerance, difference, limit):
    assert stability_limit(tolerance, difference) == limit


@pytest.mark.parametrize("moved, expected", [
    (0.0, HOLDS),
    (0.125, HOLDS),         # exactly the limit: max(0.25, 0.125) / 2
    (0.25, INCONCLUSIVE),   # moved more than the limit
    (None, INCONCLUSIVE),   # nothing to tell it by
])
def test_a_difference_that_is_not_stable_is_at_most_inconclusive(moved, expected):
    # b - a: 0.0 and 0.25 -> m 0.125, spread 0.125: holds on the final values alone
    v = verdict(NOT_WORSE, {0: 2.0, 1: 2.25}, {0: 2.0, 1: 2.0}, "bpc", moved=moved)
    assert (v.verdict, v.moved, v.stable_within) == (expected, moved, 0.125)
    notes = {0.0: "", 0.125: "", 0.25: "difference not stable over the last quarter: it moved 0.250, more than 0.125",
             None: UNCHECKED}
    assert v.note == notes[moved]


def test_a_failing_claim_that_is_not_stable_is_inconclusive_too_and_one_seed_says_both():
    # b - a: 1.0 and 1.5 -> m 1.25 - spread 0.25 = 1.0 > 0.25: does not hold, if stable (limit 0.625)
    assert verdict(NOT_WORSE, {0: 3.0, 1: 3.5}, {0: 2.0, 1: 2.0}, "bpc", moved=0.5).verdict == FAILS
    moving = verdict(NOT_WORSE, {0: 3.0, 1: 3.5}, {0: 2.0, 1: 2.0}, "bpc", moved=0.75)
    assert moving.verdict == INCONCLUSIVE
    one = verdict(BETTER, {0: 1.0}, {0: 2.0}, "bpc", moved=0.75)  # limit 0.5
    assert one.note == ("one seed: a verdict needs two; difference not stable over the last quarter: it moved 0.750,"
                        " more than 0.500")


DEFINITION = """
title: "A test figure"
layout: curves
paper:
  source: a test
  published: curves only
  panels:
    - title: "a panel"
      runs: [a, b, c]
      baseline: a
      claim: the paper's words
      checks:
        - {claim: "b is not worse than a", run: b, baseline: a, expect: not_worse, tolerance: 0.02}
        - {claim: "c is better than a", run: c, baseline: a, expect: better}
profiles:
  quick:
    about: two seeds
    comparable: true
    seeds: [0, 1]
    train:
      common: [model=tiny]
      runs: {a: [attention=full], b: [attention=lsh], c: [layer=reversible]}
"""
# final bpc per run and seed; c has seed 0 only
FINALS = {("a", 0): 4.0, ("a", 1): 4.02, ("b", 0): 4.01, ("b", 1): 4.026, ("c", 0): 3.5}
# the evaluation at step 75 (in the last quarter of 100 steps): the final value plus this; c - a
# moves from +0.125 to -0.500 there, b - a not at all
LATE = {("c", 0): 0.625}


def record(run: str, seed: int, value: float, late: float = 0.0) -> dict:
    return {
        "schema": 1, "experiment": "fig9", "profile": "quick", "step": f"{run}@s{seed}", "kind": "train",
        "labels": {"run": run, "seed": seed}, "device": "fixture", "date": "2026-01-03T09:00:00+00:00",
        "status": "completed", "metric": "bpc", "steps": 100, "final": {"valid": {"bpc": value}},
        "curve": [{"step": 50, "bpc": value + 1.0}, {"step": 75, "bpc": value + late}, {"step": 100, "bpc": value}],
    }


@pytest.fixture
def seeded(tmp_path) -> Path:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "fig9.yaml").write_text(DEFINITION)
    folder = tmp_path / "runs" / "quick" / "fig9"
    folder.mkdir(parents=True)
    for (run, seed), value in FINALS.items():
        (folder / f"{run}@s{seed}.json").write_text(json.dumps(record(run, seed, value, LATE.get((run, seed), 0.0))))
    return tmp_path


def test_a_page_from_two_seeds(seeded):
    out = run_cli(["table", "--runs", "runs", "--out", "out", "--experiments", "defs"], seeded)
    assert out.returncode == 0, out.stderr
    page = (seeded / "out" / "fig9.md").read_text()
    # b - a per seed: +0.010, +0.006: mean +0.008, spread 0.002; + 0.010 <= 0.02: holds
    assert "| a | 100 | - | 4.010 ± 0.010 (2 seeds) | curve only | - |" in page
    assert "| b | 100 | - | 4.018 ± 0.008 (2 seeds) | curve only | +0.008 ± 0.002 vs a (2 seeds) |" in page
    assert "| c | 100 | - | 3.500 (1 seed) | curve only | -0.500 vs a (1 seed) |" in page
    assert ("Verdict: b is not worse than a — b − a: +0.008 bpc, seeds ±0.002 (2 seeds), last quarter moved 0.000"
            " (stable: at most 0.010), tolerance 0.02: **holds**\n") in page
    unstable = "difference not stable over the last quarter: it moved 0.625, more than 0.250"
    assert ("Verdict: c is better than a — c − a: -0.500 bpc (1 seed), last quarter moved 0.625 (stable: at most"
            f" 0.250), tolerance 0: **inconclusive at this scale** (one seed: a verdict needs two; {unstable})\n") in page
    verdicts_at = page.index("## Verdicts")
    assert page.index("| reproduce |") < verdicts_at < page.index("## a panel")
    assert "- b is not worse than a: **holds**\n" in page
    assert f"- c is better than a: **inconclusive at this scale** (one seed: a verdict needs two; {unstable})\n" in page
    assert "at or after 75% of its steps" in page  # the criterion is stated
    png = (seeded / "out" / "fig9.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_verdicts_as_data(seeded):
    experiment = load_experiment(seeded / "defs" / "fig9.yaml")
    found = experiment_verdicts(experiment, seeded / "runs")
    assert [(v["claim"], v["verdict"], v["seeds"], v["page"]) for v in found] == [
        ("b is not worse than a", HOLDS, 2, "fig9.md"), ("c is better than a", INCONCLUSIVE, 1, "fig9.md")]
    assert found[0]["difference"] == pytest.approx(0.008) and found[0]["spread"] == pytest.approx(0.002)
    assert (found[0]["moved"], found[0]["stable_within"]) == (pytest.approx(0.0), pytest.approx(0.01))
    assert (found[1]["moved"], found[1]["stable_within"]) == (0.625, 0.25)
    # b's seed 1 still 0.5 worse at step 75: the mean difference moved 0.25 over the last quarter,
    # so the claim that held on the final values alone is no longer decided
    folder = seeded / "runs" / "quick" / "fig9"
    (folder / "b@s1.json").write_text(json.dumps(record("b", 1, FINALS[("b", 1)], late=0.5)))
    moving = experiment_verdicts(experiment, seeded / "runs")[0]
    assert (moving["verdict"], moving["moved"]) == (INCONCLUSIVE, pytest.approx(0.25))
    (seeded / "runs" / "quick" / "fig9" / "c@s0.json").unlink()
    assert experiment_verdicts(experiment, seeded / "runs")[1]["verdict"] == MISSING


def test_curves_pages_say_which_lsh_their_records_computed():
    """A page built from records of the old across-bucket LSH says so (fig4's smoke records predate
    the paper's same-bucket rule); records of the paper's LSH say that instead."""
    from reformer_cli.definitions.experiments import EXPERIMENTS_DIR
    from reformer_cli.table.common import Context
    from reformer_cli.table.curves import lsh_semantics

    fig4 = load_experiment(EXPERIMENTS_DIR / "fig4.yaml")

    def train(attention: dict) -> dict:
        return {"kind": "train", "config": {"attention": attention}}

    legacy = Context(fig4, "smoke", {"full": train({"name": "full"}), "lsh-2": train({"name": "lsh", "dedup": False})}, "runs")
    assert lsh_semantics(legacy) == ("across buckets, without the duplicate correction"
                                     " (trained before the paper's rule was the default)")
    paper = Context(fig4, "cpu", {"lsh-2": train({"name": "lsh", "attend_across_buckets": False, "dedup": True})}, "runs")
    assert lsh_semantics(paper) == "the paper's same-bucket rule, with the duplicate correction"
    assert lsh_semantics(Context(fig4, "cpu", {"full": train({"name": "full"})}, "runs")) == ""


def test_a_page_names_records_made_by_an_earlier_definition_of_their_step():
    """Table 2's cpu LSH rows were retrained with more steps: until a row runs again its old
    records are shown, and the page says which; an evaluation older than its training run is
    stale too, while records of the current definitions are not."""
    from reformer_cli.definitions.experiments import EXPERIMENTS_DIR
    from reformer_cli.table.common import Context, stale_records

    table2 = load_experiment(EXPERIMENTS_DIR / "table2.yaml")
    steps = {s.name: s for s in table2.profile("cpu").steps}

    def record(name: str, date: str, definition: list | None = None) -> dict:
        step = steps[name]
        return {"kind": step.kind, "definition": step.args if definition is None else definition, "date": date}

    records = {
        "full": record("full", "2026-01-01"), "full__lsh-1": record("full__lsh-1", "2026-01-02"),
        "lsh-1": record("lsh-1", "2026-01-05"), "lsh-1__lsh-1": record("lsh-1__lsh-1", "2026-01-04"),
        "lsh-2": record("lsh-2", "2026-01-01", ["run", "trainer.max_steps=1000"]),
        "lsh-2__lsh-8": record("lsh-2__lsh-8", "2026-01-02"),
    }
    assert stale_records(Context(table2, "cpu", records, "runs")) == ["lsh-1__lsh-1", "lsh-2", "lsh-2__lsh-8"]


def test_an_evaluation_is_stale_unless_dated_at_or_after_its_training_run():
    """The one rule the runner (is the step done?) and the pages (is the record stale?) share."""
    from reformer_cli.definitions.curated import evaluated_before_training as before

    assert before({"date": "2026-01-01T10:00:00"}, {"date": "2026-01-02T09:00:00"})
    assert not before({"date": "2026-01-02T09:00:00"}, {"date": "2026-01-02T09:00:00"})
    assert not before({"date": "2026-01-03T00:00:00"}, {"date": "2026-01-02T23:59:59"})
    assert before({}, {"date": "2026-01-02"})  # an evaluation without a date predates every training run
    assert before({"date": "2026-01-02"}, {"date": None})  # nothing says it saw an undated training run
