"""Benchmarks: `reformer bench memory` (peak memory of a training step) and `reformer bench speed`
(the attention problem of SPEC section 6)."""
