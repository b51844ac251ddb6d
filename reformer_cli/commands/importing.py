"""`reformer import hf PATH [--out DIR] [OVERRIDE ...]`: a saved HuggingFace transformers Reformer
(config.json + model.safetensors or pytorch_model.bin) as a run folder of this project, which
`reformer eval`, `reformer run ... resume=<folder>` and `reformer runs` take. The work is
reformer_cli/hf_import/."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import OneLineParser, UserError, report_and_exit


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer import",
        description="Turn a model saved elsewhere into a run folder of this project (config.yaml and"
        " checkpoints/step-0.pt).",
    )
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True, parser_class=OneLineParser)
    hf = sources.add_parser(
        "hf", help="a saved transformers ReformerModelWithLMHead (LSH layers; config.json + weights)",
        description="Import a saved transformers Reformer language model: a folder with config.json and"
        " model.safetensors or pytorch_model.bin (save_pretrained, or huggingface-cli download). transformers"
        " itself is not needed. OVERRIDEs are `reformer run` overrides, chiefly the task the model was trained"
        " on (task=enwik8); the model's own settings come from config.json.",
    )
    hf.add_argument("path", type=Path, metavar="PATH", help="the saved model's folder")
    hf.add_argument("--out", type=Path, default=None,
                    help="the run folder to write (default: outputs/<task>/<date>_<time>_hf-<name>)")
    hf.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="reformer run overrides, e.g. task=enwik8")
    return p


def main(args: list[str]) -> int:
    p = parser()
    opts, rest = p.parse_known_args(args)  # overrides may come after --out too
    flags = [a for a in rest if a.startswith("-")]
    if flags:
        p.error(f"unrecognized arguments: {' '.join(flags)}")
    opts.overrides = [*opts.overrides, *rest]
    from ..hf_import.importer import import_hf

    try:
        imported = import_hf(opts.path, list(opts.overrides), opts.out)
    except UserError as exc:
        report_and_exit(str(exc))
    for line in imported.notes:
        sys.stdout.write(f"note: {line}\n")
    folder = shlex.quote(str(imported.folder))
    sys.stdout.write(
        f"imported {opts.path} ({imported.n_parameters:,} parameters) into {imported.folder}\n"
        f"  evaluate:          reformer eval checkpoint={folder}\n"
        f"  continue training: reformer run {' '.join(shlex.quote(o) for o in imported.overrides)} resume={folder}\n"
    )
    return 0
