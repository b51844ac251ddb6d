"""The order in which a reproduction runs its planned steps, and how many run at once.

Steps are grouped twice:
- a *batch* runs in one process: one step, or the consecutive evaluations of one trained model;
- a *unit* runs on one worker: a training run followed by the batches evaluating it (they need
  its checkpoint), or a batch on its own (a benchmark, evaluations of a model trained earlier).

With `jobs` = 1 the units run one after another, in order. With more, up to `jobs` units run at
once, started in order; a benchmark's unit is *exclusive*: it starts only after everything before
it has finished, and nothing starts until it has, so no timing is measured beside a training run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from .steps import Bench, Evaluate, StepRun, Train


def batches(planned: list[StepRun]) -> list[list[StepRun]]:
    """The planned steps in order, one per batch, except that the consecutive evaluations of one
    trained model form one batch (they run in one process)."""
    out: list[list[StepRun]] = []
    for run in planned:
        last = out[-1][0] if out else None
        if isinstance(run, Evaluate) and isinstance(last, Evaluate) and last.training is run.training:
            out[-1].append(run)
        else:
            out.append([run])
    return out


@dataclass
class Unit:
    """Batches that run one after another on one worker."""

    batches: list[list[StepRun]] = field(default_factory=list)

    @property
    def exclusive(self) -> bool:
        """A benchmark measures time (or memory): it runs with nothing beside it."""
        return any(isinstance(run, Bench) for batch in self.batches for run in batch)


def units(planned: list[StepRun]) -> list[Unit]:
    """The planned batches in order, each evaluation batch joined to the unit of the training run
    it evaluates when that run is planned too."""
    out: list[Unit] = []
    training_unit: dict[int, Unit] = {}
    for batch in batches(planned):
        first = batch[0]
        if isinstance(first, Evaluate) and id(first.training) in training_unit:
            training_unit[id(first.training)].batches.append(batch)
            continue
        unit = Unit([batch])
        if isinstance(first, Train):
            training_unit[id(first)] = unit
        out.append(unit)
    return out


def run_units(planned: list[Unit], run_unit: Callable[[Unit], None], jobs: int) -> None:
    """Run every unit with `run_unit`, at most `jobs` at once (see the module's docstring). The
    worker threads live until all units are done: a child process is tied to the thread that
    started it (execute.py)."""
    if jobs <= 1:
        for unit in planned:
            run_unit(unit)
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="reproduce") as pool:
        running = []
        for unit in planned:
            if unit.exclusive:
                finish(running)
                running = []
                finish([pool.submit(run_unit, unit)])
            else:
                running.append(pool.submit(run_unit, unit))
        finish(running)


def finish(futures: list) -> None:
    """Wait for these units; an unexpected error in one is raised here, after all have ended."""
    wait(futures)
    for future in futures:
        future.result()
