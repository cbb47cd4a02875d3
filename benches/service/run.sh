#!/usr/bin/env bash
# Service benchmark: `signin-radar run` (file source, HTTP API, metrics) against
# `signin-radar replay` on the same input.
#
#   bash benches/service/run.sh                      # all three steps (~10 minutes)
#   STEPS=overhead RUNS=8 bash benches/service/run.sh
#   WORK=/tmp/srb KEEP=1 bash benches/service/run.sh # keep (and later reuse) the inputs
#
# Steps:
#   overhead  CPU and wall time from spawn to `caught_up` (GET /api/v1/status) of the service
#             against the whole `replay --format json` process, same synth file, --threads 1
#             and the default (every core); best of RUNS, runs alternating; startup alone on a
#             one-record file.
#   scrape    GET /metrics latency with --top-k-metrics TOPK on a spray touching SPRAY_USERS
#             users (after catching up and a background refresh), and with the family off.
#   memory    peak RSS of replay and of the service on the spray, a state snapshot
#             (--state-dir, size and time), a restart on it, and the same with --max-keys.
#
# Environment:
#   RECORDS, USERS, SEED   synth input of `overhead` (default 100000, 200000, 7: ~720 MB)
#   RUNS                   timed runs per configuration in `overhead` (default 5)
#   SPRAY_USERS, ATTEMPTS  spray input of `scrape` and `memory` (default 500000, 2: ~570 MB)
#   TOPK, SCRAPES          --top-k-metrics and scrapes timed (default 1000, 50)
#   MAX_KEYS               --max-keys of the bounded memory run (default 200000)
#   STEPS                  comma-separated subset of overhead,scrape,memory (default all)
#   WORK                   directory for the inputs (default: a new mktemp -d under /tmp,
#                          deleted at the end unless KEEP=1); inputs already there are reused
#
# Needs python3 (stdlib only). Every service started is stopped on exit, whatever happens.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

RECORDS="${RECORDS:-100000}"
USERS="${USERS:-200000}"
SEED="${SEED:-7}"
RUNS="${RUNS:-5}"
SPRAY_USERS="${SPRAY_USERS:-500000}"
ATTEMPTS="${ATTEMPTS:-2}"
TOPK="${TOPK:-1000}"
SCRAPES="${SCRAPES:-50}"
MAX_KEYS="${MAX_KEYS:-200000}"
STEPS="${STEPS:-overhead,scrape,memory}"
KEEP="${KEEP:-0}"
export PYTHONDONTWRITEBYTECODE=1

for v in RECORDS USERS SEED RUNS SPRAY_USERS ATTEMPTS TOPK SCRAPES MAX_KEYS; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
        echo "$v must be a non-negative integer, got '${!v}'" >&2
        exit 2
    fi
done
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }

if [[ -n "${WORK:-}" ]]; then
    mkdir -p "$WORK"
    CREATED=0
else
    WORK="$(mktemp -d /tmp/signin-radar-service-bench.XXXXXX)"
    CREATED=1
fi
WORK="$(cd "$WORK" && pwd)"
PIDS="$WORK/service.pids"
CHILD=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The running step first (the harness stops its own services), then any service it
    # left behind, by pid.
    if [[ -n "$CHILD" ]] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    if [[ -s "$PIDS" ]]; then
        while read -r pid; do
            [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
        done < "$PIDS"
        sleep 1
        while read -r pid; do
            [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
        done < "$PIDS"
    fi
    rm -f "$PIDS"
    if [[ "$CREATED" == 1 && "$KEEP" != 1 ]]; then
        rm -rf "$WORK"
    elif [[ "$CREATED" == 1 ]]; then
        echo "inputs kept in $WORK (WORK=$WORK to reuse them)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a step in the background and waits for it, so a signal reaches the trap at once
# (bash runs traps only between foreground commands) and the trap can stop the step.
step() {
    "$@" &
    CHILD=$!
    wait "$CHILD"
    CHILD=""
}
harness() { step python3 "$HERE/bench.py" "$@" --pid-file "$PIDS"; }

echo "== machine"
echo "cpu:    $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo "nproc:  $(nproc)"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python: $(python3 --version 2>&1)"

echo "== signin-radar (cargo build --release)"
step cargo build --release --quiet
# A copy, so a rebuild during the run cannot change what is measured.
BIN="$WORK/signin-radar"
cp "$ROOT/target/release/signin-radar" "$BIN"
echo "$("$BIN" --version) ($(rustc --version)), copied to $BIN"
echo "work:   $WORK"

if has_step overhead; then
    DATA="$WORK/synth-r$RECORDS-u$USERS-s$SEED.ndjson"
    if [[ ! -s "$DATA" ]]; then
        echo "generating $DATA: synth --records $RECORDS --users $USERS --seed $SEED"
        step "$BIN" synth --format ndjson --records "$RECORDS" --users "$USERS" --seed "$SEED" > "$DATA.tmp"
        mv "$DATA.tmp" "$DATA"
    fi
    head -n 1 "$DATA" > "$WORK/one-record.ndjson"
    echo
    echo "== 1. overhead of the service over replay ($(wc -l < "$DATA") lines, $(du -h "$DATA" | cut -f1))"
    harness overhead --bin "$BIN" --input "$DATA" --tiny "$WORK/one-record.ndjson" --runs "$RUNS"
fi

if has_step scrape || has_step memory; then
    SPRAY="$WORK/spray-u$SPRAY_USERS-a$ATTEMPTS.ndjson"
    if [[ ! -s "$SPRAY" ]]; then
        echo "generating $SPRAY: spray.py --users $SPRAY_USERS --attempts $ATTEMPTS (python, ~30 s a million)"
        step python3 "$HERE/spray.py" --users "$SPRAY_USERS" --attempts "$ATTEMPTS" > "$SPRAY.tmp"
        mv "$SPRAY.tmp" "$SPRAY"
    fi
fi

if has_step scrape; then
    echo
    echo "== 2. /metrics with --top-k-metrics $TOPK ($(wc -l < "$SPRAY") lines, $(du -h "$SPRAY" | cut -f1))"
    harness scrape --bin "$BIN" --input "$SPRAY" --scrapes "$SCRAPES" --top-k "$TOPK"
fi

if has_step memory; then
    echo
    echo "== 3. memory under a spray of $SPRAY_USERS users x $ATTEMPTS"
    harness memory --bin "$BIN" --input "$SPRAY" --work "$WORK" --max-keys "$MAX_KEYS"
fi
