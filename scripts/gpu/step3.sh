#!/usr/bin/env bash
# GPU step 3: the paper's memory claim. A 12-layer model (d_model 1024, d_ff 4096, 8 heads, LSH-4,
# chunks of 128, axial positions, chunked feed-forward and loss) trained on one 65,536-token
# sequence: standard vs reversible layers at depths 3, 6 and 12.
#   OUT=<folder> bash scripts/gpu/step3.sh          (BUDGET=530 seconds by default)
# Brings back step3.log, step3.tar.gz and memory.md.
source "$(dirname "$0")/common.sh" step3
R="$WORK/results"
run_part memory 480 "$PY" -m reformer_cli bench memory --device cuda --precision bf16 --length 65536 --batch 1 \
    --d-model 1024 --d-ff 4096 --heads 8 --vocab 258 --positions axial \
    --attention lsh --rounds 4 --chunk-length 128 --n-buckets 1024 --ff-chunks 16 --loss-chunks 16 \
    --depths 3,6,12 --optimizer adamw --markdown "$R/memory.md" --json "$R/memory.json"
pack "$R/memory.md"
log "done"
