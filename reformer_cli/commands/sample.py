"""`reformer sample RUN_OR_CHECKPOINT [options]`: use a trained model (decoding/by_task.py does the
work; this module parses, calls and exits)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OneLineParser, UserError, report_and_exit


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer sample",
        description="Sample from a trained model with cached decoding; what is drawn is the task's kind of"
        " sample. Text continues a prompt and prints each sample as it is drawn; images go to a PNG grid of"
        " images drawn (or, with --complete N, of valid images completed from their upper rows); copies (the"
        " duplication task) copy words and report the copy's accuracy. The record goes to FOLDER/sample.json (default outputs/sample/<date>_<time>/).",
    )
    p.add_argument("checkpoint", help="a run folder (its newest checkpoint) or a checkpoint file")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="text to continue (copies: the word's symbols, e.g. '5 17 3')")
    prompt.add_argument("--prompt-file", type=Path, help="a file whose bytes are the prompt")
    p.add_argument("--length", type=int, help="tokens to draw (default: 200 bytes of text, or what fits; a whole"
                   " window of image)")
    p.add_argument("--temperature", type=float, help="default 1 (copies: 0, the most likely symbol)")
    p.add_argument("--top-k", type=int, default=0, help="draw from the k most likely tokens (default 0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="draw from the smallest set of tokens holding this"
                   " probability (default 1: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds the draws and the LSH rotations (default 0)")
    p.add_argument("--count", type=int, default=1, help="how many samples (copies: valid sequences copied)")
    p.add_argument("--complete", type=int, default=0, metavar="N", help="images: complete the first N valid"
                   " images from their upper rows")
    p.add_argument("--prompt-rows", type=int, help="images, --complete: image rows given (default half)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--out", type=Path, help="the folder for sample.json and samples.png")
    return p


def main(args: list[str]) -> int:
    opts = parser().parse_args(args)
    try:
        from datetime import datetime

        from ..decoding.by_task import SampleRequest, sample
        from ..loading import load

        if opts.prompt_file is not None:
            if not opts.prompt_file.is_file():
                what = "a folder, not a file" if opts.prompt_file.is_dir() else "no such file"
                raise UserError(f"--prompt-file {opts.prompt_file}: {what}")
            prompt = opts.prompt_file.read_bytes()
        else:  # the bytes given, UTF-8 or not (Python keeps other bytes of argv as surrogates)
            prompt = None if opts.prompt is None else opts.prompt.encode("utf-8", "surrogateescape")
        request = SampleRequest(prompt=prompt, length=opts.length, temperature=opts.temperature, top_k=opts.top_k,
                                top_p=opts.top_p, seed=opts.seed, count=opts.count, complete=opts.complete,
                                prompt_rows=opts.prompt_rows)
        out = opts.out or Path("outputs") / "sample" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        trained = load(opts.checkpoint, opts.device, "--device")
        sample(trained, request, out, sys.stdout)
    except UserError as exc:
        report_and_exit(str(exc), exc.exit_code)
    return 0
