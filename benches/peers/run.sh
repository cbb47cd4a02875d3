#!/usr/bin/env bash
# Side-by-side peer benchmark: signin-radar against chdb (ClickHouse), DuckDB and
# Python+orjson on the same NDJSON file, one thread each, CPU seconds per record.
#
#   bash benches/peers/run.sh                 # 50k records, all tools
#   RECORDS=200000 bash benches/peers/run.sh  # another size (own data file)
#   PEERS=chdb,duckdb,radar1 bash benches/peers/run.sh
#
# Environment:
#   RECORDS   records to synthesise (default 50000)
#   USERS     distinct users in the synthetic tenant (default 200000)
#   SEED      synth seed (default 7)
#   PEERS     comma-separated subset of: lines,wc,chdb,chdb-tuple,duckdb,orjson,radar1,radar
#             (default lines,wc,chdb,duckdb,orjson,radar1,radar)
#   RUNS      timed runs per tool, best kept (default 3)
#   PEER_PKGS pip requirement specs of the peers (default: the versions this was tested with)
#   CHECK=0   skip the untimed dedup-aware reference pass (orjson_count.py --dedup)
#
# Makes benches/.venv (gitignored) and benches/data/ (gitignored). The input comes
# from `signin-radar synth`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

RECORDS="${RECORDS:-50000}"
USERS="${USERS:-200000}"
SEED="${SEED:-7}"
PEERS="${PEERS:-lines,wc,chdb,duckdb,orjson,radar1,radar}"
RUNS="${RUNS:-3}"
PEER_PKGS="${PEER_PKGS:-chdb==4.4.0 duckdb==2.0.0 orjson==3.13.0}"
CHECK="${CHECK:-1}"
VENV="$ROOT/benches/.venv"
DATA_DIR="$ROOT/benches/data"
BIN="$ROOT/target/release/signin-radar"
export PYTHONDONTWRITEBYTECODE=1

if ! [[ "$RECORDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "RECORDS must be a positive integer, got '$RECORDS'" >&2
    exit 2
fi
if (( RECORDS % 1000 == 0 )); then LABEL="$((RECORDS / 1000))k"; else LABEL="$RECORDS"; fi

has_peer() { [[ ",$PEERS," == *",$1,"* ]]; }

echo "== machine"
echo "cpu:    $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo "nproc:  $(nproc)"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== peers (venv $VENV)"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
# shellcheck disable=SC2086  # PEER_PKGS is a list of specs
"$VENV/bin/pip" install --quiet --disable-pip-version-check $PEER_PKGS
PY="$VENV/bin/python"
"$PY" - <<'EOF'
import sys, chdb, duckdb, orjson
engine = chdb.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
print(f"python {sys.version.split()[0]}; chdb {chdb.__version__} (ClickHouse {engine}); "
      f"duckdb {duckdb.__version__}; orjson {orjson.__version__}")
EOF

echo "== signin-radar (cargo build --release)"
cargo build --release --quiet
"$BIN" --version 2>/dev/null || echo "(signin-radar --version printed nothing)"

echo "== input"
mkdir -p "$DATA_DIR"
DATA="$DATA_DIR/signins-$LABEL.ndjson"
if [[ -s "$DATA" ]]; then
    echo "reusing $DATA (delete it after changing the generator)"
else
    echo "generating $DATA: signin-radar synth --format ndjson --records $RECORDS --users $USERS --seed $SEED"
    "$BIN" synth --format ndjson --records "$RECORDS" --users "$USERS" --seed "$SEED" > "$DATA.tmp"
    mv "$DATA.tmp" "$DATA"
fi
echo "$(wc -l < "$DATA") lines, $(du -h "$DATA" | cut -f1)"

if [[ -z "$PEERS" ]]; then
    echo "no tool left to run" >&2
    exit 1
fi

echo "== benchmark: $PEERS, best of $RUNS, one thread each (radar: all $(nproc) cores)"
ARGS=(--peers "$PEERS" --runs "$RUNS" --radar "$BIN")
[[ "$CHECK" == 0 ]] && ARGS+=(--no-check)
"$PY" "$HERE/bench.py" "${ARGS[@]}" "$DATA"
