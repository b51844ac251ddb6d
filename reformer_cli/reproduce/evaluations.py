"""The evaluations of one trained model in one process (the batch evaluator), both sides of it.

`reformer reproduce` evaluates each trained model of Table 2 several ways; one process for all of
them saves a Python + torch start-up per evaluation (seconds each, on a CPU and on a GPU machine).
The runner writes a spec (`write_spec`): a list of `Evaluation`s (the checkpoint, the settings the
experiment defines, the record to write, the folder), and starts
`python -m reformer_cli.reproduce.evaluations SPEC.json RESULTS.json`. Each evaluation writes the
record `reformer eval <Evaluation.arguments()>` would write (evaluation.evaluate_checkpoint); the
process writes RESULTS.json, one entry per evaluation: {output, status: ok | error, seconds,
message}, which the runner reads (`read_results`). Exit code 1 if any failed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError, one_line
from ..eval_arguments import EvalArguments
from ..hydra_entry import compose
from ..records import write_json_atomic


@dataclass
class Evaluation:
    """One evaluation of a batch: `reformer eval` of `checkpoint` under `settings` (the overrides the
    experiment defines), its record written to `output`, its run folder `folder`."""

    checkpoint: str
    settings: list[str]
    output: str
    folder: str

    def arguments(self) -> list[str]:
        """What follows `reformer eval` on the command line for this evaluation."""
        return [f"checkpoint={self.checkpoint}", *self.settings, f"output={self.output}",
                f"hydra.run.dir={self.folder}", "progress=plain"]


@dataclass
class Result:
    output: str  # the record the evaluation was to write
    status: str  # ok | error
    seconds: float
    message: str = ""


def write_spec(path: Path, evaluations: list[Evaluation]) -> None:
    """The spec of a batch: one object per evaluation."""
    path.write_text(json.dumps([asdict(e) for e in evaluations], indent=1) + "\n")


def read_spec(path: Path) -> list[Evaluation]:
    return [Evaluation(**entry) for entry in json.loads(Path(path).read_text())]


def read_results(path: Path) -> dict[str, Result]:
    """{output: result} of a batch ({} if the process wrote no results)."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {entry["output"]: Result(**entry) for entry in entries}


def evaluate_one(evaluation: Evaluation) -> None:
    from ..evaluation import evaluate_checkpoint

    arguments = EvalArguments.parse(evaluation.arguments()).with_trained_attention()
    evaluate_checkpoint(compose("eval", list(arguments.args)), arguments.explicit, Path(evaluation.output))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m reformer_cli.reproduce.evaluations SPEC.json RESULTS.json\n")
        return 2
    results: list[Result] = []
    for evaluation in read_spec(Path(argv[0])):
        start = time.monotonic()
        try:
            evaluate_one(evaluation)
            results.append(Result(evaluation.output, "ok", time.monotonic() - start))
        except UserError as exc:
            results.append(Result(evaluation.output, "error", time.monotonic() - start, one_line(str(exc))))
        write_json_atomic(Path(argv[1]), [asdict(r) for r in results])  # after each: a stop keeps the done ones
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
