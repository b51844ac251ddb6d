# What every GPU step shares; sourced by step1.sh, step2.sh and step3.sh (see README.md here).
#
# A step runs on a bare GPU machine in the repository's root, inside one device command of at most
# ~9 minutes: it installs the carried wheels (.whl/), runs its parts one after another, each under
# its own time limit cut to what is left of BUDGET seconds, and after each part packs everything it
# has into $OUT/<step>.tar.gz beside $OUT/<step>.log, so a step cut short still returns its log and
# every finished part. At most a handful of files land in $OUT (the device tool returns 8).
set -u
STEP=$1
BUDGET=${BUDGET:-530}
OUT=${OUT:-gpu-out}
WORK=/tmp/reformer-$STEP
PY=${PY:-python3}
START=$(date +%s)
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK/results"
LOG="$WORK/$STEP.log"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled

log() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
pack() {
    cp "$LOG" "$OUT/$STEP.log"
    tar czf "$OUT/$STEP.tar.gz" -C "$WORK" . 2>/dev/null
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
    return 0
}
# run_part NAME LIMIT COMMAND...: the command's output in $WORK/NAME.log, its last lines in the step log
run_part() {
    local name=$1 limit=$2 t rc
    shift 2
    t=$(left)
    if [ "$t" -lt 30 ]; then log "skip $name: the step's budget is spent"; return 1; fi
    [ "$limit" -gt "$t" ] && limit=$t
    log "start $name (at most ${limit}s): $*"
    timeout -k 10 "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    [ $rc -eq 124 ] && log "$name: stopped at its time limit (${limit}s)"
    tail -n 40 "$WORK/$name.log" >> "$LOG"
    log "end $name: exit $rc"
    return $rc
}

if ls .whl/*.whl > /dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/reformer-site \
        .whl/*.whl >> "$LOG" 2>&1 && export PYTHONPATH=/tmp/reformer-site${PYTHONPATH:+:$PYTHONPATH}
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO GPU')"
    git log -1 --format='code %H %ad' 2>/dev/null || true
} >> "$LOG" 2>&1
log "step $STEP, budget ${BUDGET}s, output in $OUT"
