"""The CPU training step eager and under `torch.compile` (inductor), side by side.

    OMP_NUM_THREADS=1 python scripts/bench_compile_cpu.py [--repeats 8] [--cases tiny,table2-full,...]
                                                         [--seeds fresh|fixed] [--json FILE]

A step is the Trainer's: `optimization.train_step` (forward and loss, backward, gradient clipping,
the optimizer step) on a model built from the composed `reformer run` config of each case, once
with the model itself and once with `torch.compile(model, mode="default", dynamic=False)` as the
forward (the optimizer and clipping on the plain module, as train.py does with trainer.compile).
Each step gets a fresh forward seed, as in training (`--seeds fixed`: seed 1 every step, so that
the compiled forward never recompiles: what its kernels alone are worth). Cases (the sizes the cpu profiles train):

* tiny: model=tiny on the synthetic task (length 1024), batch 8 (the trainer's default);
* table2-full / table2-lsh4: experiments/table2.yaml's cpu profile (synthetic length 256,
  model=table2, batch 32, Adam) with shared-QK full attention / LSH with 4 rounds of chunks of 8;
* fig3-full: experiments/fig3.yaml's cpu profile (bytes of text, length 512, the ablation model
  narrowed to d_model 256, d_ff 1024, 4 heads, batch 8, Adam), regular full attention.

Each case runs in its own process with an empty inductor cache (a cold compile, as a user's
first run). Measured per case: the first three steps of each (the first compiled ones include the
compilation, and a recompilation if the seed or anything else guards), then the steady state: both
warmed up, then `--repeats` rounds timing each once, the order alternating (bench/common.py,
`time_interleaved`); the median with min-max. Both start from the same weights and see the same
batch, so their losses are compared step by step. Graph breaks: `torch._dynamo.explain` of the
training forward.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli, not an installed one

TABLE2_CPU = ["task=synthetic", "task.seq_len=256", "model=table2", "model.position_init_std=1.0",
              "trainer.batch_size=32", "trainer.optimizer=adam", "trainer.lr=1e-3", "trainer.grad_clip=1.0"]
FIG3_CPU = ["task=text", "task.path=unused.txt", "task.seq_len=512", "model=ablation", "model.d_model=256",
            "model.d_ff=1024", "model.n_heads=4", "model.dropout=0.0", "trainer.batch_size=8",
            "trainer.optimizer=adam", "trainer.lr=1e-3"]
CASES = {
    "tiny": ["task=synthetic", "model=tiny", "attention=full"],
    "table2-full": [*TABLE2_CPU, "attention=full", "attention.shared_qk=true"],
    "table2-lsh4": [*TABLE2_CPU, "attention=lsh", "attention.n_rounds=4", "attention.chunk_length=8"],
    "fig3-full": [*FIG3_CPU, "attention=full"],
}


def vocab_of(cfg) -> int:
    if cfg.task.name == "synthetic":
        return int(cfg.task.vocab_size)
    from reformer_cli.tasks.bytes import VOCAB_SIZE

    return VOCAB_SIZE


def measure(case: str, repeats: int, seeds: str, first_steps: int = 3) -> dict:
    """One case, in this process: eager and compiled steps, their times and losses."""
    import torch

    from reformer_cli.bench.common import time_interleaved
    from reformer_cli.model.reformer import build_model
    from reformer_cli.optimization import build_optimizer, train_step
    from reformer_cli.reproduce.plan import compose_run
    from reformer_cli.tasks.base import Batch

    cfg = compose_run(CASES[case])
    vocab, length, batch_size = vocab_of(cfg), int(cfg.task.seq_len), int(cfg.trainer.batch_size)
    cpu = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    shape = (batch_size, length)
    batch = Batch(torch.randint(0, vocab, shape, generator=gen), torch.randint(0, vocab, shape, generator=gen),
                  torch.ones(shape))

    def prepare(compiled: bool):
        torch.manual_seed(0)  # the same initial weights for both
        model = build_model(cfg, vocab, length).train()
        forward = torch.compile(model, mode="default", dynamic=False) if compiled else model
        optimizer = build_optimizer(cfg.trainer, model)
        counter = iter(range(1, 1 << 62)) if seeds == "fresh" else itertools.repeat(1)
        losses: list[float] = []

        def step() -> None:
            sums, _ = train_step(forward, model, optimizer, [(batch, next(counter))], grad_clip=cfg.trainer.grad_clip,
                                 device=cpu, precision="fp32")
            losses.append(float(sums[0] / sums[1]))

        return model, step, losses

    result: dict = {"case": case, "seeds": seeds, "overrides": CASES[case], "batch": batch_size, "length": length, "vocab": vocab,
                    "d_model": int(cfg.model.d_model), "n_layers": int(cfg.model.n_layers),
                    "attention": str(cfg.attention.name)}
    steps, losses, models = {}, {}, {}
    for name in ("eager", "compiled"):
        models[name], steps[name], losses[name] = prepare(name == "compiled")
        firsts = []
        for _ in range(first_steps):
            start = time.perf_counter()
            try:
                steps[name]()
            except Exception as exc:  # noqa: BLE001 (a failing compile is a result)
                result["error"] = f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                return result
            firsts.append((time.perf_counter() - start) * 1e3)
        result[f"{name}_first_ms"] = firsts
    from torch._dynamo.utils import counters

    # unique_graphs: the graphs dynamo compiled in the first steps (more than the graph breaks
    # explain: recompilations, e.g. one per forward seed)
    result["dynamo_frames"] = dict(counters["stats"])
    timings, failed = time_interleaved(steps, cpu, warmup=1, reps=repeats)
    if failed:
        result["error"] = "; ".join(f"{k}: {type(v).__name__}: {v}" for k, v in failed.items())
        return result
    for name, timing in timings.items():
        result[f"{name}_ms"] = {"median": timing.median, "min": timing.low, "max": timing.high, "n": timing.repeats}
    n = min(len(losses["eager"]), len(losses["compiled"]))
    result["losses_eager"], result["losses_compiled"] = losses["eager"][:n], losses["compiled"][:n]
    result["max_rel_loss_diff"] = max(abs(a - b) / abs(a) for a, b in zip(losses["eager"][:n], losses["compiled"][:n]))
    # graph breaks of the training forward (a separate trace; not timed)
    try:
        torch._dynamo.reset()
        explained = torch._dynamo.explain(models["eager"])(batch.inputs, batch.targets, batch.weights, seed=1)
        reasons = []
        for b in explained.break_reasons:
            text = str(b.reason).splitlines()[0][:160]
            if text not in reasons:
                reasons.append(text)
        result["graphs"], result["graph_breaks"], result["break_reasons"] = (
            explained.graph_count, explained.graph_break_count, reasons[:5])
    except Exception as exc:  # noqa: BLE001
        result["graphs_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return result


def compile_ms(r: dict) -> float:
    """The extra time of the compiled run's first steps over the eager ones (compilation, recompilations)."""
    return sum(r["compiled_first_ms"]) - sum(r["eager_first_ms"])


