"""`reformer <command> ...`: parse the command word and dispatch. Nothing heavy is imported here
(the command modules import their work when they run).

`run` and `eval` are Hydra apps (everything after the command word goes to Hydra); the other
commands use argparse. `python -m reformer_cli` is the same entry point (torchrun needs it).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from . import __version__
from .commands import bench, compare, data, evaluate, importing, reproduce, run, runs, sample, table

# command word -> (module with a `main(args: list[str]) -> int | None`, one-line description)
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "run": (run, "train one configuration (Hydra: overrides, -m sweeps, --cfg job)"),
    "eval": (evaluate, "evaluate a checkpoint, optionally under another attention (Table 2)"),
    "sample": (sample, "sample from a trained model (cached decoding): text, an image grid or a copy, as the task samples"),
    "bench": (bench, "speed and memory benchmarks"),
    "data": (data, "download, verify and prepare a task's dataset (`reformer data --help` lists them)"),
    "reproduce": (reproduce, "run the paper's experiments (experiments/) at a profile: smoke, quick, paper"),
    "runs": (runs, "list the runs under outputs/ (or folders): status, steps, final and best metric; filter, sort, --json"),
    "compare": (compare, "plot and tabulate several runs (or sweeps) side by side: compare.png, compare.md"),
    "import": (importing, "a saved HuggingFace transformers Reformer (config.json + weights) as a run folder: import hf PATH"),
    "table": (table, "rebuild results/*.md tables and plots from results/runs/, beside the paper's numbers"),
}

USAGE = """usage: reformer <command> [args]

Reproduce 'Reformer: The Efficient Transformer' (Kitaev, Kaiser, Levskaya, ICLR 2020).

commands:
{commands}

`reformer <command> --help` describes each command. Example:
  reformer run task=synthetic attention.n_rounds=4      # the paper's LSH (the default attention), 4 rounds
"""


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if args[0] in ("-V", "--version"):
        sys.stdout.write(f"reformer {__version__}\n")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"error: unknown command '{command}' (commands: {', '.join(COMMANDS)})\n")
        return 2
    try:
        return int(COMMANDS[command][0].main(rest) or 0)
    except KeyboardInterrupt:  # Ctrl-C outside the places that handle it themselves
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
