"""The evaluations of one trained model in one process (the batch evaluator), both sides of it.

`reformer reproduce` evaluates each trained model of Table 2 several ways; one process for all of
them saves a Python + torch start-up per evaluation (seconds each, on a CPU and on a GPU machine).
The runner writes a spec (`write_spec`): a list of argument lists, each exactly what follows
`reformer eval` on the command line (with `output=PATH`), and starts
`python -m reformer_cli.reproduce.evaluations SPEC.json RESULTS.json`. Each evaluation writes the
record that command would write (evaluation.evaluate_checkpoint); the process writes RESULTS.json,
one entry per evaluation: {output, status: ok | error, seconds, message}, which the runner reads
(`read_results`). Exit code 1 if any failed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError, one_line
from ..records import write_json_atomic


@dataclass
class Result:
    output: str  # the record the evaluation was to write
    status: str  # ok | error
    seconds: float
    message: str = ""


def write_spec(path: Path, commands: list[list[str]]) -> None:
    """The spec of a batch: each entry the arguments after `reformer eval`."""
    path.write_text(json.dumps(commands, indent=1) + "\n")


def read_results(path: Path) -> dict[str, Result]:
    """{output: result} of a batch ({} if the process wrote no results)."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {entry["output"]: Result(**entry) for entry in entries}


def output_of(args: list[str]) -> str:
    from ..eval_arguments import EvalArguments

    return EvalArguments.parse(args).output or "?"


def evaluate_one(args: list[str]) -> Path:
    from ..eval_arguments import EvalArguments
    from ..evaluation import evaluate_checkpoint
    from ..hydra_entry import compose

    arguments = EvalArguments.parse(args).with_trained_attention()
    cfg = compose("eval", list(arguments.args))
    if not cfg.output:
        raise UserError("output=PATH is required in a batch")
    out = Path(cfg.output)
    evaluate_checkpoint(cfg, arguments.explicit, out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m reformer_cli.reproduce.evaluations SPEC.json RESULTS.json\n")
        return 2
    batch = json.loads(Path(argv[0]).read_text())
    results: list[Result] = []
    for args in batch:
        start = time.monotonic()
        try:
            evaluate_one(args)
            results.append(Result(output_of(args), "ok", time.monotonic() - start))
        except UserError as exc:
            results.append(Result(output_of(args), "error", time.monotonic() - start, one_line(str(exc))))
        write_json_atomic(Path(argv[1]), [asdict(r) for r in results])  # after each: a stop keeps the done ones
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
