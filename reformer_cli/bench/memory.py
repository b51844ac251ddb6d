"""`reformer bench memory`: memory of one training step, standard vs reversible layers, over depths.

For each layer kind and depth it builds the model, runs one training step (forward, backward and,
with `--optimizer adamw`, an optimizer step) and reports

* **saved for backward**: the bytes of every tensor autograd keeps for the backward pass, counted
  through `torch.autograd.graph.saved_tensors_hooks`, each storage once, parameters excluded (on
  any device; this is what reversible layers and chunking lower), and
* **peak allocated** (CUDA only): `torch.cuda.max_memory_allocated` over the step after a reset,
  parameters, gradients and optimizer state included: the number a GPU has to hold, and
* **peak RSS rise**: how much the process's peak resident memory (`resource.getrusage`'s
  ru_maxrss) rose during the measured step. It is a lower bound of what the step needed beyond
  what the process had already reached (an earlier row's peak hides a smaller one); with
  `--fresh-process` each row runs in its own new process, so only that row's setup precedes it.

"Saved for backward" is not the process's memory: it leaves out the weights, gradients, optimizer
state, workspaces and the allocator's cache. The step time is the median (min-max) of `--repeats`
timed steps, the first of them the measured one.

An out-of-memory error is a result ("OOM"), not a crash. `--markdown` and `--json` write the table
with the device, date and the exact command. Defaults are small enough for a CPU in seconds; the
paper's claim (12 layers, d_model 1024, d_ff 4096, 8 heads, LSH, 65,536 tokens) is in the README.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import torch

from ..attention.registry import baseline, spec_of, specs
from ..config import LayerConfig, ModelConfig, TrainerConfig, validate_attention, validate_model
from ..errors import ConfigError, OneLineParser
from ..optimization import build_optimizer, train_step
from ..records import code_version, write_json_atomic, write_text_atomic
from ..runtime import device_name, resolve_precision
from ..tasks.base import Batch
from .common import (
    comma_ints, is_oom, markdown_table, plain_table, release, resolve_device, run_main, synchronize,
)

MIB = 2**20
LAYERS = ("standard", "reversible")


# ------------------------------------------------------------------------------ measuring


class SavedBytes:
    """Counts the bytes autograd saves for backward while active: each storage once.

    `exclude` holds tensors not to count (the parameters: they exist whether saved or not).
    Use as a context manager around the forward pass."""

    def __init__(self, exclude: Iterator[torch.Tensor] = ()):
        self._excluded = {self._key(t) for t in exclude}
        self._seen: dict[tuple, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @staticmethod
    def _key(t: torch.Tensor) -> tuple:
        return (t.device, t.untyped_storage().data_ptr())

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = self._key(t)
        if key not in self._excluded and key not in self._seen:
            self._seen[key] = t.untyped_storage().nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self._seen.values())

    def __enter__(self) -> "SavedBytes":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


@dataclass
class Setting:
    """Everything one measurement depends on (the command's options)."""

    d_model: int = 64
    d_ff: int = 256
    heads: int = 2
    d_head: int | None = None
    vocab: int = 256
    length: int = 512
    batch: int = 1
    attention: str = baseline().name  # an attention type's name (the registry's)
    shared_qk: bool = False
    rounds: int = 1
    chunk_length: int = 64
    n_buckets: int | None = None
    ff_chunks: int = 1
    loss_chunks: int = 1
    positions: str = "learned"
    dropout: float = 0.0
    optimizer: str = "none"
    warmup_steps: int = 0
    repeats: int = 1
    seed: int = 0

    def model_config(self, depth: int) -> Any:
        from omegaconf import OmegaConf

        return OmegaConf.structured(
            ModelConfig(
                d_model=self.d_model, d_ff=self.d_ff, n_heads=self.heads, d_head=self.d_head, n_layers=depth,
                dropout=self.dropout, positions=self.positions, ff_chunks=self.ff_chunks,
                loss_chunks=self.loss_chunks,
            )
        )

    def attention_node(self) -> Any:
        """The attention type's config (its spec's schema) with the options that are keys of it."""
        schema = spec_of(self.attention).schema
        options = {"n_rounds": self.rounds, "chunk_length": self.chunk_length, "n_buckets": self.n_buckets,
                   "shared_qk": self.shared_qk, "dropout": self.dropout}
        keys = {f.name for f in fields(schema)}
        return schema(**{key: value for key, value in options.items() if key in keys})

    def attention_config(self) -> Any:
        from omegaconf import OmegaConf

        return OmegaConf.structured(self.attention_node())

    def attention_text(self) -> str:
        """The attention and its settings in words, as its spec states them (`LSH, 2 round(s), chunk 64`)."""
        return spec_of(self.attention).describe(asdict(self.attention_node()))

    def check(self, depths: list[int]) -> None:
        """Config errors before any work (one line)."""
        for depth in depths:
            validate_model(self.model_config(depth), self.length)
        validate_attention(self.attention_config(), self.length)
        for key in ("vocab", "length", "batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key}={getattr(self, key)} must be a positive integer")


@dataclass
class Result:
    layer: str
    depth: int
    status: str  # ok | OOM
    saved_bytes: int | None = None
    peak_bytes: int | None = None  # CUDA only
    param_bytes: int | None = None
    seconds: float | None = None  # median over `repeats` steps
    seconds_min: float | None = None
    seconds_max: float | None = None
    repeats: int | None = None
    rss_rise_bytes: int | None = None  # rise of the process's peak RSS (ru_maxrss) during the measured step


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure_fresh(setting: Setting, layer: str, depth: int, device: torch.device, precision: str) -> Result:
    """`measure` in a new process (spawned: nothing of this one's memory carries over)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (setting, layer, depth, str(device), precision))


def build(setting: Setting, layer: str, depth: int, device: torch.device) -> torch.nn.Module:
    from omegaconf import OmegaConf

    from ..model.reformer import ReformerLM

    torch.manual_seed(setting.seed)  # the benchmark owns its process: same weights for every row
    model = ReformerLM(
        setting.model_config(depth), setting.attention_config(), OmegaConf.structured(LayerConfig(name=layer)),
        setting.vocab, setting.length,
    )
    return model.to(device).train()


def training_step(model, optimizer, batch: Batch, device, precision, seed: int, meter=None):
    """The step `reformer run` takes (optimization.train_step; no clipping, and without an
    optimizer the gradients are only cleared); `meter` (a SavedBytes) watches the forward."""
    train_step(model, model, optimizer, [(batch, seed)], grad_clip=0.0, device=device, precision=precision,
               watch=meter)


def measure(setting: Setting, layer: str, depth: int, device: torch.device, precision: str) -> Result:
    """One row of the table: build, warm up, measure one step (then time `repeats - 1` more).
    OOM is reported, not raised."""
    device = torch.device(device)
    result = Result(layer, depth, "ok")
    oom = False
    try:
        model = build(setting, layer, depth, device)
        result.param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        optimizer = build_optimizer(TrainerConfig(lr=1e-4), model) if setting.optimizer == "adamw" else None
        gen = torch.Generator().manual_seed(setting.seed)
        shape = (setting.batch, setting.length)
        batch = Batch(
            torch.randint(0, setting.vocab, shape, generator=gen).to(device),
            torch.randint(0, setting.vocab, shape, generator=gen).to(device),
            torch.ones(shape).to(device),
        )
        for step in range(setting.warmup_steps):
            training_step(model, optimizer, batch, device, precision, seed=step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        meter = SavedBytes(exclude=model.parameters())
        rss_before = peak_rss_bytes()
        start = time.perf_counter()
        training_step(model, optimizer, batch, device, precision, seed=setting.warmup_steps, meter=meter)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            result.peak_bytes = torch.cuda.max_memory_allocated(device)
        times = [time.perf_counter() - start]
        result.rss_rise_bytes = peak_rss_bytes() - rss_before
        result.saved_bytes = meter.total
        for i in range(1, max(1, setting.repeats)):
            start = time.perf_counter()
            training_step(model, optimizer, batch, device, precision, seed=setting.warmup_steps + i)
            synchronize(device)
            times.append(time.perf_counter() - start)
        result.seconds, result.seconds_min, result.seconds_max = statistics.median(times), min(times), max(times)
        result.repeats = len(times)
    except (RuntimeError, MemoryError) as exc:
        if not is_oom(exc):
            raise
        oom = True
    finally:
        model = optimizer = batch = meter = None  # noqa: F841  (drop references before freeing)
    if oom:
        result.status = "OOM"
    release(device)
    return result


# ------------------------------------------------------------------------------ reporting


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:,.1f}"


def table_rows(results: list[Result], cuda: bool) -> tuple[list[str], list[list[str]]]:
    header = ["layer", "depth", "saved for backward (MiB; autograd, not the process)", f"x depth {results[0].depth}" if results else "x"]
    if cuda:
        header.append("peak allocated (MiB)")
    header += ["parameters (MiB)", "peak RSS rise (MiB)", "step (s)", "min-max", "n"]
    first: dict[str, int] = {}
    rows = []
    for r in results:
        if r.status != "ok":
            row = [r.layer, str(r.depth), r.status, "-"] + (["OOM"] if cuda else []) + [_mib(r.param_bytes), "-", "-",
                                                                                          "-", "-"]
            rows.append(row)
            continue
        first.setdefault(r.layer, r.saved_bytes)
        ratio = f"{r.saved_bytes / first[r.layer]:.2f}" if first[r.layer] else "-"
        row = [r.layer, str(r.depth), _mib(r.saved_bytes), ratio]
        if cuda:
            row.append(_mib(r.peak_bytes))
        row += [_mib(r.param_bytes), _mib(r.rss_rise_bytes), f"{r.seconds:.3f}",
                f"{r.seconds_min:.3f}-{r.seconds_max:.3f}", str(r.repeats)]
        rows.append(row)
    return header, rows


def markdown(header: list[str], rows: list[list[str]], info: dict) -> str:
    s = info["setting"]
    attention = Setting(**{f.name: s[f.name] for f in fields(Setting) if f.name in s}).attention_text()
    lines = [
        "# Memory of one training step: standard vs reversible layers",
        "",
        f"- device: {info['device']}",
        f"- date: {info['date']}",
        f"- torch {info['torch']}, reformer {info['code_version'].get('package')}"
        f" (git {info['code_version'].get('git_sha') or 'unknown'})",
        f"- command: `{info['command']}`",
        f"- model: d_model {s['d_model']}, d_ff {s['d_ff']}, {s['heads']} heads, attention {attention},"
        f" length {s['length']}, batch {s['batch']}, vocab {s['vocab']}, ff_chunks {s['ff_chunks']},"
        f" loss_chunks {s['loss_chunks']}, positions {s['positions']}, precision {info['precision']},"
        f" optimizer {s['optimizer']}",
        "",
        "'saved for backward' counts the tensors autograd keeps for the backward pass (each storage once,"
        " parameters excluded): what reversible layers and chunking lower, not the process's memory."
        " 'peak allocated' is torch.cuda.max_memory_allocated over the step (parameters, gradients and"
        " optimizer state included). 'peak RSS rise': how much the process's peak resident memory"
        " (ru_maxrss) rose during the measured step, a lower bound of its memory beyond what the process"
        f" had already reached ({info.get('rss', 'one process for all rows')})."
        " step (s): median, min-max of n timed steps. OOM: out of memory.",
        "",
        *markdown_table(header, rows),
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ command line


def _layers(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in LAYERS]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"layers must be among {', '.join(LAYERS)}, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer bench memory",
        description="Memory of one training step (forward + backward) for standard and reversible layers over"
        " depths: bytes saved for backward (any device) and the CUDA allocator's peak.",
    )
    d = Setting()
    m = p.add_argument_group("model")
    m.add_argument("--d-model", type=int, default=d.d_model)
    m.add_argument("--d-ff", type=int, default=d.d_ff)
    m.add_argument("--heads", type=int, default=d.heads)
    m.add_argument("--d-head", type=int, default=None, help="default: d_model / heads")
    m.add_argument("--vocab", type=int, default=d.vocab)
    m.add_argument("--positions", choices=("learned", "axial", "none"), default=d.positions)
    m.add_argument("--dropout", type=float, default=d.dropout, help="model and attention dropout")
    m.add_argument("--ff-chunks", type=int, default=d.ff_chunks)
    m.add_argument("--loss-chunks", type=int, default=d.loss_chunks)
    a = p.add_argument_group("attention")
    a.add_argument("--attention", choices=sorted(specs()), default=d.attention)
    a.add_argument("--shared-qk", action="store_true", help="full attention with shared QK")
    a.add_argument("--rounds", type=int, default=d.rounds, help="LSH hash rounds")
    a.add_argument("--chunk-length", type=int, default=d.chunk_length, help="LSH or local chunk length")
    a.add_argument("--n-buckets", type=int, default=None, help="LSH buckets as one factor (default: the model's, 2 * length / chunk, factorised above 256)")
    r = p.add_argument_group("run")
    r.add_argument("--length", type=int, default=d.length, help="sequence length")
    r.add_argument("--batch", type=int, default=d.batch)
    r.add_argument("--depths", type=comma_ints, default=[2, 6, 12], help="comma-separated layer counts (default 2,6,12)")
    r.add_argument("--layers", type=_layers, default=list(LAYERS), help="standard,reversible (default both)")
    r.add_argument("--optimizer", choices=("none", "adamw"), default=d.optimizer,
                   help="adamw: include an optimizer step and its state in the peak")
    r.add_argument("--warmup-steps", type=int, default=None,
                   help="unmeasured steps before the measured one (default: 1 on CUDA, 0 on CPU)")
    r.add_argument("--repeats", type=int, default=1, help="timed steps, the first the measured one (1)")
    r.add_argument("--fresh-process", action="store_true",
                   help="measure each row in a new process (its peak RSS rise then is the row's own; slower)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    r.add_argument("--seed", type=int, default=d.seed)
    o = p.add_argument_group("output")
    o.add_argument("--markdown", type=Path, default=None, help="write the table as markdown (e.g. results/memory.md)")
    o.add_argument("--json", type=Path, default=None, help="write the records as JSON")
    return p


def run(args: argparse.Namespace, argv: list[str]) -> list[Result]:
    setting = Setting(
        d_model=args.d_model, d_ff=args.d_ff, heads=args.heads, d_head=args.d_head, vocab=args.vocab,
        length=args.length, batch=args.batch, attention=args.attention, shared_qk=args.shared_qk,
        rounds=args.rounds, chunk_length=args.chunk_length, n_buckets=args.n_buckets, ff_chunks=args.ff_chunks,
        loss_chunks=args.loss_chunks, positions=args.positions, dropout=args.dropout, optimizer=args.optimizer,
        repeats=max(1, args.repeats), seed=args.seed,
    )
    setting.check(args.depths)
    device = resolve_device(args.device)
    setting.warmup_steps = max(0, args.warmup_steps) if args.warmup_steps is not None else int(device.type == "cuda")
    precision = resolve_precision(args.precision, device)
    results = []
    for layer in args.layers:
        for depth in args.depths:
            result = (measure_fresh if args.fresh_process else measure)(setting, layer, depth, device, precision)
            sys.stderr.write(
                f"{layer} depth {depth}: "
                + (result.status if result.status != "ok" else f"saved {_mib(result.saved_bytes)} MiB"
                   + (f", peak {_mib(result.peak_bytes)} MiB" if result.peak_bytes is not None else ""))
                + "\n"
            )
            results.append(result)
    header, rows = table_rows(results, device.type == "cuda")
    sys.stdout.write(plain_table(header, rows) + "\n")
    info = {
        "device": f"{device_name(device)} ({device})",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "code_version": code_version(),
        "command": "reformer bench memory " + " ".join(shlex.quote(a) for a in argv),
        "precision": precision,
        "rss": "each row in a fresh process" if args.fresh_process else "one process for all rows, in order",
        "setting": asdict(setting),
    }
    if args.markdown is not None:
        write_text_atomic(args.markdown, markdown(header, rows, info))
    if args.json is not None:
        write_json_atomic(args.json, {**info, "results": [asdict(r) for r in results]})
    return results


def main(argv: list[str]) -> int:
    return run_main(parser(), run, argv)
