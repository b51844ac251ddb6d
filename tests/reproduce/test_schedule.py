"""`reformer reproduce --jobs N` (reformer_cli/reproduce/schedule.py): a training run keeps its
evaluations behind it on one worker, up to N units run at once, a benchmark runs with nothing
beside it; with one job the order is the plan's."""

from __future__ import annotations

import threading
import time

import pytest

from reformer_cli.definitions.experiments import load_experiments
from reformer_cli.reproduce.runner import Reproduction
from reformer_cli.reproduce.schedule import run_units, units
from reformer_cli.reproduce.steps import Prepare

from .test_runner import SEEDED, TINY


@pytest.fixture
def planned(tmp_path):
    """The steps of two definitions (no prepare steps): seeded's four trainings and two
    evaluations, then tiny's training, its two evaluations and two benchmarks."""
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "seeded.yaml").write_text(SEEDED)
    (defs / "tiny.yaml").write_text(TINY.replace("MAX_STEPS", "10"))
    runner = Reproduction(profile="quick", experiments=load_experiments(defs), outputs=tmp_path / "out",
                          results=tmp_path / "results", experiments_dir=defs)
    return [run for runs in runner.runs.values() for run in runs if not isinstance(run, Prepare)]


def names(unit) -> list[list[str]]:
    return [[run.name for run in batch] for batch in unit.batches]


def test_a_training_run_and_its_evaluations_make_one_unit(planned):
    got = [names(unit) for unit in units(planned)]
    assert got == [
        [["a@s0"]], [["a@s1"]], [["b@s0"], ["b@s0__test"]], [["b@s1"], ["b@s1__test"]],
        [["full"], ["full__full", "full__lsh-2"]],  # one model's evaluations: one batch, one process
        [["memory"]], [["nosuch"]],
    ]
    assert [unit.exclusive for unit in units(planned)] == [False] * 5 + [True] * 2
    # evaluations whose training is not planned (it finished earlier) are a unit of their own
    without_training = [run for run in planned if run.name != "full"]
    assert [names(unit) for unit in units(without_training)][4] == [["full__full", "full__lsh-2"]]


def timed(jobs: int, planned) -> dict[str, tuple[float, float]]:
    """Run the units with a stand-in that sleeps; the (start, end) of each unit by its first step."""
    spans: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()

    def run_unit(unit) -> None:
        start = time.monotonic()
        time.sleep(0.2)
        with lock:
            spans[unit.batches[0][0].name] = (start, time.monotonic())

    run_units(units(planned), run_unit, jobs)
    return spans


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_jobs_run_units_side_by_side_and_benchmarks_alone(planned):
    serial = timed(1, planned)
    order = sorted(serial, key=lambda name: serial[name][0])
    assert order == ["a@s0", "a@s1", "b@s0", "b@s1", "full", "memory", "nosuch"]
    assert not any(overlap(serial[x], serial[y]) for x in serial for y in serial if x < y)

    parallel = timed(2, planned)
    assert overlap(parallel["a@s0"], parallel["a@s1"]) and overlap(parallel["b@s0"], parallel["b@s1"])
    for bench in ("memory", "nosuch"):
        assert not any(overlap(parallel[bench], parallel[other]) for other in parallel if other != bench)
    # never more than two at once: count the units running at each start
    for name, (start, _) in parallel.items():
        assert sum(s <= start < e for s, e in parallel.values()) <= 2, name


def test_an_error_in_a_unit_is_raised_after_the_others_end(planned):
    ended: list[str] = []

    def run_unit(unit) -> None:
        name = unit.batches[0][0].name
        if name == "a@s0":
            raise RuntimeError("boom")
        time.sleep(0.05)
        ended.append(name)

    with pytest.raises(RuntimeError, match="boom"):
        run_units(units(planned), run_unit, 2)
    assert "a@s1" in ended  # the unit beside it was not abandoned
