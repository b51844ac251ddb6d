#!/usr/bin/env bash
# GPU step 1, the most valuable: the fast kernels on hardware, then their speed beside full attention
# and the peers, the Table 2 training step, and where the LSH time goes.
#   OUT=<folder> bash scripts/gpu/step1.sh          (BUDGET=530 seconds by default)
# Brings back step1.log, step1.tar.gz (everything below) and, for a quick look, speed.md,
# train_step.md and profile.md:
#   gpu-tests.log             tests/attention/test_lsh_fast.py compiled for the GPU (the `gpu` tests too)
#   results/speed.{md,json,png}   `reformer bench speed --peers`: the standard problem, paper and
#                             across-bucket LSH at 1/2/4/8 rounds, SDPA, reformer-pytorch, HF
#   results/train_step.{md,json}  `reformer bench step`: the Table 2 model's training step
#   results/profile.{md,json}     `reformer bench profile`: kernel time per stage at 4K and 64K
source "$(dirname "$0")/common.sh" step1
R="$WORK/results"

run_part gpu-tests "${TESTS_LIMIT:-170}" "$PY" -m pytest -q -p no:cacheprovider -rs tests/attention/test_lsh_fast.py
cp "$WORK/gpu-tests.log" "$R/gpu-tests.log"
pack
run_part speed 240 "$PY" -m reformer_cli bench speed --peers --out "$R"
pack "$R/speed.md"
run_part step 70 "$PY" -m reformer_cli bench step --out "$R"
pack "$R/speed.md" "$R/train_step.md"
run_part profile 60 "$PY" -m reformer_cli bench profile --out "$R"
pack "$R/speed.md" "$R/train_step.md" "$R/profile.md"
log "done"
