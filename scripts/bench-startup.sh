#!/usr/bin/env bash
# Start-up time of a standalone broker (issue 37): an empty one, and one hosting PER
# partitions (one topic, a record in each), each restarted RUNS times. Reports, per
# restart, the time from exec to the "listening" line and to /readyz answering 200, and the
# broker's own "broker opened in" line (start-up by phase; brokers older than issue 37 do
# not print it, and their /readyz said ready before leaderships were confirmed).
#   scripts/bench-startup.sh [DIR] [PER] [RUNS]
# SHALE_BIN=path/to/shale compares another build (default: this tree's release build).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/bench-data/startup}"
PER="${2:-10000}"
RUNS="${3:-3}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
echo "shale: $SHALE"
PORT=$(free_port)
ADMIN=$(free_port)
BROKER=
cleanup() { [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null || true; }
trap cleanup EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Starts the broker on data dir $1 and reports its start-up as $2.
start() {
  local data=$1 name=$2 t0 listen= ready=
  t0=$(now_ms)
  SHALE_LOG=info "$SHALE" standalone --kafka-listen none --data-dir "$data" --listen 127.0.0.1:$PORT \
    --admin-listen 127.0.0.1:$ADMIN > "$DIR/$name.out" 2> "$DIR/$name.err" &
  BROKER=$!
  for _ in $(seq 12000); do
    [ -z "$listen" ] && grep -q listening "$DIR/$name.out" && listen=$(( $(now_ms) - t0 ))
    if [ -n "$listen" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/readyz")" = 200 ]; then
      ready=$(( $(now_ms) - t0 )); break
    fi
    sleep 0.01
  done
  [ -n "$ready" ] || { echo "$name: not ready: $(tail -3 "$DIR/$name.err")" >&2; exit 1; }
  local phases
  phases=$(grep -o 'broker opened in.*' "$DIR/$name.err" | sed 's/\x1b\[[0-9;]*m//g; s/ broker=.*//' || true)
  echo "$name: listening after ${listen} ms, /readyz 200 after ${ready} ms; ${phases:-no phase line}"
}
stop() { kill "$BROKER"; while kill -0 "$BROKER" 2>/dev/null; do sleep 0.05; done; BROKER=; }

start "$DIR/empty" "empty-first"; stop
for i in $(seq "$RUNS"); do start "$DIR/empty" "empty-restart-$i"; stop; done

start "$DIR/many" "many-first"
"$SHALE_BENCH" partitions --broker 127.0.0.1:$PORT --topics 1 --partitions "$PER" --steps create,produce > "$DIR/create.out"
stop
for i in $(seq "$RUNS"); do start "$DIR/many" "$PER-partitions-restart-$i"; stop; done
