"""Several `reformer eval` commands in one process: `python -m reformer_cli.eval_batch SPEC.json`.

`reformer reproduce` evaluates each trained model of Table 2 five ways; one process for all of
them saves a Python + torch start-up per evaluation (seconds each, on a CPU and on a GPU machine).
SPEC.json is a list of argument lists, each exactly what follows `reformer eval` on the command
line (with `output=PATH`); each writes the record that command would write. One line per
evaluation on stdout: `eval-batch: ok|error SECONDS OUTPUT [message]`. Exit code 1 if any failed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .errors import UserError, one_line

PREFIX = "eval-batch:"


def evaluate_one(args: list[str]) -> Path:
    from .evaluation import evaluate_checkpoint
    from .hydra_entry import compose, select_trained_attention

    args = select_trained_attention(list(args))
    cfg = compose("eval", args)
    if not cfg.output:
        raise UserError("output=PATH is required in a batch")
    out = Path(cfg.output)
    evaluate_checkpoint(cfg, args, out)
    return out


def output_of(args: list[str]) -> str:
    return next((a.split("=", 1)[1] for a in args if a.startswith("output=")), "?")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m reformer_cli.eval_batch SPEC.json\n")
        return 2
    batch = json.loads(Path(argv[0]).read_text())
    failed = 0
    for args in batch:
        start = time.monotonic()
        try:
            evaluate_one(args)
            print(f"{PREFIX} ok {time.monotonic() - start:.2f} {output_of(args)}", flush=True)
        except UserError as exc:
            failed += 1
            print(f"{PREFIX} error {time.monotonic() - start:.2f} {output_of(args)} {one_line(str(exc))}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