def markdown_rows(results: list[dict]) -> list[str]:
    head = ["case", "model", "eager ms/step", "compiled ms/step", "speedup", "compile s (first 3 steps)",
            "break-even steps", "graphs / breaks", "max loss rel. diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        model = f"{r['n_layers']}x{r['d_model']}, {r['attention']}, {r['batch']}x{r['length']}"
        if "error" in r:
            lines.append(f"| {r['case']} | {model} | " + " | ".join(["-"] * 6) + f" | {r['error']} |")
            continue
        e, c = r["eager_ms"], r["compiled_ms"]
        speedup = e["median"] / c["median"]
        gain = e["median"] - c["median"]
        breakeven = f"{compile_ms(r) / gain:,.0f}" if gain > 0 else "never"
        graphs = f"{r['graphs']} / {r['graph_breaks']}" if "graphs" in r else "?"
        lines.append(f"| {r['case']} | {model} | {e['median']:.0f} ({e['min']:.0f}-{e['max']:.0f}) |"
                     f" {c['median']:.0f} ({c['min']:.0f}-{c['max']:.0f}) | {speedup:.2f}x |"
                     f" {compile_ms(r) / 1e3:.1f} | {breakeven} | {graphs} | {r['max_rel_loss_diff']:.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=8, help="interleaved timed steps of each (8)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated among " + ", ".join(CASES))
    parser.add_argument("--seeds", choices=("fresh", "fixed"), default="fresh",
                        help="fresh: a new forward seed every step, as training (default); fixed: seed 1 every"
                             " step (nothing for the compiled model to guard on: its kernels' own speed)")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # one case, in this process
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(measure(args.case, args.repeats, args.seeds)))
        return
    results = []
    load_before = os.getloadavg()
    wall = time.perf_counter()
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory() as cache:  # a cold inductor cache for each case
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--case", case, "--repeats", str(args.repeats),
                                   "--seeds", args.seeds],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                result = {"case": case, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
            else:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["process_s"] = time.perf_counter() - start
        sys.stderr.write(json.dumps(result) + "\n")
        results.append(result)
    import torch

    record = {
        "machine": platform.processor() or platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "load_before": load_before, "load_after": os.getloadavg(), "wall_s": time.perf_counter() - wall,
        "command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?") + " python " + " ".join(sys.argv),
        "results": results,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    print("\n".join(markdown_rows([r for r in results if "n_layers" in r] +
                                  [{**r, "n_layers": "?", "d_model": "?", "attention": "?", "batch": "?", "length": "?"}
                                   for r in results if "n_layers" not in r])))


if __name__ == "__main__":
    main()
