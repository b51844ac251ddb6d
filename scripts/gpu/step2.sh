#!/usr/bin/env bash
# GPU step 2: Table 2 at the quick profile (the paper's task and model, 10K steps per model), with
# the fast kernels, in slices that resume: each session continues from the state the last one
# brought back.
#   OUT=<folder> bash scripts/gpu/step2.sh          (BUDGET=530 seconds by default)
# Brings back step2.log, step2.tar.gz (the records under results/runs/quick/table2/, the rebuilt
# results/table2.md, the runner's log) and table2-quick-state.tar.gz. Progress survives in two ways:
# within a session, put the returned table2-quick-state.tar.gz into gpu-state/ and carry it to the
# next command (unfinished runs continue from their checkpoint); across sessions, commit the
# records: a model whose training and evaluations all finished is not run again (checkpoints are
# never committed, so an unfinished model starts over in a new session).
source "$(dirname "$0")/common.sh" step2
STATE=gpu-state/table2-quick-state.tar.gz
[ -f "$STATE" ] && tar xzf "$STATE" && log "continued from $STATE"
limit=$(( $(left) - 60 ))
run_part reproduce $(( limit + 30 )) "$PY" -m reformer_cli reproduce --profile quick --only table2 \
    --time-limit "$limit" --pack "$OUT/table2-quick-state.tar.gz"
mkdir -p "$WORK/results/runs" && cp -r results/runs/quick "$WORK/results/runs/" 2>/dev/null
run_part table 30 "$PY" -m reformer_cli table --only table2 --runs results/runs --out "$WORK/results" --no-plots
pack "$WORK/results/table2.md"
log "done"
