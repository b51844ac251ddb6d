"""`reformer bench speed`: attention forward + backward time over lengths (docs/performance.md, "The benchmark problem").

The standard problem: a fixed number of tokens per batch (65,536: batch x length, lengths 1K-64K),
8 heads, d_head 64, causal, bf16, forward + backward of the attention alone. Rows:

* `full`: PyTorch SDPA with separate q, k, v, each of its CUDA backends tried (cuDNN, flash,
  memory-efficient) and the fastest kept (its name in `impl`);
* `lsh-R` for each number of rounds R: this project's LSH attention from (qk, v, rotations) with
  the paper's semantics (same-bucket attention, duplicate correction), hashing, sorting, attention
  and the merge of rounds included, with `--impl fast` (the Triton kernels, the default on CUDA)
  or `reference` (plain PyTorch); `lsh-across-R`: the same with attention across buckets and no
  duplicate correction (what trax v2 and HF compute; `--semantics paper,across`, the CUDA default);
* with `--peers`, when importable: lucidrains' reformer-pytorch `LSHAttention` in its default mode
  (`reformer-pytorch-R`: across buckets, duplicates allowed) and in its paper mode
  (`reformer-pytorch-dedup-R`: `attend_across_buckets=False, allow_duplicate_attention=False`), and
  transformers' `LSHSelfAttention` (which includes its QK and V projections) at `--peer-rounds`,
  with the ratios of our rows to theirs at the same length and rounds (bench/peer_ratios.py).

Columns: ms (median of forward + backward) with its min-max, forward ms (the forward alone, autograd
recording as in training) with its min-max, n (timed calls of each), tokens/s (forward + backward),
peak memory (CUDA: bytes allocated at the peak beyond the inputs), the ratio of the time to full
attention's at the same length (below 1: faster than full attention) and a failure's reason.
Every method is warmed up first; then the methods of one length, forward + backward and forward
alone, are timed in turn within each of `--repeats` repeats (bench/common.py, `time_interleaved`),
so that a change of the machine's load falls on all of them alike (`--repeats 6,6,3,2`: one
count per length, the last for the lengths beyond, for long lengths timed fewer times). A forward slower than its
forward + backward by more than the spread is printed as a warning (and kept in the notes).
Peers asked for but not installed are listed apart ("missing"), not as rows.
Out of memory is a result (`OOM`).
Writes `speed.md`, `speed.json` and `speed.png` (time against length, log scales, as the paper's
Figure 5, right) into `--out`; `--json PATH` writes the record elsewhere; `--replot JSON`
rebuilds the markdown and PNG from a record (e.g. on a machine with matplotlib).

On a CPU the default sizes are tiny and the numbers say nothing about a GPU; `results/` is meant
for GPU records (the default `--out` is `results` on CUDA and nothing elsewhere).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..attention.registry import baseline
from ..errors import OneLineParser, UserError, one_line
from ..primitives.attention_settings import bucket_factors
from ..records import write_json_atomic, write_text_atomic
from .peer_ratios import ratio_table
from .common import (
    DTYPES, clear_grads, comma_ints, format_rate, header, is_oom, markdown_table, peak_bytes, plain_table, release,
    resolve_device, run_main, time_interleaved,
)

PROG = "reformer bench speed"
GPU_DEFAULTS = dict(tokens=65536, lengths=[1024, 2048, 4096, 8192, 16384, 32768, 65536], heads=8, d_head=64,
                    rounds=[1, 2, 4, 8], chunk=64, dtype="bf16", semantics=["paper", "across"])
CPU_DEFAULTS = dict(tokens=2048, lengths=[256, 512, 1024], heads=2, d_head=32, rounds=[1, 2], chunk=32, dtype="fp32",
                    semantics=["paper"])
# The method of the rows every other is measured against (their `ratio_to_full`): the baseline
# attention (full attention, through SDPA), named after it: `full` in every record.
BASELINE = baseline().name
# transformers' name of its LSH layer in ReformerConfig.attn_layers: that library's vocabulary
# (it happens to be our attention's name too), for the peer row.
TRANSFORMERS_LSH_LAYER = "lsh"
# The LSH semantics a row times: the paper's (the defaults), or trax v2 / HF's.
SEMANTICS = {
    "paper": ("lsh-{rounds}", {}, "same bucket, duplicate correction (the paper)"),
    "across": ("lsh-across-{rounds}", {"attend_across_buckets": True, "dedup": False},
               "across buckets, no duplicate correction (trax v2, HF)"),
}


@dataclass
class Row:
    method: str  # full | lsh-R | reformer-pytorch-R | hf-lsh-R
    impl: str  # sdpa-<backend> | fast | reference | peer
    rounds: int | None
    length: int
    batch: int
    ms: float | None = None  # forward + backward, median
    fwd_ms: float | None = None  # forward alone (autograd recording, as in training), median
    ms_min: float | None = None
    ms_max: float | None = None
    fwd_ms_min: float | None = None
    fwd_ms_max: float | None = None
    repeats: int | None = None  # timed calls of each (forward + backward, forward)
    tokens_per_s: float | None = None
    peak_bytes: int | None = None
    ratio_to_full: float | None = None
    error: str | None = None
    note: str | None = None


@dataclass
class Problem:
    tokens: int
    heads: int
    d_head: int
    chunk: int
    dtype: str
    causal: bool
    device: torch.device
    buckets: str  # auto | single | comma-separated factors
    seed: int = 0
    warmup: int = 3
    reps: int | list[int] = 10  # one count, or one per length (the last for the lengths beyond)
    lengths: list[int] = field(default_factory=list)
    forward_alone: bool = True  # also time the forward alone (--no-forward: forward + backward only)
    notes: list[str] = field(default_factory=list)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def reps_at(self, length: int) -> int:
        """Timed calls of each method at `length`: `reps`, or its entry for this length."""
        if isinstance(self.reps, int):
            return self.reps
        index = self.lengths.index(length) if length in self.lengths else len(self.reps) - 1
        return self.reps[min(index, len(self.reps) - 1)]

    def batch(self, length: int) -> int:
        return max(1, self.tokens // length)

    def randn(self, *shape: int, requires_grad: bool = True) -> torch.Tensor:
        x = torch.randn(*shape, device=self.device, dtype=self.torch_dtype)
        return x.requires_grad_(requires_grad)

    def factors(self, length: int) -> list[int]:
        """The bucket factors timed at `length` (the model's `bucket_factors` of `n_buckets_for`)."""
        return [int(f) for f in bucket_factors(n_buckets_for(self.buckets, length, self.chunk), length, self.chunk)]


def n_buckets_for(mode: str, length: int, chunk: int) -> list[int] | None:
    """The `attention.n_buckets` setting timed at `length`. 'single': n = 2 * length / chunk as one
    factor at every length (the paper's hashing). 'auto': the same n, factorised above 128 buckets as trax
    does ([2^ceil(log2 sqrt n), 2 (n // (2 that))]) so that hashing stays linear in the length; a
    model trains with that layout when given `attention.n_buckets=[a,b]`. Or explicit factors '32,64'."""
    if mode not in ("auto", "single"):
        return [int(f) for f in mode.split(",")]
    n = 2 * max(1, length // chunk)
    if mode == "single":
        return [n]
    if n <= 128:
        return None
    first = 2 ** math.ceil(math.log2(math.sqrt(n)))
    return [first, 2 * (n // (2 * first))]


# ------------------------------------------------------------------------------ the methods


@dataclass
class Contender:
    """A row ready to be timed: its forward, the inputs whose gradients it makes, the output's gradient."""

    row: Row
    forward: Callable[[], torch.Tensor]
    inputs: list[torch.Tensor]
    grad: torch.Tensor

    def step(self) -> None:
        """Forward + backward."""
        self.forward().backward(self.grad)


def contender(row: Row, problem: Problem, forward: Callable[[], torch.Tensor], inputs: list[torch.Tensor],
              grad_shape: tuple[int, ...]) -> Contender:
    grad = torch.randn(*grad_shape, device=problem.device, dtype=problem.torch_dtype)
    return Contender(row, forward, inputs, grad)


def fail(row: Row, exc: BaseException) -> Row:
    """A method that fails is a row with its reason (OOM is a result), not a crash."""
    row.error = "OOM" if is_oom(exc) else one_line(f"{type(exc).__name__}: {exc}")[:200]
    row.ms = row.fwd_ms = row.tokens_per_s = row.peak_bytes = None
    row.ms_min = row.ms_max = row.fwd_ms_min = row.fwd_ms_max = row.repeats = None
    return row


def measure_all(contenders: list[Contender], problem: Problem) -> list[Row]:
    """Time every contender's forward + backward and forward alone against each other: all warmed
    up first, then interleaved repeat by repeat (common.time_interleaved); then CUDA peak memory."""
    fns: dict[str, Callable[[], Any]] = {}
    for i, c in enumerate(contenders):
        fns[f"{i} fwd+bwd"] = c.step
        if problem.forward_alone:
            fns[f"{i} fwd"] = c.forward
    inputs = [t for c in contenders for t in c.inputs]
    reps = problem.reps_at(contenders[0].row.length) if contenders else 1
    timings, failed = time_interleaved(fns, problem.device, warmup=problem.warmup, reps=reps,
                                       before_each=lambda: clear_grads(inputs))
    for i, c in enumerate(contenders):
        row = c.row
        error = failed.get(f"{i} fwd+bwd") or failed.get(f"{i} fwd")
        if error is not None:
            fail(row, error)
            continue
        both = timings[f"{i} fwd+bwd"]
        row.ms, row.ms_min, row.ms_max, row.repeats = both.median, both.low, both.high, both.repeats
        if problem.forward_alone:
            fwd = timings[f"{i} fwd"]
            row.fwd_ms, row.fwd_ms_min, row.fwd_ms_max = fwd.median, fwd.low, fwd.high
        row.tokens_per_s = row.batch * row.length / (row.ms / 1e3)
        try:
            clear_grads(c.inputs)
            row.peak_bytes = peak_bytes(c.step, problem.device)
        except Exception as exc:  # noqa: BLE001
            fail(row, exc)
    release(problem.device)
    return [c.row for c in contenders]


def inversions(rows: list[dict]) -> list[str]:
    """Rows whose median forward alone exceeds the median forward + backward by more than the
    spread of either: a measurement to distrust (load changes, thread contention), said in one line."""
    out = []
    for r in rows:
        if r.get("ms") is None or r.get("fwd_ms") is None:
            continue
        spread = max((r.get("ms_max") or r["ms"]) - (r.get("ms_min") or r["ms"]),
                     (r.get("fwd_ms_max") or r["fwd_ms"]) - (r.get("fwd_ms_min") or r["fwd_ms"]))
        if r["fwd_ms"] - r["ms"] > spread:
            out.append(f"warning: length {r['length']} {r['method']}: forward alone {r['fwd_ms']:.3f} ms exceeds"
                       f" forward + backward {r['ms']:.3f} ms by more than the spread ({spread:.3f} ms):"
                       " the machine's load changed during the run; do not trust this row")
    return out


def sdpa_backends(device: torch.device) -> list[tuple[str, Any]]:
    if device.type != "cuda":
        return [("default", None)]
    from torch.nn.attention import SDPBackend

    return [("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
            ("efficient", SDPBackend.EFFICIENT_ATTENTION)]


def full_contenders(problem: Problem, length: int) -> list[Contender]:
    """SDPA full attention, one contender per backend (`pick_full` keeps the fastest)."""
    import torch.nn.functional as F

    b = problem.batch(length)
    shape = (b, problem.heads, length, problem.d_head)
    out = []
    for name, backend in sdpa_backends(problem.device):
        q, k, v = (problem.randn(*shape) for _ in range(3))

        def forward(q=q, k=k, v=v, backend=backend) -> torch.Tensor:
            if backend is None:
                return F.scaled_dot_product_attention(q, k, v, is_causal=problem.causal)
            from torch.nn.attention import sdpa_kernel

            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=problem.causal)

        out.append(contender(Row(BASELINE, f"sdpa-{name}", None, length, b), problem, forward, [q, k, v], shape))
    return out


def pick_full(rows: list[Row]) -> Row:
    """The fastest SDPA backend's row (the others' times in its `note`)."""
    tried = [f"{r.impl[5:]} {r.ms:.3f} ms" if r.ms is not None else f"{r.impl[5:]}: {r.error}" for r in rows]
    timed = [r for r in rows if r.ms is not None]
    if timed:
        best = min(timed, key=lambda r: r.ms)
    else:
        best = Row(BASELINE, "sdpa", None, rows[0].length, rows[0].batch, error="; ".join(tried)[:200])
    best.note = ", ".join(tried)
    return best


def lsh_row(problem: Problem, length: int, rounds: int, impl: str, semantics: str = "paper") -> Contender:
    """This project's LSH attention: hash + sort + attend + merge, forward and backward, with the
    paper's semantics or attention across buckets (`SEMANTICS`)."""
    if impl == "fast":
        from ..attention.fast import lsh_attention
    else:
        from ..attention.lsh import lsh_attention
    b = problem.batch(length)
    shape = (b, problem.heads, length, problem.d_head)
    qk, v = problem.randn(*shape), problem.randn(*shape)
    factors = problem.factors(length)
    rotations = [torch.randn(problem.heads, problem.d_head, rounds, f // 2, device=problem.device) for f in factors]

    method, keywords, about = SEMANTICS[semantics]

    def forward() -> torch.Tensor:
        return lsh_attention(qk, v, rotations, chunk_length=problem.chunk, causal=problem.causal, **keywords)

    row = Row(method.format(rounds=rounds), impl, rounds, length, b,
              note=f"buckets {'x'.join(map(str, factors))}; {about}")
    return contender(row, problem, forward, [qk, v], shape)


@dataclass
class Missing:
    """A peer that could not be timed because it is not installed: listed apart, not a row."""

    method: str
    reason: str


def not_installed(method: str, exc: ImportError) -> Missing:
    return Missing(method, one_line(f"not installed ({exc})"))


# reformer-pytorch's modes: method name, LSHAttention keywords, what it computes.
REFORMER_PYTORCH_MODES = {
    "default": ("reformer-pytorch-{rounds}", {}, "its default: across buckets, duplicates allowed"),
    "dedup": ("reformer-pytorch-dedup-{rounds}", {"attend_across_buckets": False, "allow_duplicate_attention": False},
              "same bucket, duplicate correction (the paper's semantics)"),
}


def reformer_pytorch_row(problem: Problem, length: int, rounds: int, mode: str = "default") -> Contender | Missing:
    """lucidrains/reformer-pytorch `LSHAttention` (shared QK given; heads folded into the batch), in
    its default mode or its paper mode (`REFORMER_PYTORCH_MODES`). Its `bucket_size` is both the chunk
    length and the mean bucket size: chunks as ours, n_buckets = length / chunk (half ours), unfactorised."""
    b = problem.batch(length)
    method, keywords, about = REFORMER_PYTORCH_MODES[mode]
    row = Row(method.format(rounds=rounds), "peer", rounds, length, b)
    try:
        import reformer_pytorch
        from reformer_pytorch import LSHAttention
    except ImportError as exc:
        return not_installed(row.method, exc)
    attn = LSHAttention(bucket_size=problem.chunk, n_hashes=rounds, causal=problem.causal,
                        **keywords).to(problem.device)
    shape = (b * problem.heads, length, problem.d_head)
    qk, v = problem.randn(*shape), problem.randn(*shape)
    version = getattr(reformer_pytorch, "__version__", "") or _distribution_version("reformer-pytorch")
    row.note = f"reformer-pytorch {version}; {about}; buckets {max(1, length // problem.chunk)}".replace("  ", " ")
    return contender(row, problem, lambda: attn(qk, v)[0], [qk, v], shape)


def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def hf_row(problem: Problem, length: int, rounds: int) -> Contender | Missing:
    """transformers' `LSHSelfAttention` (its QK and V projections included, as perf.md measured);
    in fp32 when one step in the problem's dtype fails (as perf.md measured it). Its buckets are
    ours at this length (2 x length / chunk, factorised as `--buckets` says)."""
    b = problem.batch(length)
    row = Row(f"hf-lsh-{rounds}", "peer", rounds, length, b)
    try:
        import transformers
        from transformers import ReformerConfig
        from transformers.models.reformer.modeling_reformer import LSHSelfAttention
    except ImportError as exc:
        return not_installed(row.method, exc)
    factors = problem.factors(length)
    config = ReformerConfig(
        hidden_size=problem.heads * problem.d_head, num_attention_heads=problem.heads,
        attention_head_size=problem.d_head, lsh_attn_chunk_length=problem.chunk, num_hashes=rounds,
        num_buckets=factors[0] if len(factors) == 1 else factors, lsh_num_chunks_before=1, lsh_num_chunks_after=0,
        is_decoder=problem.causal, attn_layers=[TRANSFORMERS_LSH_LAYER], max_position_embeddings=length,
        lsh_attention_probs_dropout_prob=0.0,
    )
    shape = (b, length, problem.heads * problem.d_head)
    failed = ""
    for attempt in (problem, dataclasses.replace(problem, dtype="fp32")):
        module = LSHSelfAttention(config).to(attempt.device, attempt.torch_dtype).train()
        hidden = attempt.randn(*shape)
        row.note = f"transformers {transformers.__version__}, {attempt.dtype}{failed}; buckets {'x'.join(map(str, factors))}"
        candidate = contender(row, attempt, lambda module=module, hidden=hidden: module(hidden)[0], [hidden], shape)
        try:
            candidate.step()
            return candidate
        except Exception as exc:  # noqa: BLE001
            if is_oom(exc) or attempt.dtype == "fp32":
                return candidate  # its timing fails the same way and says so
            failed = f" ({problem.dtype} failed: {one_line(str(exc))[:80]})"
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------ the run


def contenders_at(problem: Problem, length: int, rounds: list[int], impl: str, peers: bool,
                  peer_rounds: list[int], semantics: list[str]) -> tuple[list[Contender | Row], list[Missing]]:
    """Everything timed at one length (a Row where building it failed), and the peers not installed."""
    makers: list[tuple[str, Callable[[], Any]]] = [(BASELINE, lambda: full_contenders(problem, length))]
    makers += [(SEMANTICS[sem][0].format(rounds=r), lambda r=r, sem=sem: lsh_row(problem, length, r, impl, sem))
               for sem in semantics for r in rounds]
    if peers:
        makers += [(REFORMER_PYTORCH_MODES[mode][0].format(rounds=r),
                    lambda r=r, mode=mode: reformer_pytorch_row(problem, length, r, mode))
                   for mode in ("dedup", "default") for r in peer_rounds]
        makers += [(f"hf-lsh-{r}", lambda r=r: hf_row(problem, length, r)) for r in peer_rounds]
    built: list[Contender | Row] = []
    missing: list[Missing] = []
    for method, make in makers:
        try:
            made = make()
        except Exception as exc:  # noqa: BLE001 (a method that cannot be built is a row with its reason)
            made = fail(Row(method, "peer" if method.startswith(("hf", "reformer")) else impl,
                            None, length, problem.batch(length)), exc)
        if isinstance(made, Missing):
            missing.append(made)
        else:
            built += made if isinstance(made, list) else [made]
    return built, missing


def run_rows(problem: Problem, lengths: list[int], rounds: list[int], impl: str, peers: bool,
             peer_rounds: list[int], semantics: list[str] = ("paper",),
             after_length: Callable[[list[Row]], None] | None = None,
             missing: list[Missing] | None = None) -> list[Row]:
    """Every row, length by length, the contenders of a length timed against each other
    (`measure_all`); peers not installed go into `missing` (once each). `after_length(rows so far)`
    after each length (the run writes its outputs there, so a run cut short keeps what it measured)."""
    rows: list[Row] = []
    for length in lengths:
        if length > problem.tokens:
            problem.notes.append(f"length {length} skipped: more than --tokens {problem.tokens}")
            continue
        built, absent = contenders_at(problem, length, rounds, impl, peers, peer_rounds, semantics)
        if missing is not None:
            missing += [m for m in absent if m.method not in {x.method for x in missing}]
        timed = measure_all([c for c in built if isinstance(c, Contender)], problem)
        failed_to_build = [c for c in built if isinstance(c, Row)]
        full = [r for r in timed if r.method == BASELINE]
        at_length = ([pick_full(full)] if full else []) + [r for r in timed if r.method != BASELINE] + failed_to_build
        for row in at_length:
            sys.stderr.write(f"length {length:>6} {row.method:<20} "
                             + (f"{row.ms:9.3f} ms" if row.ms is not None else f"{row.error}") + "\n")
        full_ms = at_length[0].ms if full else None
        for row in at_length:
            if row.ms is not None and full_ms:
                row.ratio_to_full = row.ms / full_ms
        rows += at_length
        if after_length is not None:
            after_length(rows)
    return rows


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def label(method: str) -> str:
    """Legend names: full attention, LSH-4, reformer-pytorch LSH-4, HF LSH-4."""
    if method == BASELINE:
        return "full attention"
    rounds = method.rsplit("-", 1)[-1]
    if method.startswith("lsh-across-"):
        return f"LSH-{rounds} across buckets"
    if method.startswith("hf-lsh-"):
        return f"HF LSH-{rounds}"
    if method.startswith("reformer-pytorch-dedup-"):
        return f"reformer-pytorch LSH-{rounds} same bucket + dedup"
    if method.startswith("reformer-pytorch-"):
        return f"reformer-pytorch LSH-{rounds}"
    return f"LSH-{rounds}" if method.startswith("lsh-") else method


def _range(r: dict, prefix: str) -> str:
    low, high = r.get(f"{prefix}_min"), r.get(f"{prefix}_max")
    return "-" if low is None or high is None else f"{low:.3f}-{high:.3f}"


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Numbers only in the number columns (`-` where there is none); a failure's reason in `error`."""
    head = ["length", "batch", "method", "impl", "ms (fwd+bwd)", "min-max", "fwd ms", "fwd min-max", "n",
            "tokens/s", "peak MiB", "x full", "error"]
    body = []
    for r in rows:
        body.append([
            str(r["length"]), str(r["batch"]), r["method"], r["impl"], _fmt(r["ms"], ".3f"), _range(r, "ms"),
            _fmt(r["fwd_ms"], ".3f"), _range(r, "fwd_ms"), _fmt(r.get("repeats"), "d"),
            format_rate(r["tokens_per_s"]),
            _fmt(r["peak_bytes"] / 2**20 if r["peak_bytes"] is not None else None, ",.0f"),
            _fmt(r["ratio_to_full"], ".3f"), r["error"] or "",
        ])
    return head, body


def missing_lines(record: dict) -> list[str]:
    """'reformer-pytorch-4: not installed (...)', one per peer that was asked for and not timed."""
    return [f"{m['method']}: {m['reason']}" for m in record.get("missing") or []]


def markdown(record: dict) -> str:
    head, body = table(record["rows"])
    lines = [
        "# Attention speed: full attention vs LSH attention (forward + backward)",
        "",
        f"- device: {record['device']}",
        f"- date: {record['date']} {record.get('time', '')}".rstrip(),
        f"- torch {record['torch']}, triton {record['triton']}, python {record.get('python')},"
        f" reformer git {(record.get('code_version') or {}).get('git_sha') or 'unknown'}",
        f"- command: `{record['command']}`",
        f"- problem: {record['tokens']:,} tokens per batch (batch x length), {record['heads']} heads, d_head"
        f" {record['d_head']}, {'causal' if record['causal'] else 'not causal'}, {record['dtype']};"
        f" LSH chunk {record['chunk_length']}, look-back 1, buckets {record['buckets']}"
        f" (2 x length / chunk; 'auto' factorises above 128 as trax)",
        "",
        f"ms: median of forward + backward, with min-max over n timed calls ({record.get('timing', '')});"
        " every method is warmed up first and the methods of a length, forward + backward and forward alone,"
        " are timed in turn within each repeat, so that a change of load falls on all alike. fwd ms: the"
        " forward alone, autograd recording as in training. LSH rows include hashing, sorting and the merge of rounds; `lsh-R` is the paper's LSH"
        " (same-bucket attention, duplicate correction), `lsh-across-R` attends across buckets without the"
        " correction (trax v2, HF). peak MiB: CUDA memory allocated"
        " at the peak of one forward + backward beyond the inputs. x full: time / full attention's time at the"
        " same length (below 1 = faster). full: SDPA's fastest backend (the others in the JSON's notes).",
        "",
        *markdown_table(head, body),
    ]
    ratio_head, ratio_body = ratio_table(record["rows"])
    if ratio_body:
        lines += ["", "Ours / the peers' (median forward + backward, same length and rounds; below 1 = ours faster):"
                  " paper / rp-dedup: `lsh-R` over reformer-pytorch's same bucket + dedup mode; across / rp, hf,"
                  " best peer: `lsh-across-R` over reformer-pytorch's default mode, transformers', the faster.",
                  "", *markdown_table(ratio_head, ratio_body)]
    if record.get("missing"):
        lines += ["", "Not measured (not installed):", "", *[f"- {m}" for m in missing_lines(record)]]
    if record.get("notes"):
        lines += ["", *[f"- {n}" for n in record["notes"]]]
    return "\n".join(lines) + "\n"


def plot(record: dict, path: Path) -> bool:
    """Time against length, log scales, one line per method (the paper's Figure 5, right)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    series: dict[str, list[tuple[int, float]]] = {}
    for r in record["rows"]:
        if r["ms"] is not None:
            series.setdefault(r["method"], []).append((r["length"], r["ms"]))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
    for method, points in series.items():
        points.sort()
        xs, ys = zip(*points)
        style = dict(color="black", linewidth=2.2, marker="o") if method == BASELINE else dict(marker="o")
        if method.startswith(("reformer-pytorch", "hf-")):
            style = dict(marker="s", linestyle="--")
        ax.plot(xs, ys, label=label(method), **style)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    lengths = sorted({r["length"] for r in record["rows"]})
    ax.set_xticks(lengths)
    ax.set_xticklabels([f"{n // 1024}K" if n >= 1024 else str(n) for n in lengths])
    ax.set_xlabel("sequence length (batch x length fixed)")
    ax.set_ylabel("forward + backward (ms)")
    ax.set_title(f"{record['tokens']:,} tokens, {record['heads']} heads x {record['d_head']}, "
                 f"{'causal, ' if record['causal'] else ''}{record['dtype']}\n{record['device']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def write_outputs(record: dict, out: Path | None, json_path: Path | None) -> None:
    text = markdown(record)
    if json_path is not None:
        write_json_atomic(json_path, record)
    if out is None:
        return
    write_text_atomic(out / "speed.md", text)
    write_json_atomic(out / "speed.json", record)
    if not plot(record, out / "speed.png"):
        sys.stderr.write("matplotlib is not installed: speed.png not written (rebuild it from the JSON with"
                         f" `{PROG} --replot {out / 'speed.json'}` where matplotlib is)\n")


# ------------------------------------------------------------------------------ command line


def _buckets(text: str) -> str:
    if text in ("auto", "single"):
        return text
    values = comma_ints(text)
    if any(v % 2 for v in values):
        raise argparse.ArgumentTypeError(f"bucket factors must be even, got {text!r}")
    return ",".join(map(str, values))


def _semantics(text: str) -> list[str]:
    values = [v for v in text.split(",") if v]
    unknown = [v for v in values if v not in SEMANTICS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"expected comma-separated {' / '.join(SEMANTICS)}, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="Attention forward + backward time over lengths at a fixed number of"
                " tokens per batch (docs/performance.md): full attention (SDPA) vs LSH attention at several rounds.")
    g = p.add_argument_group("problem (defaults: the standard problem on CUDA, tiny sizes on a CPU)")
    g.add_argument("--tokens", type=int, default=None, help="tokens per batch, batch = tokens / length (65536)")
    g.add_argument("--lengths", type=comma_ints, default=None, help="comma-separated (1024,2048,...,65536)")
    g.add_argument("--heads", type=int, default=None, help="(8)")
    g.add_argument("--d-head", type=int, default=None, help="(64)")
    g.add_argument("--rounds", type=comma_ints, default=None, help="LSH hash rounds, comma-separated (1,2,4,8)")
    g.add_argument("--chunk", type=int, default=None, help="LSH chunk length (64)")
    g.add_argument("--buckets", type=_buckets, default="auto",
                   help="auto (2 x length / chunk, factorised above 128 as trax) | single | factors e.g. 32,64")
    g.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="(bf16; fp32 on a CPU)")
    g.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True)
    r = p.add_argument_group("run")
    r.add_argument("--impl", choices=("auto", "fast", "reference"), default="auto",
                   help="our LSH rows: fast (Triton kernels) | reference (PyTorch) | auto (fast on CUDA)")
    r.add_argument("--semantics", type=_semantics, default=None,
                   help="LSH rows: paper (same bucket, duplicate correction) and/or across (trax v2 / HF),"
                        " comma-separated (paper,across on CUDA; paper on a CPU)")
    r.add_argument("--peers", action="store_true",
                   help="add reformer-pytorch and transformers' LSHSelfAttention rows (when importable)")
    r.add_argument("--peer-rounds", type=comma_ints, default=[4], help="rounds for the peers (4)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--warmup", type=int, default=3, help="untimed calls of each method first (at least 1)")
    r.add_argument("--repeats", "--reps", dest="reps", type=comma_ints, default=[10],
                   help="timed calls of each method, interleaved (10); or one count per length,"
                        " comma-separated (the last for the lengths beyond), e.g. 6,6,4,2,2")
    r.add_argument("--forward", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the forward alone (--no-forward: forward + backward only, about a third"
                        " less time)")
    r.add_argument("--seed", type=int, default=0)
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None,
                   help="folder for speed.md, speed.json, speed.png (default: results on CUDA, none on a CPU)")
    o.add_argument("--json", type=Path, default=None, help="also write the JSON record here")
    o.add_argument("--replot", type=Path, default=None, metavar="JSON",
                   help="only rebuild speed.md and speed.png from a record (into --out, default its folder)")
    return p


def repeats_text(reps: int | list[int]) -> str:
    """'10', or '6/6/4/2 (per length)'."""
    return str(reps) if isinstance(reps, int) else f"{'/'.join(map(str, reps))} (per length)"


def resolve_impl(impl: str, device: torch.device) -> str:
    if impl == "auto":
        return "fast" if device.type == "cuda" else "reference"
    if impl != "fast":
        return impl
    try:
        from ..attention.fast.runtime import INTERPRET
    except ImportError as exc:
        raise UserError(f"--impl fast needs triton ({one_line(str(exc))}); use --impl reference") from None
    if device.type != "cuda" and not INTERPRET:
        raise UserError("--impl fast needs a CUDA device (or TRITON_INTERPRET=1 to run the kernels on a CPU,"
                        " slowly); use --impl reference")
    return impl


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    if args.replot is not None:
        try:
            record = json.loads(args.replot.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"--replot {args.replot}: cannot read a speed record ({one_line(str(exc))})") from None
        if record.get("kind") != "speed":
            raise UserError(f"--replot {args.replot}: not a speed record (kind {record.get('kind')!r})")
        out = args.out or args.replot.parent
        write_text_atomic(out / "speed.md", markdown(record))
        if not plot(record, out / "speed.png"):
            raise UserError("--replot needs matplotlib (pip install matplotlib)")
        return record
    device = resolve_device(args.device)
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None else defaults[name]  # noqa: E731
    problem = Problem(tokens=pick("tokens"), heads=pick("heads"), d_head=pick("d_head"), chunk=pick("chunk"),
                      dtype=pick("dtype"), causal=args.causal, device=device, buckets=args.buckets, seed=args.seed,
                      warmup=max(0, args.warmup), reps=args.reps[0] if len(args.reps) == 1 else args.reps,
                      forward_alone=args.forward)
    lengths, rounds = pick("lengths"), pick("rounds")
    problem.lengths = lengths
    for name in ("tokens", "heads", "d_head", "chunk"):
        if getattr(problem, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}={getattr(problem, name)} must be a positive integer")
    impl = resolve_impl(args.impl, device)
    if device.type != "cuda":
        problem.notes.append("CPU run: tiny default sizes; these numbers are not the GPU yardstick")
    torch.manual_seed(args.seed)
    out = args.out if args.out is not None else (Path("results") if device.type == "cuda" else None)

    def record_of(rows: list[Row]) -> dict:
        return {
            "kind": "speed",
            **header(device, PROG, argv),
            "tokens": problem.tokens, "heads": problem.heads, "d_head": problem.d_head, "causal": problem.causal,
            "dtype": problem.dtype, "chunk_length": problem.chunk, "buckets": problem.buckets, "n_chunks_before": 1,
            "impl": impl, "lengths": lengths, "rounds": rounds, "semantics": pick("semantics"),
            "timing": f"{'CUDA events, L2 flushed' if device.type == 'cuda' else 'perf_counter'}: median, min"
                      f" and max of {repeats_text(problem.reps)} interleaved repeats after {max(1, problem.warmup)}"
                      " warm-up calls",
            "repeats": problem.reps, "warmup": max(1, problem.warmup),
            "notes": problem.notes,
            "missing": [asdict(m) for m in missing],
            "rows": [asdict(r) for r in rows],
        }

    def partial(rows: list[Row]) -> None:  # a run cut short keeps the lengths it finished
        if out is not None and len(rows) and rows[-1].length != lengths[-1]:
            write_json_atomic(out / "speed.json", {**record_of(rows), "partial": True})

    missing: list[Missing] = []
    rows = run_rows(problem, lengths, rounds, impl, args.peers, args.peer_rounds, pick("semantics"), partial, missing)
    record = record_of(rows)
    warnings = inversions(record["rows"])
    record["notes"] = [*problem.notes, *warnings]
    head, body = table(record["rows"])
    sys.stdout.write(plain_table(head, body) + "\n")
    ratio_head, ratio_body = ratio_table(record["rows"])
    if ratio_body:
        sys.stdout.write("\nours / the peers' (below 1 = ours faster)\n" + plain_table(ratio_head, ratio_body) + "\n")
    for line in missing_lines(record):
        sys.stdout.write(f"missing: {line}\n")
    for line in warnings:
        sys.stderr.write(line + "\n")
    write_outputs(record, out, args.json)
    return record


def main(argv: list[str]) -> int:
    return run_main(parser(), run, argv)
