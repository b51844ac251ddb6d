"""Compile the kernels for a GPU that is not here: `python -m reformer_cli.attention.fast.aot`.

Triton compiles ahead of time for a target architecture without a device (its wheel bundles
ptxas and cuobjdump), which checks what the CPU interpreter cannot: that every kernel lowers to
the GPU (tensor-core dots, layouts, vector loads, atomics) and how many registers and spill bytes
each needs. The kernels are specialised as Triton does at run time (pointers and strides divisible
by 16). Run it with TRITON_INTERPRET unset (interpreted kernels cannot be compiled).

    python -m reformer_cli.attention.fast.aot                 # sm_90 (H100), bf16, chunk 64, d_head 64
    python -m reformer_cli.attention.fast.aot --dtype fp32 --arch 80
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

DIVISIBLE_BY_16 = {
    "s_qb", "s_qh", "s_ql", "s_vb", "s_vh", "s_vl", "s_or", "s_ob", "s_oh", "s_ol", "s_zr", "s_zbh", "s_gb", "s_gh",
    "s_gl", "s_dqb", "s_dqh", "s_dql", "s_dvb", "s_dvh", "s_dvl", "s_rr", "s_rb", "s_rh", "s_rl", "s_xb", "s_xh",
    "s_xl", "s_rd", "s_bb", "s_bh", "s_br", "L", "N_CHUNKS", "N_TOTAL", "LP",
}

# the constants that tell the compiled variants of a kernel apart
VARIANT_KEYS = ("NB", "CAUSAL", "WRAP", "SAME_BUCKET_ONLY", "DEDUP", "ATOMIC", "R")


@dataclass
class Compiled:
    kernel: str
    variant: str
    registers: int | None
    spill_bytes: int | None
    shared_bytes: int


def _resource_usage(cubin: bytes) -> tuple[int | None, int | None]:
    """(registers, stack bytes) from cuobjdump, or (None, None) if it is not available."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return None, None
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True).stdout
    fields = dict(part.split(":", 1) for line in text.splitlines() if "REG:" in line for part in line.split())
    return int(fields.get("REG", 0)) or None, int(fields.get("STACK", 0))


def compile_kernel(fn, types: dict, constants: dict, num_warps: int, arch: int) -> Compiled:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = fn.arg_names
    signature = {n: "constexpr" if n in constants else types.get(n, "i32") for n in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names)
             if n not in constants and (signature[n].startswith("*") or n in DIVISIBLE_BY_16)}
    source = ASTSource(fn=fn, signature=signature, constexprs={(names.index(k),): v for k, v in constants.items()},
                       attrs=attrs)
    kernel = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
    registers, spills = _resource_usage(kernel.asm["cubin"])
    variant = ", ".join(f"{k}={v}" for k, v in constants.items() if k in VARIANT_KEYS)
    return Compiled(fn.fn.__name__ if hasattr(fn, "fn") else fn.__name__, variant, registers, spills,
                    kernel.metadata.shared)


def compile_all(dtype: str = "bf16", chunk: int = 64, d_head: int = 64, n_chunks_before: int = 1,
                rounds: int = 4, arch: int = 90) -> list[Compiled]:
    """Every kernel of one forward + backward (and hashing) at these settings, the attention kernels
    in three variants (see below)."""
    import torch

    from ...primitives.attention_settings import LSHSettings
    from .backward import lsh_backward_kernel, output_dot_grad_kernel
    from .forward import lsh_forward_kernel, merge_rounds_kernel
    from .function import Geometry
    from .hashing import hash_kernel, sort_keys_kernel
    from .runtime import block

    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    p = f"*{dtype}"
    fwd_types = dict(QK=p, V=p, PERM="*i32", NREAL="*i32", INV="*i32", RUNS="*i32", O=p, MX="*fp32", LG="*fp32")
    bwd_types = dict(QK=p, V=p, DO=p, PERM="*i32", NREAL="*i32", INV="*i32", RUNS="*i32", MX="*fp32", LG="*fp32",
                     DELTA="*fp32")
    out = []
    # (wrap, across buckets, dedup, backward variants): the paper's defaults (same-bucket rule and the
    # duplicate correction), the old semantics (every window slot, no correction: the plainest
    # kernel), and wrap-around across buckets with the correction (the count visits earlier rounds)
    for wrap, across, dedup, atomics in [(False, False, True, (True, False)), (False, True, False, (True,)),
                                         (True, True, True, (True,))]:
        settings = LSHSettings(chunk_length=chunk, causal=True, n_chunks_before=n_chunks_before, wrap_lookback=wrap,
                               attend_across_buckets=across, dedup=dedup)
        geo = Geometry(1, 1, 4 * chunk, d_head, rounds, settings)
        args = {**geo.kernel_args(torch_dtype), "UPCAST": False}
        warps = geo.warps(torch_dtype)
        out.append(compile_kernel(lsh_forward_kernel, fwd_types, args, warps, arch))
        for atomic in atomics:
            grads = dict(DQK="*fp32", DV="*fp32") if atomic else dict(DQK=p, DV=p)
            out.append(compile_kernel(lsh_backward_kernel, {**bwd_types, **grads}, {**args, "ATOMIC": atomic},
                                      warps, arch))
    out.append(compile_kernel(merge_rounds_kernel, dict(OR=p, MR="*fp32", LR="*fp32", O=p, MX="*fp32", LG="*fp32"),
                              dict(R=rounds, BLOCK_L=64, D=d_head, BLOCK_D=block(d_head)), 4, arch))
    out.append(compile_kernel(output_dot_grad_kernel, dict(O=p, DO=p, DELTA="*fp32"),
                              dict(BLOCK_L=64, D=d_head, BLOCK_D=block(d_head)), 4, arch))
    out.append(compile_kernel(hash_kernel, dict(X=p, ROT="*fp32", OUT="*i64"),
                              dict(BLOCK_L=64, D=d_head, BLOCK_D=block(d_head), BLOCK_F=32, SPLIT=dtype != "fp32",
                                   ACCUMULATE=True, PREC=args["PREC"], UPCAST=False), 4, arch))
    out.append(compile_kernel(sort_keys_kernel, dict(BUCKETS="*i64", MASK="*u8", KEYS="*i16"),
                              dict(HAS_MASK=True, BLOCK=1024), 4, arch))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reformer_cli.attention.fast.aot", description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16")
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--n-chunks-before", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.stderr.write("error: unset TRITON_INTERPRET to compile the kernels for a GPU\n")
        return 2
    for c in compile_all(args.dtype, args.chunk, args.d_head, args.n_chunks_before, args.rounds, args.arch):
        sys.stdout.write(f"{c.kernel:24s} {c.variant:40s} registers {c.registers}  spill bytes {c.spill_bytes}"
                         f"  shared bytes {c.shared_bytes}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
