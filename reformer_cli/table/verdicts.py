"""Verdicts: a claim of the paper (`checks:` of a curves panel) decided from the records.

Per seed s that both runs have, d_s = value(run, s) - value(baseline, s), its sign flipped for a
metric where higher is better (accuracy), so that d_s < 0 always means the run is better. With
m the mean of the d_s and spread half their range ((max - min) / 2, 0 with one seed):

    not_worse  holds if m + spread <= tolerance; does not hold if m - spread > tolerance
    better     holds if m + spread < -tolerance; does not hold if m - spread >= 0

and inconclusive otherwise. One paired seed is always inconclusive (a verdict needs two); no
paired record at all is `missing`. Pure arithmetic on numbers: no records, no files.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..definitions.experiments import EXPECTATIONS

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive at this scale"
MISSING = "missing"
ONE_SEED = "one seed: a verdict needs two"
HIGHER_IS_BETTER = {"accuracy"}



@dataclass
class Verdict:
    """One check decided: the difference is run - baseline in the metric's unit (its sign not
    flipped), mean over the paired seeds, and spread half the range of the per-seed differences."""

    claim: str
    run: str
    baseline: str
    expect: str
    tolerance: float
    metric: str
    verdict: str
    difference: float | None  # None: missing
    spread: float | None
    seeds: int  # paired seeds
    task: str | None = None
    page: str = ""  # the page that shows it, e.g. fig3.md

    @property
    def note(self) -> str:
        """Why the verdict cannot be more than inconclusive, or ''."""
        return ONE_SEED if self.seeds == 1 else ""


def paired_differences(run: dict, baseline: dict) -> list[float]:
    """run - baseline per seed that both have ({seed: value}), in seed order (None first)."""
    common = sorted(set(run) & set(baseline), key=lambda s: (s is not None, s or 0))
    return [run[s] - baseline[s] for s in common]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def spread(values: list[float]) -> float:
    """Half the range of `values`: (max - min) / 2; 0 for one value."""
    return (max(values) - min(values)) / 2


def decide(differences: list[float], expect: str, tolerance: float, metric: str) -> str:
    """The verdict on the per-seed differences run - baseline (as measured; the sign is flipped
    here for a metric where higher is better)."""
    if not differences:
        return MISSING
    if len(differences) < 2:
        return INCONCLUSIVE
    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
    d = [sign * x for x in differences]
    m, s = mean(d), spread(d)
    if expect == "not_worse":
        if m + s <= tolerance:
            return HOLDS
        return FAILS if m - s > tolerance else INCONCLUSIVE
    if expect == "better":
        if m + s < -tolerance:
            return HOLDS
        return FAILS if m - s >= 0 else INCONCLUSIVE
    raise ValueError(f"unknown expectation {expect!r} (one of: {', '.join(EXPECTATIONS)})")


def verdict(check: dict, run: dict, baseline: dict, metric: str, task: str | None = None, page: str = "") -> Verdict:
    """A check of a panel (claim, run, baseline, expect, tolerance) decided from the final values
    of its run and baseline, each {seed: value}."""
    differences = paired_differences(run, baseline)
    tolerance = float(check.get("tolerance", 0.0))
    return Verdict(
        claim=" ".join(str(check["claim"]).split()), run=str(check["run"]), baseline=str(check["baseline"]),
        expect=str(check["expect"]), tolerance=tolerance, metric=metric,
        verdict=decide(differences, str(check["expect"]), tolerance, metric),
        difference=mean(differences) if differences else None,
        spread=spread(differences) if differences else None,
        seeds=len(differences), task=task, page=page,
    )
