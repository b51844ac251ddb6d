"""Verdicts: a claim of the paper (`checks:` of a curves panel) decided from the records.

Per seed s that both runs have, d_s = value(run, s) - value(baseline, s), its sign flipped for a
metric where higher is better (accuracy), so that d_s < 0 always means the run is better. With
m the mean of the d_s and spread half their range ((max - min) / 2, 0 with one seed):

    not_worse  holds if m + spread <= tolerance; does not hold if m - spread > tolerance
    better     holds if m + spread < -tolerance; does not hold if m - spread >= 0

and inconclusive otherwise. One paired seed is always inconclusive (a verdict needs two); no
paired record at all is `missing`.

Compared runs must also have trained until their difference is stable (`stability_limit`): over
the periodic evaluations in the last quarter of training (at or after 75% of max_steps) the mean
paired difference may move by at most half the larger of the tolerance and |m|. A difference that
moved more, or that has fewer than two evaluations there to tell, is at most inconclusive, with a
note that says so. Pure arithmetic on numbers: no records, no files.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..definitions.experiments import EXPECTATIONS

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive at this scale"
MISSING = "missing"
ONE_SEED = "one seed: a verdict needs two"
UNCHECKED = "too few evaluations in the last quarter to tell whether the difference is stable"
HIGHER_IS_BETTER = {"accuracy"}
LAST_QUARTER = 0.75  # the stability check reads the evaluations at or after this fraction of max_steps


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
    moved: float | None = None  # max - min of the mean paired difference over the last quarter; None: unknown
    stable_within: float | None = None  # the most it may move (stability_limit); None: missing

    @property
    def stable(self) -> bool:
        return is_stable(self.moved, self.stable_within)

    @property
    def note(self) -> str:
        """Why the verdict cannot be more than inconclusive, or ''."""
        if self.verdict == MISSING:
            return ""
        notes = [ONE_SEED] if self.seeds == 1 else []
        if self.moved is None:
            notes.append(UNCHECKED)
        elif not self.stable:
            notes.append(f"difference not stable over the last quarter: it moved {self.moved:.3f},"
                         f" more than {self.stable_within:.3f}")
        return "; ".join(notes)


def paired_differences(run: dict, baseline: dict) -> list[float]:
    """run - baseline per seed that both have ({seed: value}), in seed order (None first)."""
    common = sorted(set(run) & set(baseline), key=lambda s: (s is not None, s or 0))
    return [run[s] - baseline[s] for s in common]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def spread(values: list[float]) -> float:
    """Half the range of `values`: (max - min) / 2; 0 for one value."""
    return (max(values) - min(values)) / 2


def last_quarter_movement(differences: dict[int, float], max_steps: int) -> float | None:
    """max - min of the mean paired difference ({step: value}, the periodic evaluations) over the
    evaluations at or after 75% of `max_steps`; None with fewer than two of them there."""
    late = [d for step, d in differences.items() if step >= LAST_QUARTER * max_steps]
    return max(late) - min(late) if len(late) >= 2 else None


def stability_limit(tolerance: float, difference: float) -> float:
    """How far the paired difference may move over the last quarter and still count as stable:
    half the larger of the claim's tolerance and the size of the final mean difference.

    The tolerance is the scale the claim is stated in. Half of it rather than all of it: a
    difference that still drifts by a whole tolerance per quarter of training could cross the
    claim's tolerance had training stopped a little earlier or gone on a little longer, so the
    verdict would rest on where it happened to stop. A `better` claim usually has no tolerance
    (0): there the scale is the difference itself, and moving by at most half of it means the
    difference kept its sign over the whole last quarter. A large difference likewise need not be
    constant to within a tolerance much smaller than itself to decide its claim.

    The periodic evaluations are estimates on the first `eval_batches` batches of the validation
    split, the same batches at every evaluation and for every run: the paired difference is free
    of the noise of drawing different batches, so the raw estimates are used, not a smoothed
    version."""
    return max(tolerance, abs(difference)) / 2


def is_stable(moved: float | None, limit: float | None) -> bool:
    """Whether a difference that moved `moved` over the last quarter is stable (None: unknown, not stable)."""
    return moved is not None and limit is not None and moved <= limit


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


def verdict(check: dict, run: dict, baseline: dict, metric: str, task: str | None = None, page: str = "", *,
            moved: float | None) -> Verdict:
    """A check of a panel (claim, run, baseline, expect, tolerance) decided from the final values
    of its run and baseline, each {seed: value}, and `moved`, how much their paired difference
    moved over the last quarter (`last_quarter_movement`; None: unknown). A difference that is not
    stable turns holds and does not hold into inconclusive."""
    differences = paired_differences(run, baseline)
    tolerance = float(check.get("tolerance", 0.0))
    decided = decide(differences, str(check["expect"]), tolerance, metric)
    limit = stability_limit(tolerance, mean(differences)) if differences else None
    if decided in (HOLDS, FAILS) and not is_stable(moved, limit):
        decided = INCONCLUSIVE
    return Verdict(
        claim=" ".join(str(check["claim"]).split()), run=str(check["run"]), baseline=str(check["baseline"]),
        expect=str(check["expect"]), tolerance=tolerance, metric=metric,
        verdict=decided,
        difference=mean(differences) if differences else None,
        spread=spread(differences) if differences else None,
        seeds=len(differences), task=task, page=page,
        moved=moved if differences else None, stable_within=limit,
    )
